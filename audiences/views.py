"""Staff UI pages for customers and accounts: thin views over audiences.selectors."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.shortcuts import get_object_or_404
from django.views.generic import TemplateView

from audiences import selectors
from audiences.filters import AccountFilter, CustomerFilter, EventFilter
from audiences.models import Customer
from config.pagination import paginate_for_ui
from config.permissions import StaffPermissionMixin
from segments import selectors as segment_selectors


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
            "segments": segment_selectors.customer_segments(customer.pk),
            **self._computed_traits(customer.pk),
            **self._trial_loop(customer),
        }

    def _trial_loop(self, customer: Customer) -> dict[str, Any]:
        """The customer's current trial with its score breakdown (trials app), for roles that may see trials;
        no query when the customer has no trial."""
        if getattr(customer, "current_trial_id", None) is None or not self.request.user.has_perm("trials.view_trial"):
            return {}
        from trials.selectors import customer_trial

        return {"trial_loop": customer_trial(customer.pk)}

    def _computed_traits(self, customer_id: int) -> dict[str, Any]:
        """The customer's computed trait values and latest changes (two queries), for roles that may see them."""
        if not self.request.user.has_perm("audiences.view_computedtrait"):
            return {}
        return {
            "computed_values": selectors.customer_computed_values(customer_id),
            "computed_changes": selectors.customer_computed_changes(customer_id),
        }


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
