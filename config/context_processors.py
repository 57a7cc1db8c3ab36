"""Navigation of the staff UI, filtered by what the signed-in user's role may open."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from config.roles import is_admin, role_names


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    permission: str | None = None
    admin_only: bool = False


# Sections of the sidebar, in order; features add their pages here as they are built.
NAVIGATION: list[tuple[str, list[NavItem]]] = [
    (
        "",
        [
            NavItem("Dashboard", "home"),
            NavItem("Customers", "customer-list", "audiences.view_customer"),
            NavItem("Accounts", "account-list", "audiences.view_account"),
            NavItem("Segments", "segment-list", "segments.view_segment"),
            NavItem("Computed traits", "computed-trait-list", "audiences.view_computedtrait"),
            NavItem("Trials", "trial-list", "trials.view_trial"),
            NavItem("Trial loop", "trial-loop", "trials.view_trial"),
            NavItem("Trial settings", "trial-settings", "trials.view_activationdefinition"),
            NavItem("Lifecycle emails", "email-template-list", "trials.view_messagetemplate"),
            NavItem("Subscriptions", "subscription-list", "integrations.view_subscription"),
        ],
    ),
    (
        "Sales assist",
        [
            NavItem("Alert queue", "alert-queue", "trials.view_alert"),
            NavItem("Team load", "alert-team", "trials.view_all_alerts"),
            NavItem("Plays", "play-list", "trials.view_play"),
            NavItem("Business hours", "business-hours", "trials.view_businesshours"),
        ],
    ),
    (
        "Retention",
        [
            NavItem("Offers", "offers:offer-list", "offers.view_offer"),
            NavItem("Offer rules", "offers:rule-list", "offers.view_offerrule"),
            NavItem("Cancellation sessions", "offers:session-list", "offers.view_cancellationsession"),
            NavItem("Retention reports", "offers:report", "offers.view_cancellationsession"),
        ],
    ),
    (
        "Measurement",
        [
            NavItem("Conversion cohorts", "measurement-cohorts", "trials.view_trial"),
            NavItem("Activation discovery", "measurement-activation", "trials.view_activationdefinition"),
            NavItem("Converters vs churners", "measurement-behaviour", "trials.view_trial"),
            NavItem("Holdout uplift", "measurement-uplift", "trials.view_messagesend"),
            NavItem("Retention and recovery", "measurement-retention", "offers.view_cancellationsession"),
        ],
    ),
    (
        "Integrations",
        [
            NavItem("Sources", "source-list", admin_only=True),
            NavItem("Stripe", "stripe-overview", admin_only=True),
            NavItem("Tracking plans", "tracking-plan-list", "integrations.view_trackingplan"),
            NavItem("Event debugger", "event-debugger", "integrations.view_ingestionerror"),
            NavItem("Ingestion errors", "ingestion-error-list", "integrations.view_ingestionerror"),
            NavItem("Imports", "import-list", "integrations.view_importjob"),
            NavItem("Destinations", "destination-list", "integrations.view_destination"),
        ],
    ),
    (
        "Administration",
        [
            NavItem("Audit log", "audit-log", admin_only=True),
            NavItem("Sign-in lockouts", "sign-in-lockouts", admin_only=True),
        ],
    ),
]


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_sections": [], "user_roles": []}
    admin = is_admin(user)
    sections = []
    for title, entries in NAVIGATION:
        items = []
        for entry in entries:
            if (entry.admin_only and not admin) or (entry.permission and not user.has_perm(entry.permission)):
                continue
            url = reverse(entry.url_name)
            active = request.path == url or (url != "/" and request.path.startswith(url))
            items.append({"label": entry.label, "url": url, "active": active})
        if items:
            sections.append({"title": title, "items": items})
    return {"nav_sections": sections, "user_roles": sorted(role_names(user)), "user_is_admin": admin}
