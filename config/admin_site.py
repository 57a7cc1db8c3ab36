"""The Django admin site class: a back office for the Admin role only (kept apart from config.admin, which
registers models, because Django imports this module while it builds the default site, before autodiscovery)."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import urlencode

from config.roles import is_admin


class TrialloopAdminSite(admin.AdminSite):
    """Admin site that only users with the Admin role may open; everyone signs in through the staff UI."""

    site_header = "Trialloop administration"
    site_title = "Trialloop admin"
    index_title = "Back office"
    site_url = "/"

    def has_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and is_admin(request.user))

    def login(self, request: HttpRequest, extra_context: dict[str, object] | None = None) -> HttpResponse:
        if request.user.is_authenticated:
            # Signed in without the Admin role: refuse rather than bounce between the two sign-in pages.
            raise PermissionDenied("Only admins may open the admin.")
        next_url = request.GET.get("next", reverse("admin:index"))
        return HttpResponseRedirect(f"{reverse('login')}?{urlencode({'next': next_url})}")
