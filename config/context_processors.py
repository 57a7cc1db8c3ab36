"""Navigation of the staff UI, filtered by what the signed-in user's role may open."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from config.roles import is_admin, role_names

# (label, url name, permission needed or None, admin only). Sections join this list as they are built.
NAVIGATION: list[tuple[str, str, str | None, bool]] = [
    ("Dashboard", "home", None, False),
    ("Customers", "customer-list", "audiences.view_customer", False),
    ("Accounts", "account-list", "audiences.view_account", False),
    ("Trials", "trial-list", "trials.view_subscription", False),
    ("Subscriptions", "subscription-list", "trials.view_subscription", False),
    ("Integrations", "source-list", None, True),
]


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": [], "user_roles": []}
    admin = is_admin(user)
    items = []
    for label, url_name, permission, admin_only in NAVIGATION:
        if (admin_only and not admin) or (permission and not user.has_perm(permission)):
            continue
        url = reverse(url_name)
        items.append(
            {"label": label, "url": url, "active": request.path == url or (url != "/" and request.path.startswith(url))}
        )
    return {"nav_items": items, "user_roles": sorted(role_names(user)), "user_is_admin": admin}
