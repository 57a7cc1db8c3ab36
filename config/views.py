"""The staff UI shell: sign-in and the dashboard."""

from __future__ import annotations

from datetime import date
from typing import Any

from django import forms
from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.views import LoginView
from django.core.validators import MaxValueValidator
from django.http import HttpResponse
from django.views.generic import TemplateView

from config import selectors
from config.audit import AUDITED
from config.models import AuditEntry
from config.pagination import paginate_for_ui
from config.permissions import StaffPermissionMixin
from config.sign_in import ThrottledAuthenticationForm


class SignInView(LoginView):
    """Django's sign-in page with throttling: a locked-out attempt is answered 429 with Retry-After."""

    authentication_form = ThrottledAuthenticationForm

    def form_invalid(self, form: ThrottledAuthenticationForm) -> HttpResponse:  # type: ignore[override]
        response = super().form_invalid(form)
        if form.retry_after:
            response.status_code = 429
            response["Retry-After"] = str(form.retry_after)
        return response


class HomeView(LoginRequiredMixin, TemplateView):
    template_name = "home.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        can_see_customers = self.request.user.has_perm("audiences.view_customer")
        return {
            **super().get_context_data(**kwargs),
            "figures": selectors.dashboard_figures() if can_see_customers else None,
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
        labels = sorted(audited.label for audited in AUDITED)
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
