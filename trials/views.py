"""Staff UI pages for trials in progress and subscriptions."""

from __future__ import annotations

from typing import Any

from django.views.generic import TemplateView

from config.pagination import paginate_for_ui
from config.permissions import StaffPermissionMixin
from trials import selectors
from trials.filters import SubscriptionFilter


class TrialListView(StaffPermissionMixin, TemplateView):
    """Trials in progress, the soonest to expire first."""

    template_name = "trials/trial_list.html"
    required_permissions = ("trials.view_subscription", "audiences.view_customer")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        page = paginate_for_ui(self.request, selectors.trials_in_progress(), ordering="trial_end")
        return {**super().get_context_data(**kwargs), "page": page}


class SubscriptionListView(StaffPermissionMixin, TemplateView):
    template_name = "trials/subscription_list.html"
    required_permissions = ("trials.view_subscription", "audiences.view_customer")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        filterset = SubscriptionFilter(self.request.GET, queryset=selectors.subscription_list())
        queryset = filterset.qs if filterset.is_valid() else selectors.subscription_list().none()
        return {
            **super().get_context_data(**kwargs),
            "filter": filterset,
            "page": paginate_for_ui(self.request, queryset, ordering="-started_at"),
        }
