"""Lifecycle message pages: the template list with the send log and in-app dismissal rates, a preview against a
chosen customer, create / edit / duplicate / delete, the throttle settings with the priority order, and the
public one-click unsubscribe endpoint (signed link, no sign-in; POST per RFC 8058)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.template import TemplateSyntaxError
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from django.views.generic import TemplateView

from audiences.models import Customer
from config.permissions import StaffPermissionMixin
from trials.messaging.delivery import customer_unsubscribe
from trials.messaging.forms import EmailSettingsForm, MessageTemplateCreateForm, MessageTemplateForm, PriorityFormSet
from trials.messaging.in_app import DISMISSAL_FLAG_MIN_SHOWN, DISMISSAL_FLAG_RATE, in_app_stats
from trials.messaging.models import MessageSend, MessageTemplate
from trials.messaging.render import message_preview, render_refusal, unsubscribe_customer_id
from trials.messaging.rules import email_settings
from trials.messaging.syntax import VARIABLES
from trials.messaging.templates import (
    email_settings_save,
    message_template_delete,
    message_template_duplicate,
    message_template_save,
)

_FLAG_RULE = {"flag_rate": int(DISMISSAL_FLAG_RATE * 100), "flag_min_shown": DISMISSAL_FLAG_MIN_SHOWN}


class TemplateListView(StaffPermissionMixin, TemplateView):
    """Templates by priority, and the latest sends and suppressions with their reasons."""

    template_name = "trials/email_templates.html"
    required_permissions = ("trials.view_messagetemplate", "trials.view_messagesend")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        stats = in_app_stats()
        templates = list(MessageTemplate.objects.all())
        for template in templates:
            template.stats = stats.get(template.pk)  # type: ignore[attr-defined]
        context.update(templates=templates, **_FLAG_RULE)
        context["sends"] = MessageSend.objects.select_related("customer", "template")[:100]
        return context


class TemplatePreviewView(StaffPermissionMixin, TemplateView):
    """One template rendered for the customer given as ?customer=<id> (the HTML shown in a sandboxed frame)."""

    template_name = "trials/email_preview.html"
    required_permissions = ("trials.view_messagetemplate", "audiences.view_customer")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        template = get_object_or_404(MessageTemplate, pk=kwargs["pk"])
        context.update(template=template, variables=VARIABLES, stats=in_app_stats().get(template.pk), **_FLAG_RULE)
        context["sends"] = MessageSend.objects.filter(template=template).select_related("customer")[:50]
        raw = self.request.GET.get("customer", "")
        if raw.isdigit():
            customer = get_object_or_404(Customer, pk=int(raw))
            try:
                context.update(customer=customer, rendered=message_preview(template, customer))
            except TemplateSyntaxError as refused:  # stored without validation: say why instead of a 500
                context.update(customer=customer, render_error=render_refusal(refused))
        return context


class TemplateEditView(StaffPermissionMixin, View):
    """The template editor: a form whose errors name the unknown variable, tag or filter."""

    required_permissions = ("trials.view_messagetemplate",)

    def _render(self, request: HttpRequest, form: MessageTemplateForm, status: int = 200) -> HttpResponse:
        context = {"form": form, "template": form.instance, "variables": VARIABLES}
        return render(request, "trials/email_edit.html", context, status=status)

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        return self._render(request, MessageTemplateForm(instance=get_object_or_404(MessageTemplate, pk=pk)))

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not request.user.has_perm("trials.change_messagetemplate"):
            raise PermissionDenied
        form = MessageTemplateForm(request.POST, instance=get_object_or_404(MessageTemplate, pk=pk))
        if not form.is_valid():
            return self._render(request, form, status=400)
        message_template_save(form.instance)
        messages.success(request, "Template saved.")
        return HttpResponseRedirect(reverse("email-template-preview", args=[pk]))


class TemplateCreateView(StaffPermissionMixin, View):
    """A new template, validated like an edit (an unknown variable is a form error, not a failed send)."""

    required_permissions = ("trials.add_messagetemplate",)

    def _render(self, request: HttpRequest, form: MessageTemplateCreateForm, status: int = 200) -> HttpResponse:
        context = {"form": form, "template": None, "variables": VARIABLES}
        return render(request, "trials/email_edit.html", context, status=status)

    def get(self, request: HttpRequest) -> HttpResponse:
        return self._render(request, MessageTemplateCreateForm())

    def post(self, request: HttpRequest) -> HttpResponse:
        form = MessageTemplateCreateForm(request.POST)
        if not form.is_valid():
            return self._render(request, form, status=400)
        template = message_template_save(form.instance)
        messages.success(request, "Template created.")
        return HttpResponseRedirect(reverse("email-template-preview", args=[template.pk]))


class TemplateDuplicateView(StaffPermissionMixin, View):
    """POST: an inactive copy of the template, opened in the editor."""

    required_permissions = ("trials.add_messagetemplate",)

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        copy = message_template_duplicate(get_object_or_404(MessageTemplate, pk=pk))
        messages.success(request, f"Copied as {copy.key} (inactive until you activate it).")
        return HttpResponseRedirect(reverse("email-template-edit", args=[copy.pk]))


class TemplateDeleteView(StaffPermissionMixin, View):
    """GET asks for confirmation (saying how many log rows go with it); POST deletes."""

    required_permissions = ("trials.delete_messagetemplate",)

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        template = get_object_or_404(MessageTemplate, pk=pk)
        context = {"template": template, "send_count": MessageSend.objects.filter(template=template).count()}
        return render(request, "trials/email_delete.html", context)

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        template = get_object_or_404(MessageTemplate, pk=pk)
        name = template.name
        removed = message_template_delete(template)
        messages.success(request, f"Deleted {name} and {removed} log row{'s' if removed != 1 else ''}.")
        return HttpResponseRedirect(reverse("email-template-list"))


class EmailSettingsView(StaffPermissionMixin, View):
    """The workspace throttle window, quiet hours, time zone and sender, and the templates' priority order."""

    required_permissions = ("trials.view_emailsettings", "trials.view_messagetemplate")
    change_permissions = ("trials.change_emailsettings", "trials.change_messagetemplate")

    def _render(
        self, request: HttpRequest, form: EmailSettingsForm, priorities: Any, status: int = 200
    ) -> HttpResponse:
        can_change = request.user.has_perms(self.change_permissions)
        context = {"form": form, "priorities": priorities, "can_change": can_change}
        return render(request, "trials/email_settings.html", context, status=status)

    def get(self, request: HttpRequest) -> HttpResponse:
        return self._render(
            request,
            EmailSettingsForm(instance=email_settings()),
            PriorityFormSet(queryset=MessageTemplate.objects.all()),
        )

    def post(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perms(self.change_permissions):
            raise PermissionDenied
        form = EmailSettingsForm(request.POST, instance=email_settings())
        priorities = PriorityFormSet(request.POST, queryset=MessageTemplate.objects.all())
        if not (form.is_valid() and priorities.is_valid()):
            return self._render(request, form, priorities, status=400)
        email_settings_save(
            form.instance,
            {f.instance.pk: f.cleaned_data["priority"] for f in priorities.forms if f.instance.pk is not None},
        )
        messages.success(request, "Settings saved.")
        return HttpResponseRedirect(reverse("email-settings"))


@method_decorator(csrf_exempt, name="dispatch")
class UnsubscribeView(View):
    """GET shows a confirmation button (mail scanners follow links); POST unsubscribes (mail clients' one-click)."""

    def get(self, request: HttpRequest, token: str) -> HttpResponse:
        customer_id = unsubscribe_customer_id(token)
        status = 200 if customer_id is not None else 404
        return render(
            request, "trials/unsubscribe.html", {"valid": customer_id is not None, "done": False}, status=status
        )

    def post(self, request: HttpRequest, token: str) -> HttpResponse:
        customer_id = unsubscribe_customer_id(token)
        if customer_id is None or not Customer.objects.filter(pk=customer_id).exists():
            return render(request, "trials/unsubscribe.html", {"valid": False, "done": False}, status=404)
        customer_unsubscribe(customer_id=customer_id)
        return render(request, "trials/unsubscribe.html", {"valid": True, "done": True})
