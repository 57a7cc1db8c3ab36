"""The staff UI shell: sign-in and the dashboard."""

from __future__ import annotations

from datetime import date
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.views import LoginView
from django.core.validators import MaxValueValidator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.generic import TemplateView

from config import selectors, services
from config.audit import AUDITED, RECORDED_BY_SERVICES
from config.figures import dashboard_figures
from config.models import AuditEntry
from config.pagination import paginate_for_ui
from config.permissions import StaffPermissionMixin
from config.sign_in import SignInForm


class SignInView(LoginView):
    """Django's sign-in page; a locked-out attempt says how long to wait (axes answers it 429, config.sign_in)."""

    authentication_form = SignInForm


class HomeView(LoginRequiredMixin, TemplateView):
    template_name = "home.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        can_see_customers = self.request.user.has_perm("audiences.view_customer")
        return {
            **super().get_context_data(**kwargs),
            "figures": dashboard_figures() if can_see_customers else None,
            "task_runs": selectors.latest_task_runs(),
        }


LAST_FILTER_DAY = date(2999, 12, 31)


class AuditFilterForm(forms.Form):
    """The audit log's filters; a bad value is a form error shown above the list, never a crash."""

    model = forms.ChoiceField(required=False, choices=[("", "All kinds")])
    action = forms.ChoiceField(required=False, choices=[("", "Any action"), *AuditEntry.Action.choices])
    actor = forms.CharField(required=False, max_length=150)
    object_id = forms.CharField(required=False, max_length=64)
    # Bounded, so that the day after `until` (the query's end) is still a date.
    since = forms.DateField(required=False, validators=[MaxValueValidator(LAST_FILTER_DAY)])
    until = forms.DateField(required=False, validators=[MaxValueValidator(LAST_FILTER_DAY)])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        labels = sorted([*(audited.label for audited in AUDITED), *RECORDED_BY_SERVICES])
        self.fields["model"].choices = [("", "All kinds"), *((label, label) for label in labels)]  # type: ignore[attr-defined]


class AuditLogView(StaffPermissionMixin, TemplateView):
    """Admins read who changed which configuration, when and how; the log offers no way to edit it."""

    template_name = "audit_log.html"
    admin_only = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        form = AuditFilterForm(self.request.GET or None)
        entries = selectors.audit_entries(form.cleaned_data if form.is_valid() else {})
        if form.is_bound and not form.is_valid():
            entries = entries.none()
        return {
            **super().get_context_data(**kwargs),
            "form": form,
            "page": paginate_for_ui(self.request, entries, ordering="-id", size=50),
        }

    def render_to_response(self, context: dict[str, Any], **response_kwargs: Any) -> HttpResponse:
        if context["form"].is_bound and not context["form"].is_valid():
            response_kwargs["status"] = 400
        return super().render_to_response(context, **response_kwargs)


class SignInUnlockForm(forms.Form):
    """Which locked-out sign-in to lift: a username and the address it was locked out from."""

    username = forms.CharField(max_length=255)
    ip_address = forms.GenericIPAddressField(required=False)


class SignInLockoutsView(StaffPermissionMixin, TemplateView):
    """Admins see which usernames are locked out of signing in from which address, and unlock them (audited)."""

    template_name = "sign_in_lockouts.html"
    admin_only = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {
            **super().get_context_data(**kwargs),
            "lockouts": selectors.sign_in_lockouts(),
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "cool_off_minutes": int(settings.AXES_COOLOFF_TIME.total_seconds() // 60),
        }

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        form = SignInUnlockForm(request.POST)
        if not form.is_valid():
            context = self.get_context_data(error="Choose a locked-out sign-in to unlock.")
            return self.render_to_response(context, status=400)
        username, address = form.cleaned_data["username"], form.cleaned_data["ip_address"] or None
        if services.sign_in_unlock(username=username, ip_address=address):
            messages.success(request, f"{username} may sign in from {address or 'that address'} again.")
        else:
            messages.info(request, f"{username} was not locked out from {address or 'that address'} any more.")
        return HttpResponseRedirect(reverse("sign-in-lockouts"))
