"""Staff UI pages for customers and accounts: thin views over audiences.selectors. The customer page's parts
from the layers above (subscriptions, trial, segments) are panels those apps register (audiences.panels)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views import View
from django.views.generic import TemplateView

from audiences import selectors, services
from audiences.filters import AccountFilter, CustomerFilter, EventFilter
from audiences.models import Customer
from audiences.panels import customer_panels_context
from audiences.privacy.erase import ERASE_PERMISSION, AlreadyErased, customer_erase
from audiences.privacy.export import EXPORT_PERMISSION, customer_export
from config.pagination import paginate_for_ui
from config.permissions import StaffPermissionMixin


class CustomerListView(StaffPermissionMixin, TemplateView):
    template_name = "audiences/customer_list.html"
    required_permissions = ("audiences.view_customer",)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        filterset = CustomerFilter(self.request.GET, queryset=selectors.customer_list())
        queryset = filterset.qs if filterset.is_valid() else selectors.customer_list().none()
        return {
            **super().get_context_data(**kwargs),
            "filter": filterset,
            "page": paginate_for_ui(self.request, queryset),
            "total_estimate": selectors.estimated_row_count(Customer),
        }


class CustomerDetailView(StaffPermissionMixin, TemplateView):
    template_name = "audiences/customer_detail.html"
    required_permissions = ("audiences.view_customer",)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        try:
            customer = selectors.customer_detail(self.kwargs["pk"])
        except Customer.DoesNotExist as missing:
            raise Http404("No such customer.") from missing
        events = EventFilter(self.request.GET, queryset=selectors.customer_events(customer.pk))
        queryset = events.qs if events.is_valid() else selectors.customer_events(customer.pk).none()
        return {
            **super().get_context_data(**kwargs),
            "customer": customer,
            "traits": sorted(customer.traits.items()),
            "event_filter": events,
            "events": paginate_for_ui(self.request, queryset, ordering="-timestamp", size=50),
            **self._computed_traits(customer.pk),
            **customer_panels_context(self.request, customer),
        }

    def _computed_traits(self, customer_id: int) -> dict[str, Any]:
        """The customer's computed trait values and latest changes (two queries), for roles that may see them."""
        if not self.request.user.has_perm("audiences.view_computedtrait"):
            return {}
        return {
            "computed_values": selectors.customer_computed_values(customer_id),
            "computed_changes": selectors.customer_computed_changes(customer_id),
        }


class CustomerTestFlagView(StaffPermissionMixin, View):
    """The customer page's "test customer" switch (POST `is_test` = 1 or 0), for roles that may change customers."""

    required_permissions = ("audiences.view_customer", "audiences.change_customer")
    http_method_names = ["post"]

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        customer = get_object_or_404(Customer, pk=pk)
        is_test = request.POST.get("is_test")
        if is_test not in ("0", "1"):
            messages.error(request, "Choose whether this is a test customer.")
        elif services.customer_test_flag_set(customer=customer, is_test=is_test == "1"):
            messages.success(
                request,
                f"{customer} is now a test customer: their cancellation flow runs in test mode."
                if customer.is_test
                else f"{customer} is a real customer again.",
            )
        return redirect("customer-detail", pk=customer.pk)


class AccountListView(StaffPermissionMixin, TemplateView):
    template_name = "audiences/account_list.html"
    required_permissions = ("audiences.view_account",)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        filterset = AccountFilter(self.request.GET, queryset=selectors.account_list_with_seats())
        queryset = filterset.qs if filterset.is_valid() else selectors.account_list_with_seats().none()
        return {
            **super().get_context_data(**kwargs),
            "filter": filterset,
            "page": paginate_for_ui(self.request, queryset),
        }


class AccountDetailView(StaffPermissionMixin, TemplateView):
    template_name = "audiences/account_detail.html"
    required_permissions = ("audiences.view_account", "audiences.view_customer")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        account = get_object_or_404(selectors.account_list(), pk=self.kwargs["pk"])
        return {
            **super().get_context_data(**kwargs),
            "account": account,
            "traits": sorted(account.traits.items()),
            "members": selectors.account_members(account.pk),
        }


class CustomerExportView(StaffPermissionMixin, View):
    """Download everything held about a customer as one JSON file (answering a GDPR access request)."""

    required_permissions = ("audiences.view_customer", EXPORT_PERMISSION)

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        customer = get_object_or_404(Customer, pk=pk)
        body = json.dumps(customer_export(customer), indent=2, ensure_ascii=False)
        response = HttpResponse(body, content_type="application/json; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="customer-{customer.pk}.json"'
        return response


class CustomerEraseForm(forms.Form):
    """The erasure confirmation: the operator types the customer's id, so a slip of the mouse erases nobody."""

    confirm = forms.CharField(label="Type the customer's id to confirm", max_length=20)
    suppress_future_events = forms.BooleanField(
        required=False, initial=True, label="Drop later calls under this customer's ids (tombstone)"
    )

    def __init__(self, *args: Any, customer: Customer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.customer = customer

    def clean_confirm(self) -> str:
        value = str(self.cleaned_data["confirm"]).strip()
        if value != str(self.customer.pk):
            raise forms.ValidationError(f"Type {self.customer.pk} to confirm the erasure.")
        return value


class CustomerEraseView(StaffPermissionMixin, TemplateView):
    """Erase a customer everywhere after a typed confirmation; afterwards the customer list says what went."""

    template_name = "audiences/customer_erase.html"
    required_permissions = ("audiences.view_customer", ERASE_PERMISSION)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        customer = get_object_or_404(Customer, pk=self.kwargs["pk"])
        form = kwargs.pop("form", None) or CustomerEraseForm(customer=customer)
        return {**super().get_context_data(**kwargs), "customer": customer, "form": form}

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        customer = get_object_or_404(Customer, pk=pk)
        form = CustomerEraseForm(request.POST, customer=customer)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        try:
            report = customer_erase(
                customer=customer,
                actor=request.user,
                via="ui",
                suppress_future_events=form.cleaned_data["suppress_future_events"],
            )
        except AlreadyErased:  # a double submit: the first one erased it
            messages.info(request, f"Customer {pk} was already erased.")
            return HttpResponseRedirect(reverse("customer-list"))
        deleted, redacted = sum(report.deleted_rows.values()), sum(report.redacted_rows.values())
        messages.success(request, f"Customer {pk} was erased: {deleted} rows deleted, {redacted} redacted elsewhere.")
        return HttpResponseRedirect(reverse("customer-list"))
