"""The staff UI shell: sign-in and the dashboard."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.views import LoginView
from django.http import HttpResponse
from django.views.generic import TemplateView

from config import selectors
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
