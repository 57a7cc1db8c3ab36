"""The four staff roles and what each may do.

Roles are Django groups carrying model permissions, so the same check guards the staff UI, the API and the
admin. Later features add their models' permissions here; `manage.py sync_roles` (run by `make run` and
after every migrate in CI) brings the groups in line with this table.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

ADMIN_ONLY = "__all__"


class Role(StrEnum):
    ADMIN = "Admin"
    GROWTH = "Growth"
    CS = "CS"
    SALES_REP = "Sales rep"


_READ_CUSTOMERS = [
    "segments.view_segment",
    "audiences.view_computedtrait",
    "segments.view_customproperty",
    "audiences.view_customer",
    "audiences.view_account",
    "audiences.view_event",
    "integrations.view_product",
    "integrations.view_plan",
    "integrations.view_addon",
    "integrations.view_subscription",
    "trials.view_trial",
    "trials.view_trialstagechange",
    "trials.view_activationdefinition",
    "trials.view_fitrule",
    "trials.view_scoresettings",
    "trials.view_messagetemplate",
    "trials.view_messagesend",
    "trials.view_emailsettings",
]

# Role -> permission codenames ("app_label.codename"), or ADMIN_ONLY for every permission there is.
_DATA_QUALITY = [
    "integrations.view_trackingplan",
    "integrations.view_trackingplanviolation",
    "integrations.view_ingestionerror",
    "integrations.view_importjob",
]
_MANAGE_SEGMENTS = [
    "segments.add_segment",
    "segments.change_segment",
    "segments.delete_segment",
    "segments.add_customproperty",
    "segments.change_customproperty",
]
_MANAGE_COMPUTED_TRAITS = [
    "audiences.add_computedtrait",
    "audiences.change_computedtrait",
    "audiences.delete_computedtrait",
]
# Switching a segment's live mode decides whether its membership changes are published (timeline, destinations,
# suppression), so it is gated on the membership permission, which only Admin and Growth hold: CS may edit
# segments but not turn them into audiences that reach other tools.
LIVE_AUDIENCE_PERMISSION = "segments.change_segmentmembership"
_MANAGE_TRACKING_PLANS = [
    "integrations.add_trackingplan",
    "integrations.change_trackingplan",
    "integrations.delete_trackingplan",
    "integrations.change_sourcetrackingplan",
    "integrations.add_importjob",
]

_VIEW_DESTINATIONS = [
    "integrations.view_destination",
    "integrations.view_destinationdelivery",
]
# Creating, editing, pausing and resuming destinations, rotating their secrets and replaying deliveries.
_MANAGE_DESTINATIONS = [
    "integrations.add_destination",
    "integrations.change_destination",
    "integrations.delete_destination",
]

# Offers, reasons, flows and their rules: read by every role, managed by Growth and CS (and Admin).
_VIEW_OFFERS = [
    "offers.view_offer",
    "offers.view_cancellationreason",
    "offers.view_cancellationflow",
    "offers.view_offerrule",
    "offers.view_flowrule",
    "offers.view_cancellationsession",
]
_MANAGE_OFFERS = [
    f"offers.{action}_{model}"
    for model in ("offer", "cancellationreason", "cancellationflow", "offerrule", "flowrule")
    for action in ("add", "change", "delete")
]

# The loop's definition (activation, habit) and scoring (fit rules, weights): managed by Growth (and Admin).
_MANAGE_TRIAL_LOOP = [
    "trials.change_activationdefinition",
    "trials.change_scoresettings",
    "trials.add_fitrule",
    "trials.change_fitrule",
    "trials.delete_fitrule",
    "trials.change_messagetemplate",
    "trials.add_messagetemplate",
    "trials.delete_messagetemplate",
    "trials.change_emailsettings",
]

# Sales-assist plays and the alert queue: reps see the plays and work their alerts (claim, snooze, close) and set
# themselves away; Growth (and Admin) manage plays and business hours and see every rep's load.
_WORK_ALERTS = [
    "trials.view_play",
    "trials.view_alert",
    "trials.change_alert",
    "trials.view_businesshours",
    "trials.view_holiday",
]
_MANAGE_PLAYS = [
    "trials.add_play",
    "trials.change_play",
    "trials.delete_play",
    "trials.view_all_alerts",
    "trials.view_repprofile",
    "trials.change_businesshours",
    "trials.add_holiday",
    "trials.delete_holiday",
]

ROLE_PERMISSIONS: dict[Role, list[str] | str] = {
    Role.ADMIN: ADMIN_ONLY,
    Role.GROWTH: [
        *_READ_CUSTOMERS,
        *_DATA_QUALITY,
        *_MANAGE_TRACKING_PLANS,
        *_MANAGE_SEGMENTS,
        *_MANAGE_COMPUTED_TRAITS,
        LIVE_AUDIENCE_PERMISSION,
        *_VIEW_DESTINATIONS,
        *_MANAGE_DESTINATIONS,
        *_VIEW_OFFERS,
        *_MANAGE_OFFERS,
        *_MANAGE_TRIAL_LOOP,
        *_WORK_ALERTS,
        *_MANAGE_PLAYS,
        "audiences.change_customer",
        "audiences.change_account",
    ],
    Role.CS: [
        *_READ_CUSTOMERS,
        *_MANAGE_SEGMENTS,
        *_VIEW_DESTINATIONS,
        *_VIEW_OFFERS,
        *_MANAGE_OFFERS,
        "audiences.change_customer",
        "audiences.change_account",
    ],
    Role.SALES_REP: [*_READ_CUSTOMERS, *_VIEW_OFFERS, *_WORK_ALERTS],
}


def role_names(user: Any) -> set[str]:
    """Names of the roles a user holds (cached on the user object for the request)."""
    if not getattr(user, "is_authenticated", False):
        return set()
    cached: set[str] | None = getattr(user, "_trialloop_roles", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        user._trialloop_roles = cached
    return cached


def is_admin(user: Any) -> bool:
    """Admins manage sources, secrets and users; a superuser counts as one."""
    return bool(getattr(user, "is_superuser", False) or Role.ADMIN in role_names(user))
