"""Plays: validating and saving them, and evaluating them into alerts — by the beat and in real time.

Evaluation is one compiled query per active play (segments.compiler over Customer) that already excludes the
customers (or accounts) with an active alert for the play and those whose last alert closed inside the
play's cooldown, so a dismissed alert comes back only when the play triggers again after the cooldown. The
beat evaluates every customer; the stored-batch hook evaluates only the customers the batch touched (the
same query restricted to their ids), inside the batch's transaction, after trials.loop.lifecycle has refreshed their
trial (hooks run in registration order). The unique constraint on active alerts settles the race between
the two doors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import CharField, Exists, F, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from audiences.models import ComputedTrait, Customer
from audiences.pipeline import BatchFacts
from segments.compiler import compile_tree
from segments.conditions import InvalidCondition, parse_tree
from segments.live.compiled import COMPILED_CACHE_SIZE, CompiledQuery, compiled_at_any_instant
from segments.live.dependencies import Dependencies, dependencies
from segments.models import Segment
from segments.usage import SegmentUse
from trials.messaging.holdout import holdout_errors
from trials.plays.alerts import Target, alerts_create, alerts_wake, business_schedule
from trials.plays.briefs import play_template_errors
from trials.plays.business_hours import NoBusinessHours, add_business_hours
from trials.plays.models import Alert, Play

logger = logging.getLogger(__name__)
# The beat evaluates at most this many new targets per play and run; the next run continues.
EVALUATE_LIMIT = 1000
ACTIVE_PLAYS_TTL = 30.0  # seconds a worker process trusts its copy of the active plays' dependencies
_active: dict[str, tuple[float, list[tuple[int, Dependencies]]]] = {}
# Longer cooldowns mean "never again" in practice, and far larger ones overflow `now - cooldown`.
MAX_COOLDOWN_HOURS = 24 * 365 * 2
# What a play saved before its inputs changed can raise when evaluated: a condition that no longer parses
# (InvalidCondition is a ValueError), an SLA the business hours cannot reach (NoBusinessHours, likewise), a
# cooldown from before MAX_COOLDOWN_HOURS (OverflowError). None of them comes from the database, so skipping
# the play leaves the surrounding transaction usable.
PLAY_ERRORS = (ValueError, TypeError, OverflowError)


def play_validate(play: Play) -> None:
    """Raise ValidationError (per field) when the condition, the message, the SLA or the cooldown cannot be used:
    a play that cannot be evaluated would only be skipped (and logged) by every evaluation."""
    errors: dict[str, list[str]] = {}
    try:
        parse_tree(play.condition)
    except (InvalidCondition, ValueError, TypeError) as invalid:
        errors["condition"] = [str(invalid)]
    keys = set(ComputedTrait.objects.values_list("key", flat=True))
    for field in ("subject", "body"):
        found = play_template_errors(getattr(play, field), computed_keys=keys)
        if found:
            errors[field] = found
    errors.update(holdout_errors(play.holdout_percent, no_holdout=play.no_holdout))
    if play.sla_business_hours < 1:
        errors["sla_business_hours"] = ["At least one business hour."]
    else:
        try:
            add_business_hours(timezone.now(), play.sla_business_hours, business_schedule())
        except NoBusinessHours:
            errors["sla_business_hours"] = ["The business hours never reach this SLA; choose fewer hours."]
    if play.cooldown_hours > MAX_COOLDOWN_HOURS:
        errors["cooldown_hours"] = [f"At most {MAX_COOLDOWN_HOURS} hours (two years)."]
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def play_save(play: Play) -> Play:
    """Validate, then save: the one door for creating and editing plays."""
    play_validate(play)
    play.save()
    active_plays_forget()
    return play


def _active_plays() -> list[tuple[int, Dependencies]]:
    """The active plays and what their conditions read, kept per process for ACTIVE_PLAYS_TTL so a batch that
    cannot change any play costs no query. A stale copy only delays real-time alerts; the beat sees every
    play as it is."""
    cached = _active.get("plays")
    if cached is not None and time.monotonic() - cached[0] < ACTIVE_PLAYS_TTL:
        return cached[1]
    found: list[tuple[int, Dependencies]] = []
    for pk, condition in Play.objects.filter(active=True).order_by("priority", "pk").values_list("pk", "condition"):
        try:
            found.append((pk, dependencies(parse_tree(condition))))
        except (InvalidCondition, ValueError):
            continue  # saved before a property it names was removed; play_save refuses such trees
    _active["plays"] = (time.monotonic(), found)
    return found


def active_plays_forget() -> None:
    """Drop this process's copy of the active plays (after one was saved)."""
    _active.clear()


def _key_expression(play: Play) -> Any:
    if play.target == Play.Target.ACCOUNT:
        return Concat(Value("a:"), Cast(OuterRef("account_id"), output_field=CharField()))
    return Concat(Value("c:"), Cast(OuterRef("pk"), output_field=CharField()))


def play_candidates(play: Play, *, now: datetime, customer_ids: Collection[int] | None = None) -> QuerySet[Customer]:
    """The customers the play fires for now: the condition holds, test customers only in test mode (and never
    otherwise), no active alert for the same customer (or account), none closed within the cooldown."""
    customers = Customer.objects.filter(compile_tree(parse_tree(play.condition), now), is_test=play.test_mode)
    if customer_ids is not None:
        customers = customers.filter(pk__in=list(customer_ids))
    if play.target == Play.Target.ACCOUNT:
        customers = customers.filter(account__isnull=False)
    same = Alert.objects.filter(play=play, dedup_key=_key_expression(play))
    cooling = same.filter(status__in=Alert.CLOSED_STATUSES, closed_at__gt=now - timedelta(hours=play.cooldown_hours))
    active = same.filter(status__in=Alert.ACTIVE_STATUSES)
    return customers.filter(~Q(Exists(active)), ~Q(Exists(cooling)))


def _targets(play: Play, customers: QuerySet[Customer]) -> list[Target]:
    """One target per customer, or per account for account plays (its most recently seen matching member)."""
    rows = customers.order_by("account_id", "-last_seen_at", "pk").values_list("pk", "account_id", "account__owner_id")
    return _targets_of(play, rows[: EVALUATE_LIMIT * 5])


def _targets_of(play: Play, rows: Iterable[tuple[int, int | None, int | None]]) -> list[Target]:
    """Targets from (customer, account, account owner) rows in order of preference."""
    targets: list[Target] = []
    seen_accounts: set[int | None] = set()
    for customer_id, account_id, owner_id in rows:
        if play.target == Play.Target.ACCOUNT:
            if account_id in seen_accounts:
                continue
            seen_accounts.add(account_id)
        targets.append(Target(customer_id=customer_id, account_id=account_id, owner_id=owner_id))
        if len(targets) >= EVALUATE_LIMIT:
            break
    return targets


def play_evaluate(play: Play, *, now: datetime, customer_ids: Collection[int] | None = None) -> list[Alert]:
    """Create the alerts one play fires now (restricted to `customer_ids` when given)."""
    targets = _targets(play, play_candidates(play, now=now, customer_ids=customer_ids))
    return alerts_create(play=play, targets=targets, now=now)


def _play_evaluate_or_skip(
    play: Play, *, now: datetime, customer_ids: Collection[int] | None = None
) -> list[Alert] | None:
    """play_evaluate, or None (logged) when the play cannot be evaluated (PLAY_ERRORS): one broken play must not
    stop the others, nor fail the ingestion batch whose hook evaluates it."""
    try:
        return play_evaluate(play, now=now, customer_ids=customer_ids)
    except PLAY_ERRORS:
        logger.exception("Play %s (%r) could not be evaluated; skipped", play.pk, play.key)
        return None


def plays_evaluate(*, now: datetime | None = None, customer_ids: Collection[int] | None = None) -> dict[str, int]:
    """Every active play, for everyone (the beat) or for the given customers (real time); snoozed alerts whose
    time came are put back first (beat only). A play that cannot be evaluated is logged and counted as failed."""
    now = now or timezone.now()
    totals = {"plays": 0, "alerts": 0, "holdout": 0, "woken": 0, "failed": 0}
    if customer_ids is None:
        totals["woken"] = alerts_wake(now=now)
    for play in Play.objects.filter(active=True).order_by("priority", "pk"):
        created = _play_evaluate_or_skip(play, now=now, customer_ids=customer_ids)
        if created is None:
            totals["failed"] += 1
            continue
        totals["plays"] += 1
        totals["holdout"] += sum(1 for alert in created if alert.status == Alert.Status.HOLDOUT)
        totals["alerts"] += sum(1 for alert in created if alert.status != Alert.Status.HOLDOUT)
    return totals


@dataclass(frozen=True)
class _CompiledPlay:
    """A play's candidate query compiled once (valid at any instant), and the segment versions its tree inlined."""

    query: CompiledQuery
    references: tuple[tuple[int, datetime], ...]


_compiled_plays: dict[tuple[Any, ...], _CompiledPlay] = {}


def _compiled_play(play: Play) -> CompiledQuery:
    """The play's candidates (play_candidates) as one compiled SELECT of (customer, account, account owner, last
    seen), cached per process by everything it is built from — the play's condition, test mode, target and
    cooldown, and the versions of the segments the condition inlines — so a batch pays no parsing or ORM
    compilation. Raises what parsing or compiling raises (PLAY_ERRORS)."""
    key = (play.pk, orjson.dumps(play.condition, option=orjson.OPT_SORT_KEYS), play.test_mode, play.target,
           play.cooldown_hours)  # fmt: skip
    cached = _compiled_plays.get(key)
    if cached is not None and cached.references:
        current = Segment.objects.filter(pk__in=[pk for pk, _ in cached.references]).values_list("pk", "updated_at")
        if tuple(sorted(current)) != cached.references:
            cached = None
    if cached is None:
        tree = parse_tree(play.condition)
        references = dependencies(tree).references
        versions = tuple(sorted(Segment.objects.filter(pk__in=references).values_list("pk", "updated_at")))

        def candidates(now: datetime) -> QuerySet[Any]:
            return (
                play_candidates(play, now=now)
                .order_by()
                .values(
                    play_customer=F("pk"),
                    play_account=F("account_id"),
                    play_owner=F("account__owner_id"),
                    play_seen=F("last_seen_at"),
                )
            )

        if len(_compiled_plays) >= COMPILED_CACHE_SIZE:
            _compiled_plays.clear()
        cached = _compiled_plays[key] = _CompiledPlay(compiled_at_any_instant(candidates, f"play {play.pk}"), versions)
    return cached.query


def _batch_targets(plays: list[Play], customers: dict[int, set[int]], now: datetime) -> dict[int, list[Target]]:
    """Each play's targets among its customers, for every play in one statement (UNION ALL of the compiled
    candidate queries, each restricted to its customers); a play that cannot be compiled is logged and left out."""
    parts: list[tuple[str, tuple[Any, ...]]] = []
    for play in plays:
        try:
            sql, params = _compiled_play(play).at(now)
        except PLAY_ERRORS:
            logger.exception("Play %s (%r) could not be evaluated; skipped", play.pk, play.key)
            continue
        ids = ", ".join(str(int(pk)) for pk in sorted(customers[play.pk]))  # our own integer ids
        parts.append(
            (
                f"SELECT {int(play.pk)}, c.play_customer, c.play_account, c.play_owner, c.play_seen "
                f"FROM ({sql}) c WHERE c.play_customer IN ({ids})",
                params,
            )
        )
    rows: dict[int, list[tuple[int, int | None, int | None, Any]]] = {}
    if parts:
        with connection.cursor() as cursor:
            cursor.execute(" UNION ALL ".join(sql for sql, _ in parts), [p for _, params in parts for p in params])
            for play_id, customer_id, account_id, owner_id, seen in cursor.fetchall():
                rows.setdefault(int(play_id), []).append((customer_id, account_id, owner_id, seen))
    targets: dict[int, list[Target]] = {}
    for play_id, found in rows.items():
        # As _targets orders them: by account, the most recently seen member first (never seen last), then id.
        found.sort(key=lambda r: (r[1] is None, r[1] or 0, r[3] is None, -_seconds(r[3]), r[0]))
        play = next(play for play in plays if play.pk == play_id)
        targets[play_id] = _targets_of(play, [(c, a, o) for c, a, o, _ in found])
    return targets


def _seconds(seen: Any) -> float:
    """A last-seen value as a number (SQLite returns text from a raw cursor)."""
    if seen is None:
        return 0.0
    return (seen if isinstance(seen, datetime) else datetime.fromisoformat(seen)).timestamp()


def plays_on_batch(facts: BatchFacts, now: datetime) -> set[int]:
    """The stored-batch hook: each active play is evaluated for the customers whose result the batch could
    change (its events, profile and trial changes — the loop's hook runs first —, billing, computed traits),
    so a batch that touches no play's inputs costs no query, and one that does costs one statement for all the
    plays' candidates (compiled once per play, _compiled_play), then the alerts of those that fired. Changes no
    segment-visible data of its own."""
    wanted = {pk: facts.candidates(needs) for pk, needs in _active_plays()}
    wanted = {pk: customers for pk, customers in wanted.items() if customers}
    if not wanted:
        return set()
    plays = list(Play.objects.filter(pk__in=list(wanted), active=True).order_by("priority", "pk"))
    targets = _batch_targets(plays, wanted, now)
    for play in plays:
        if targets.get(play.pk):
            try:
                alerts_create(play=play, targets=targets[play.pk], now=now)
            except PLAY_ERRORS:
                logger.exception("Play %s (%r) could not be evaluated; skipped", play.pk, play.key)
    return set()


def _segment_ids(node: Any) -> set[int]:
    """Segments a stored condition tree refers to (`in segment` leaves), at any depth."""
    if not isinstance(node, dict):
        return set()
    found = {node["segment"]} if node.get("type") == "segment" and isinstance(node.get("segment"), int) else set()
    for child in node.get("children") or []:
        found |= _segment_ids(child)
    return found


def plays_using_segment(segment: Segment) -> list[SegmentUse]:
    """The segment-usage provider: plays whose condition names the segment (so its test mode warns)."""
    from django.urls import reverse

    return [
        SegmentUse(kind="Play", name=play.name, url=reverse("play-edit", args=[play.pk]))
        for play in Play.objects.only("pk", "name", "condition")
        if segment.pk in _segment_ids(play.condition)
    ]
