"""Lifecycle email pages: the template list with the send log, a preview against a chosen customer, and the
public one-click unsubscribe endpoint (signed link, no sign-in; POST per RFC 8058)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from django.views.generic import TemplateView

from audiences.models import Customer
from config.permissions import StaffPermissionMixin
from trials.email_forms import MessageTemplateForm
from trials.emails import (
    VARIABLES,
    customer_unsubscribe,
    message_preview,
    message_template_save,
    unsubscribe_customer_id,
)
from trials.models import MessageSend, MessageTemplate


class TemplateListView(StaffPermissionMixin, TemplateView):
    """Templates by priority, and the latest sends and suppressions with their reasons."""

    template_name = "trials/email_templates.html"
    required_permissions = ("trials.view_messagetemplate", "trials.view_messagesend")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["templates"] = MessageTemplate.objects.all()
        context["sends"] = MessageSend.objects.select_related("customer", "template")[:100]
        return context


class TemplatePreviewView(StaffPermissionMixin, TemplateView):
    """One template rendered for the customer given as ?customer=<id> (the HTML shown in a sandboxed frame)."""

    template_name = "trials/email_preview.html"
    required_permissions = ("trials.view_messagetemplate", "audiences.view_customer")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        template = get_object_or_404(MessageTemplate, pk=kwargs["pk"])
        context.update(template=template, variables=VARIABLES)
        raw = self.request.GET.get("customer", "")
        if raw.isdigit():
            customer = get_object_or_404(Customer, pk=int(raw))
            context.update(customer=customer, rendered=message_preview(template, customer))
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
