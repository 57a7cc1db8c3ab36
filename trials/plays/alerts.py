"""The rep alert queue: creating alerts (assignment, SLA, brief, notifications) and what reps do with them.

Assignment: the account's owner when they can take work (active user, not away), else round-robin among
active Sales reps not marked away, least recently assigned first, so a batch of N alerts spreads evenly and
the next batch continues where this one stopped. The rep profiles are locked (SELECT … FOR UPDATE) while a
batch is assigned, so two workers cannot both hand the next alert to the same rep.

Actions lock the alert row (SELECT … FOR UPDATE) and check its state under the lock, so of two reps claiming
at once exactly one wins and the other gets a conflict. Every refusal is an AlertActionError with a code the
API and pages turn into 404 / 403 / 409 / 400.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import Count, F, Q, QuerySet, Value
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from config.facts import Fact, FactKind, facts_record
from config.roles import Role
from trials.messaging.holdout import held_out
from trials.plays.briefs import briefs_store
from trials.plays.business_hours import DEFAULT_WORKDAYS, Schedule, add_business_hours
from trials.plays.models import Alert, BusinessHours, Holiday, Play, RepProfile

logger = logging.getLogger(__name__)
MANAGER_PERMISSION = "trials.view_all_alerts"
ACT_PERMISSION = "trials.change_alert"
SLA_REPORT_DAYS = 30


class AlertActionError(Exception):
    """A refused action; `code` is not_found, forbidden, conflict or invalid."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class Target:
    """One customer (or account) a play fired for, with the account's owner for assignment."""

    customer_id: int
    account_id: int | None
    owner_id: int | None


# --- settings ----------------------------------------------------------------------------------------------


def business_hours_settings() -> BusinessHours:
    """The one business-hours row (created with defaults when a database has none)."""
    row, _ = BusinessHours.objects.get_or_create(pk=1, defaults={"workdays": sorted(DEFAULT_WORKDAYS)})
    return row


def _workdays(stored: Any) -> frozenset[int]:
    """The stored workdays when they are a non-empty set of ISO weekdays, else the default: a row edited outside
    the settings form must not stop every alert from getting a due time."""
    if isinstance(stored, list) and stored and all(type(day) is int and 1 <= day <= 7 for day in stored):
        return frozenset(stored)
    return DEFAULT_WORKDAYS


def business_schedule(*, today: datetime | None = None) -> Schedule:
    """The configured schedule with the holidays of the coming year (two queries)."""
    row = business_hours_settings()
    try:
        zone = ZoneInfo(row.time_zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    start = (today or timezone.now()).date() - timedelta(days=1)
    holidays = frozenset(
        Holiday.objects.filter(day__gte=start, day__lte=start + timedelta(days=400)).values_list("day", flat=True)
    )
    return Schedule(
        zone=zone,
        start_hour=row.start_hour,
        end_hour=row.end_hour,
        workdays=_workdays(row.workdays),
        holidays=holidays,
    )


# --- assignment ----------------------------------------------------------------------------------------------


def _rep_users() -> QuerySet[Any]:
    return get_user_model().objects.filter(is_active=True, groups__name=Role.SALES_REP.value)


def rep_profile(user: Any) -> RepProfile:
    """The user's rep profile, created on first use."""
    profile, _ = RepProfile.objects.get_or_create(user=user)
    return profile


def rep_set_away(*, user: Any, away: bool) -> RepProfile:
    """Take a rep out of (or back into) round-robin assignment; their open alerts stay theirs."""
    profile = rep_profile(user)
    if profile.away != away:
        profile.away = away
        profile.save(update_fields=["away"])
    return profile


def _available_reps() -> list[RepProfile]:
    """Active reps not away, least recently assigned first, locked for the rest of the transaction."""
    ids = list(_rep_users().values_list("pk", flat=True).distinct())
    RepProfile.objects.bulk_create([RepProfile(user_id=pk) for pk in ids], ignore_conflicts=True)
    locked = RepProfile.objects.select_for_update().filter(user_id__in=ids, away=False).order_by("pk")
    return sorted(
        locked, key=lambda p: (p.last_assigned_at is not None, p.last_assigned_at or timezone.now(), p.user_id)
    )


def _owners_available(owner_ids: set[int]) -> set[int]:
    """Owners who can take work: active users without an away profile."""
    if not owner_ids:
        return set()
    away = set(RepProfile.objects.filter(user_id__in=owner_ids, away=True).values_list("user_id", flat=True))
    active = set(get_user_model().objects.filter(pk__in=owner_ids, is_active=True).values_list("pk", flat=True))
    return active - away


def assignees_choose(targets: Sequence[Target], now: datetime) -> list[int | None]:
    """The assignee of each target, in order: the owner when available, else the next rep in the round robin
    (None when no rep is available: the alert waits unassigned). Updates the reps' last assignment times."""
    owners = _owners_available({t.owner_id for t in targets if t.owner_id is not None})
    reps: list[RepProfile] | None = None
    chosen: list[int | None] = []
    used: list[RepProfile] = []
    for target in targets:
        if target.owner_id is not None and target.owner_id in owners:
            chosen.append(target.owner_id)
            continue
        if reps is None:
            reps = _available_reps()
        if not reps:
            chosen.append(None)
            continue
        rep = reps.pop(0)
        # Microsecond steps keep this batch's order for the next batch (least recently assigned first).
        rep.last_assigned_at = now + timedelta(microseconds=len(used))
        used.append(rep)
        reps.append(rep)
        chosen.append(rep.user_id)
    if used:
        RepProfile.objects.bulk_update(list({p.pk: p for p in used}.values()), ["last_assigned_at"])
    return chosen


# --- creation ------------------------------------------------------------------------------------------------


def in_holdout(play: Play, dedup_key: str) -> bool:
    """Deterministic per play and customer (or account): the same one is always in (or out of) the control."""
    return held_out(play.key, dedup_key, play.holdout_percent)


def dedup_key(play: Play, target: Target) -> str:
    """`a:<account>` for account plays (with an account), else `c:<customer>`."""
    if play.target == Play.Target.ACCOUNT and target.account_id is not None:
        return f"a:{target.account_id}"
    return f"c:{target.customer_id}"


def alerts_create(*, play: Play, targets: Sequence[Target], now: datetime) -> list[Alert]:
    """Create the play's alerts for these targets (callers have excluded those with an active alert or in
    cooldown; a concurrent run's row wins the unique constraint and ours is dropped). Returns the alerts that
    were created, holdout rows included; queued ones carry their assignee, due time and brief, and are
    announced to destinations and by email once the transaction commits."""
    if not targets:
        return []
    with transaction.atomic():
        keys = [dedup_key(play, t) for t in targets]
        queued = [t for t, key in zip(targets, keys, strict=True) if not in_holdout(play, key)]
        assignees = dict(zip([t.customer_id for t in queued], assignees_choose(queued, now), strict=True))
        due = add_business_hours(now, play.sla_business_hours, business_schedule(today=now))
        rows = []
        for target, key in zip(targets, keys, strict=True):
            holdout = target.customer_id not in assignees
            rows.append(
                Alert(
                    play=play,
                    customer_id=target.customer_id,
                    account_id=target.account_id,
                    dedup_key=key,
                    status=Alert.Status.HOLDOUT if holdout else Alert.Status.OPEN,
                    assignee_id=None if holdout else assignees[target.customer_id],
                    priority=play.priority,
                    due_at=due,
                    created_at=now,
                    closed_at=now if holdout else None,
                )
            )
        Alert.objects.bulk_create(rows, ignore_conflicts=True)
        created = list(
            Alert.objects.filter(play=play, dedup_key__in=keys, created_at=now)
            .select_related("play", "customer", "customer__account", "assignee")
            .order_by("pk")
        )
        to_queue = [alert for alert in created if alert.status == Alert.Status.OPEN]
        briefs_store(to_queue, now=now)
        alerts_announce(to_queue, now=now)
    return created


def _alert_url(alert: Alert) -> str:
    return str(settings.TRIALLOOP_PUBLIC_URL).rstrip("/") + reverse("alert-detail", args=[alert.pk])


def alerts_announce(alerts: Sequence[Alert], *, now: datetime) -> None:
    """Alert created → a destination message for CRM/Slack-style receivers, and an email to the assignee when
    the play asks for one (sent after the commit, so a rolled-back alert never pages anyone)."""
    facts_record(
        [
            Fact(
                kind=FactKind.ALERT_CREATED,
                customer_id=alert.customer_id,
                idempotency_key=f"alert_created:{alert.pk}",
                occurred_at=now,
                data={
                    "alert": {
                        "id": alert.pk,
                        "url": _alert_url(alert),
                        "priority": alert.priority,
                        "due_at": alert.due_at,
                        "assignee": alert.assignee.get_username() if alert.assignee else None,
                    },
                    "play": {"key": alert.play.key, "name": alert.play.name},
                    "brief": {
                        "who": alert.brief.get("who", {}),
                        "scores": {k: v for k, v in alert.brief.get("scores", {}).items() if k != "breakdown"},
                        "use_case": alert.brief.get("use_case", ""),
                        "trial_days_left": alert.brief.get("trial", {}).get("days_left"),
                    },
                },
            )
            for alert in alerts
        ]
    )
    emails = [_assignee_email(alert) for alert in alerts if alert.play.notify_assignee]
    ready = [email for email in emails if email is not None]
    if ready:
        transaction.on_commit(lambda: _send(ready))


def _send(emails: list[EmailMessage]) -> None:
    """Send the assignee emails; a mail server that is down is logged, never undoes or fails the evaluation
    (the alerts are committed and in the queue either way)."""
    try:
        get_connection().send_messages(emails)
    except Exception:
        logger.exception("Could not email %d alert assignee(s)", len(emails))


def _assignee_email(alert: Alert) -> EmailMessage | None:
    assignee = alert.assignee
    if assignee is None or not assignee.email:
        return None
    who = alert.brief.get("who", {})
    message = alert.brief.get("message", {})
    body = (
        f"{alert.play.name}: {who.get('name', '')} ({who.get('company', '')}).\n"
        f"Due {alert.due_at:%a %d %b %H:%M} UTC.\n\n{_alert_url(alert)}\n\n"
        f"Suggested message:\n{message.get('subject', '')}\n\n{message.get('body', '')}\n"
    )
    return EmailMessage(
        subject=f"New alert: {alert.play.name} — {who.get('name', '')}",
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[assignee.email],
    )


# --- reading -------------------------------------------------------------------------------------------------


def is_manager(user: Any) -> bool:
    return bool(user.has_perm(MANAGER_PERMISSION))


def alerts_visible(user: Any) -> QuerySet[Alert]:
    """What the user may see: managers every queued or closed alert, reps their own and unassigned ones;
    holdout rows are nobody's work and never listed."""
    alerts = Alert.objects.exclude(status=Alert.Status.HOLDOUT)
    if user is None or not user.is_authenticated or not user.has_perm("trials.view_alert"):
        return alerts.none()
    if is_manager(user):
        return alerts
    return alerts.filter(Q(assignee=user) | Q(assignee__isnull=True))


def alerts_queue(user: Any, *, now: datetime, everyone: bool = False) -> QuerySet[Alert]:
    """The queue: my open/claimed alerts and the unassigned ones (a manager may ask for everyone's), snoozed
    ones hidden until their time, by SLA due time then priority."""
    if user is None or not user.is_authenticated:
        return Alert.objects.none()
    alerts = alerts_visible(user).filter(status__in=Alert.QUEUE_STATUSES)
    if not (everyone and is_manager(user)):
        alerts = alerts.filter(Q(assignee=user) | Q(assignee__isnull=True))
    alerts = alerts.exclude(status=Alert.Status.SNOOZED, snoozed_until__gt=now)
    return alerts.select_related("play", "customer", "customer__account", "assignee").order_by(
        "due_at", "priority", "pk"
    )


def alerts_snoozed(user: Any, *, now: datetime) -> QuerySet[Alert]:
    """My alerts snoozed until later."""
    return (
        alerts_visible(user)
        .filter(assignee=user, status=Alert.Status.SNOOZED, snoozed_until__gt=now)
        .select_related("play", "customer")
        .order_by("snoozed_until")
    )


@dataclass
class RepLoad:
    """One rep's load and SLA attainment for the manager page."""

    user_id: int
    username: str
    away: bool
    open: int
    claimed: int
    snoozed: int
    overdue: int
    closed: int
    met: int
    missed: int

    @property
    def attainment(self) -> int | None:
        judged = self.met + self.missed
        return round(100 * self.met / judged) if judged else None


def team_load(*, now: datetime, days: int = SLA_REPORT_DAYS) -> list[RepLoad]:
    """Per rep (and the unassigned pile): open, claimed, snoozed and overdue alerts now; over the last `days`,
    alerts closed and the SLA met (first touched — claimed or closed — by the due time) or missed (touched late,
    or still untouched past due). Two queries."""
    since = now - timedelta(days=days)
    queue = Q(status__in=Alert.QUEUE_STATUSES)
    touched_on_time = Q(claimed_at__isnull=False, claimed_at__lte=F("due_at")) | Q(
        claimed_at__isnull=True, closed_at__isnull=False, closed_at__lte=F("due_at")
    )
    untouched = Q(claimed_at__isnull=True, closed_at__isnull=True)
    rows = (
        Alert.objects.exclude(status=Alert.Status.HOLDOUT)
        .filter(queue | Q(created_at__gte=since))
        .order_by()
        .values("assignee_id")
        .annotate(
            open=Count("pk", filter=Q(status=Alert.Status.OPEN)),
            claimed=Count("pk", filter=Q(status=Alert.Status.CLAIMED)),
            snoozed=Count("pk", filter=Q(status=Alert.Status.SNOOZED)),
            overdue=Count("pk", filter=queue & Q(due_at__lt=now)),
            closed=Count("pk", filter=Q(status__in=Alert.CLOSED_STATUSES, closed_at__gte=since)),
            met=Count("pk", filter=Q(created_at__gte=since) & touched_on_time),
            missed=Count(
                "pk",
                filter=Q(created_at__gte=since) & ~touched_on_time & (~untouched | Q(due_at__lt=now)),
            ),
        )
    )
    by_user = {row["assignee_id"]: row for row in rows}
    reps = list(_rep_users().distinct().order_by("username").values_list("pk", "username", "rep_profile__away"))
    known = {pk for pk, _, _ in reps}
    extra = [pk for pk in by_user if pk is not None and pk not in known]
    if extra:
        reps += list(get_user_model().objects.filter(pk__in=extra).values_list("pk", "username", "rep_profile__away"))
    empty = {"open": 0, "claimed": 0, "snoozed": 0, "overdue": 0, "closed": 0, "met": 0, "missed": 0}
    loads = [
        RepLoad(user_id=pk, username=name, away=bool(away), **{k: by_user.get(pk, empty)[k] for k in empty})
        for pk, name, away in reps
    ]
    if None in by_user:
        loads.append(RepLoad(user_id=0, username="(unassigned)", away=False, **{k: by_user[None][k] for k in empty}))
    return loads


# --- actions -------------------------------------------------------------------------------------------------


def _locked(alert_id: int, user: Any) -> Alert:
    """The alert row locked for this transaction, if the user may act on it at all."""
    if user is None or not user.is_authenticated or not user.has_perm(ACT_PERMISSION):
        raise AlertActionError("forbidden", "Your role does not allow working alerts.")
    alert = alerts_visible(user).select_for_update().filter(pk=alert_id).first()
    if alert is None:
        raise AlertActionError("not_found", f"No alert {alert_id} in your queue.")
    return alert


def _mine_or_unassigned(alert: Alert, user: Any, action: str) -> None:
    if alert.status not in Alert.QUEUE_STATUSES:
        raise AlertActionError("conflict", f"The alert is {alert.get_status_display().lower()}; it cannot be {action}.")
    if alert.assignee_id is not None and alert.assignee_id != user.pk:
        owner = alert.assignee.get_username() if alert.assignee else "another rep"
        raise AlertActionError("conflict", f"The alert is assigned to {owner}.")


def alert_claim(*, alert_id: int, user: Any, now: datetime | None = None) -> Alert:
    """Take an open (or snoozed) alert: it becomes mine and claimed. Claiming one I already hold is a no-op;
    one another rep holds is a conflict — under the row lock, so of concurrent claims one wins."""
    now = now or timezone.now()
    with transaction.atomic():
        alert = _locked(alert_id, user)
        if alert.status == Alert.Status.CLAIMED and alert.assignee_id == user.pk:
            return alert
        _mine_or_unassigned(alert, user, "claimed")
        if alert.status == Alert.Status.CLAIMED:
            raise AlertActionError("conflict", "The alert is already claimed.")
        alert.status, alert.assignee_id, alert.snoozed_until = Alert.Status.CLAIMED, user.pk, None
        alert.claimed_at = alert.claimed_at or now
        alert.save(update_fields=["status", "assignee", "snoozed_until", "claimed_at"])
    return alert


def alert_release(*, alert_id: int, user: Any, now: datetime | None = None) -> Alert:
    """Give a claimed alert back to the unassigned pile for another rep to take."""
    with transaction.atomic():
        alert = _locked(alert_id, user)
        if alert.assignee_id != user.pk or alert.status not in Alert.QUEUE_STATUSES:
            raise AlertActionError("conflict", "Only the rep holding an alert can release it.")
        alert.status, alert.assignee, alert.snoozed_until = Alert.Status.OPEN, None, None
        alert.save(update_fields=["status", "assignee", "snoozed_until"])
    return alert


def alert_snooze(*, alert_id: int, user: Any, until: datetime, now: datetime | None = None) -> Alert:
    """Hide the alert from the queue until `until` (it stays mine); it comes back by itself."""
    now = now or timezone.now()
    if timezone.is_naive(until):
        raise AlertActionError("invalid", "Give the snooze time with its time zone.")
    if until <= now:
        raise AlertActionError("invalid", "Snooze until a time in the future.")
    if until > now + timedelta(days=90):
        raise AlertActionError("invalid", "Snooze for at most 90 days.")
    with transaction.atomic():
        alert = _locked(alert_id, user)
        _mine_or_unassigned(alert, user, "snoozed")
        alert.status, alert.assignee_id, alert.snoozed_until = Alert.Status.SNOOZED, user.pk, until
        alert.save(update_fields=["status", "assignee", "snoozed_until"])
    return alert


def alert_done(*, alert_id: int, user: Any, outcome: str, notes: str = "", now: datetime | None = None) -> Alert:
    """Close the alert with what came of it; an unassigned alert becomes mine as I close it."""
    now = now or timezone.now()
    if outcome not in Alert.Outcome.values or not outcome:
        choices = ", ".join(v for v in Alert.Outcome.values if v)
        raise AlertActionError("invalid", f"Choose an outcome: {choices}.")
    with transaction.atomic():
        alert = _locked(alert_id, user)
        _mine_or_unassigned(alert, user, "closed")
        alert.status, alert.assignee_id, alert.outcome = Alert.Status.DONE, user.pk, outcome
        alert.notes, alert.closed_at, alert.snoozed_until = notes.strip(), now, None
        alert.save(update_fields=["status", "assignee", "outcome", "notes", "closed_at", "snoozed_until"])
    return alert


def alert_dismiss(*, alert_id: int, user: Any, notes: str = "", now: datetime | None = None) -> Alert:
    """Close the alert as not worth a call; the play may fire again for the customer after its cooldown."""
    now = now or timezone.now()
    with transaction.atomic():
        alert = _locked(alert_id, user)
        _mine_or_unassigned(alert, user, "dismissed")
        alert.status, alert.assignee_id, alert.notes = Alert.Status.DISMISSED, user.pk, notes.strip()
        alert.closed_at, alert.snoozed_until = now, None
        alert.save(update_fields=["status", "assignee", "notes", "closed_at", "snoozed_until"])
    return alert


def alerts_wake(*, now: datetime) -> int:
    """Snoozed alerts whose time came: back to claimed (they stay with their rep). One UPDATE."""
    return Alert.objects.filter(status=Alert.Status.SNOOZED, snoozed_until__lte=now).update(
        status=Alert.Status.CLAIMED, snoozed_until=None, claimed_at=Coalesce(F("claimed_at"), Value(now))
    )


def alert_for_user(*, alert_id: int, user: Any) -> Alert | None:
    """One alert the user may see, with what the detail page shows."""
    return (
        alerts_visible(user)
        .select_related("play", "customer", "customer__account", "assignee", "account")
        .filter(pk=alert_id)
        .first()
    )
