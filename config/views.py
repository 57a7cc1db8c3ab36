"""The staff UI shell: the dashboard."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.views.generic import TemplateView

from config import selectors


class HomeView(LoginRequiredMixin, TemplateView):
    template_name = "home.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        can_see_customers = self.request.user.has_perm("audiences.view_customer")
        return {
            **super().get_context_data(**kwargs),
            "figures": selectors.dashboard_figures() if can_see_customers else None,
            "task_runs": selectors.latest_task_runs(),
        }
