"""Durable timers: "call this handler with this payload at that moment", kept in the database.

Why not Celery countdowns alone: a countdown lives in the broker and in a worker's memory, so a restart or a
lost message loses it, and two deliveries of one message run it twice. Why not a sweep alone: a sweep every N
seconds is up to N seconds late. Here each timer is a row (config.models.Timer), and:

* **On time.** Scheduling a timer due within the next `ETA_HORIZON` queues, after the transaction commits, a
  Celery message with `eta=due_at` that fires whatever is due when it runs; timers due later get their message
  from the sweep once they come within the horizon (so the broker never holds months of countdowns). Firing is
  usually a few milliseconds late.
* **Never lost.** A beat entry every few seconds (config.schedules, "durable timers") fires anything due whose
  message was lost — a worker restart, a broker flush — and queues the messages of timers coming due.
* **Exactly once.** Due rows are claimed with one conditional UPDATE (`FOR UPDATE SKIP LOCKED` on PostgreSQL;
  SQLite serialises writers) that stamps a claim token and a lease. The handler then runs in a transaction that
  locks the still-claimed rows and marks them fired in the same commit as the handler's own writes: two workers
  never fire one timer, and a worker that dies between claim and completion leaves nothing committed — the
  timer is claimed again when its lease expires, not lost.
* **Failures are isolated and retried.** A kind's timers are handed to its handler together (set-based
  handlers); if the handler raises, each timer is retried alone, so one bad timer does not hold back the rest.
  A timer whose handler still raises records the error and is tried again after config.retry.retry_backoff, up
  to `MAX_ATTEMPTS` tries, then is left marked failed (visible in the admin).

Handlers are registered per kind by the apps that own them, in their `AppConfig.ready()` (this kernel module
never imports them). A handler may run again for a timer it already handled (a lease expired during a very slow
run, or the same moment scheduled again after firing): **handlers must be idempotent** — decide from the current
state of the database, never from the mere fact of being called.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery import shared_task
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from config.models import Timer
from config.retry import retry_backoff

logger = logging.getLogger(__name__)

# How far ahead a timer gets its on-time Celery message (the rest wait in the table for the sweep).
ETA_HORIZON = timedelta(minutes=10)
# Messages are queued per slice of time, not per timer: timers due in the same 50 ms share one.
ETA_SLICE_MS = 50
# A claim not completed within the lease (a worker died) is claimed again after it.
CLAIM_LEASE = timedelta(minutes=5)
CLAIM_BATCH = 500
MAX_ATTEMPTS = 10
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class DueTimer:
    """What a handler receives for each timer it fires."""

    kind: str
    key: str
    due_at: datetime
    payload: dict[str, Any]
    attempts: int  # including this one


TimerHandler = Callable[[Sequence[DueTimer]], None]
_handlers: dict[str, TimerHandler] = {}


def timer_handler(kind: str) -> Callable[[TimerHandler], TimerHandler]:
    """Decorator: register the handler that fires timers of `kind` (one per kind; see register_timer_handler)."""

    def register(handler: TimerHandler) -> TimerHandler:
        register_timer_handler(kind, handler)
        return handler

    return register


def register_timer_handler(kind: str, handler: TimerHandler) -> None:
    """Register the one handler of a kind, from the owning app's `AppConfig.ready()`.

    It is called with a batch of due timers of that kind, inside the transaction that marks them fired (its
    writes commit with the mark, or neither does), and must be idempotent (see the module docstring)."""
    existing = _handlers.get(kind)
    if existing is not None and existing is not handler:
        raise ValueError(f"timer kind {kind!r} already has a handler: {existing!r}")
    _handlers[kind] = handler


def unregister_timer_handler(kind: str) -> None:
    """Forget a kind's handler (tests that register their own)."""
    _handlers.pop(kind, None)


def _slice(due_at: datetime) -> datetime:
    """The end of the ETA slice the moment falls in (a message never runs before its timers are due)."""
    step = ETA_SLICE_MS * 1000
    micros = due_at.timestamp() * 1_000_000
    return datetime.fromtimestamp(math.ceil(micros / step) * step / 1_000_000, tz=due_at.tzinfo)


def _queue_on_commit(moments: Iterable[datetime]) -> None:
    """After commit, one `fire_timers` message per ETA slice of these moments."""
    slices = sorted({_slice(moment) for moment in moments})
    if slices:
        transaction.on_commit(lambda: _queue(slices))


def _queue(slices: list[datetime]) -> None:
    for eta in slices:
        fire_timers.apply_async(eta=eta)


def timer_schedule(kind: str, key: str, due_at: datetime, payload: dict[str, Any] | None = None) -> None:
    """Arm the timer `key` to fire `kind`'s handler at `due_at` (see timers_schedule)."""
    timers_schedule(kind, [(key, due_at, payload or {})])


def timers_schedule(
    kind: str, timers: Iterable[tuple[str, datetime, dict[str, Any]]], *, now: datetime | None = None
) -> int:
    """Arm timers (key, due_at, payload) of one kind, in one statement per thousand timers.

    An upsert by key: a new key is created; an existing one is moved to the new moment and payload and armed
    again (fired or not, failed or not, even while a worker is firing it: that worker's completion no longer
    matches and the timer fires again at its new time). Scheduling a key again for the moment it is already set
    to changes nothing — the conflict clause writes only rows whose moment (or kind) moved — so it is
    idempotent, a retried caller never fires a timer twice, and re-arming unchanged timers costs no row write.
    Returns how many were armed. Run it inside the transaction that decided the moment: the timer exists if and
    only if that commits."""
    now = now or timezone.now()
    wanted = {key: (due_at, payload) for key, due_at, payload in timers}
    if not wanted:
        return 0
    horizon = now + ETA_HORIZON
    table = Timer._meta.db_table
    payload_field = Timer._meta.get_field("payload")
    adapt = connection.ops.adapt_datetimefield_value
    created = adapt(now)
    columns = ", ".join(
        connection.ops.quote_name(name)
        for name in ("kind", "key", "due_at", "payload", "created_at", "fired_at", "claim_token", "claimed_until",
                     "queued_for", "attempts", "last_error", "failed_at")
    )  # fmt: skip
    rows = [
        [kind, key, adapt(due_at), payload_field.get_db_prep_save(payload, connection), created,
         adapt(due_at) if due_at <= horizon else None]
        for key, (due_at, payload) in wanted.items()
    ]  # fmt: skip
    quoted_key = connection.ops.quote_name("key")
    armed: list[tuple[str]] = []
    per_statement = min(1000, (connection.features.max_query_params or 6000) // 6)
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            values = ", ".join(["(%s, %s, %s, %s, %s, NULL, '', NULL, %s, 0, '', NULL)"] * len(chunk))
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {values} ON CONFLICT ({quoted_key}) DO UPDATE SET "
                "kind = EXCLUDED.kind, due_at = EXCLUDED.due_at, payload = EXCLUDED.payload, fired_at = NULL, "
                "claim_token = '', claimed_until = NULL, queued_for = EXCLUDED.queued_for, attempts = 0, "
                f"last_error = '', failed_at = NULL WHERE {table}.due_at <> EXCLUDED.due_at OR {table}.kind <> "
                f"EXCLUDED.kind RETURNING {quoted_key}",
                [value for row in chunk for value in row],
            )
            armed += cursor.fetchall()
    _queue_on_commit(wanted[key][0] for (key,) in armed if wanted[key][0] <= horizon)
    return len(armed)


def timers_cancel(keys: Iterable[str]) -> int:
    """Forget timers by key (fired or not); a timer being fired right now completes as if cancelled after."""
    deleted, _ = Timer.objects.filter(key__in=list(keys)).delete()
    return deleted


def timer_cancel(key: str) -> int:
    """Forget one timer (see timers_cancel)."""
    return timers_cancel([key])


def timers_cancel_prefix(prefix: str) -> int:
    """Forget every timer whose key starts with `prefix` (say, everything scheduled for one customer)."""
    deleted, _ = Timer.objects.filter(key__startswith=prefix).delete()
    return deleted


@dataclass
class FiringReport:
    """What one firing pass did."""

    fired: int = 0
    failed: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {"fired": self.fired, "failed": self.failed}


def _claim(now: datetime, token: str, limit: int) -> list[tuple[int, str]]:
    """Claim up to `limit` due timers under `token`, returning (id, kind) of each: one conditional UPDATE,
    committed before any handler runs so other workers skip them. Rows locked by another claimer are skipped on
    PostgreSQL; the conditions are repeated outside the subquery so a row another transaction claimed meanwhile
    is never taken twice."""
    table = Timer._meta.db_table
    at = connection.ops.adapt_datetimefield_value(now)
    until = connection.ops.adapt_datetimefield_value(now + CLAIM_LEASE)
    due = "fired_at IS NULL AND failed_at IS NULL AND due_at <= %s AND (claimed_until IS NULL OR claimed_until < %s)"
    skip_locked = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET claim_token = %s, claimed_until = %s, attempts = attempts + 1 "
            f"WHERE {due} AND id IN (SELECT id FROM {table} WHERE {due} ORDER BY due_at LIMIT %s{skip_locked}) "
            "RETURNING id, kind",
            [token, until, at, at, at, at, limit],
        )
        return sorted((int(pk), str(kind)) for pk, kind in cursor.fetchall())


def _fire(kind: str, ids: list[int], token: str, report: FiringReport) -> None:
    """Run the kind's handler on the claimed timers and mark them fired, in one transaction; on failure, try
    each timer alone so only the failing ones are recorded as failed."""
    done = 0
    try:
        with transaction.atomic():
            mine = list(Timer.objects.select_for_update().filter(pk__in=ids, claim_token=token).order_by("due_at"))
            if not mine:
                return  # rescheduled or cancelled since the claim
            handler = _handlers.get(kind)
            if handler is None:
                raise LookupError(f"no handler registered for timer kind {kind!r}")
            handler([DueTimer(t.kind, t.key, t.due_at, t.payload, t.attempts) for t in mine])
            done = Timer.objects.filter(pk__in=[t.pk for t in mine], claim_token=token).update(
                fired_at=timezone.now(), claim_token="", claimed_until=None, last_error=""
            )
    except Exception as failure:
        if len(ids) > 1:
            for pk in ids:
                _fire(kind, [pk], token, report)
            return
        logger.exception("timer %s (%s) failed", ids[0], kind)
        _record_failure(ids[0], token, failure)
        report.failed += 1
        return
    report.fired += done
    report.kinds[kind] = report.kinds.get(kind, 0) + done


def _record_failure(pk: int, token: str, failure: BaseException) -> None:
    """Keep the error and hold the timer back for the retry policy's wait (an unheld lease); after the last
    try, mark it failed so it stops being claimed."""
    timer = Timer.objects.filter(pk=pk, claim_token=token).only("attempts").first()
    if timer is None:
        return
    now = timezone.now()
    Timer.objects.filter(pk=pk, claim_token=token).update(
        claim_token="",
        claimed_until=now + retry_backoff(timer.attempts),
        last_error=f"{type(failure).__name__}: {failure}"[:MAX_ERROR_CHARS],
        failed_at=now if timer.attempts >= MAX_ATTEMPTS else None,
    )


def timers_fire_due(*, now: datetime | None = None, limit: int = CLAIM_BATCH) -> FiringReport:
    """Fire every timer due at `now` (default: the current time), a batch per claim, until none is left."""
    report = FiringReport()
    while True:
        at = now or timezone.now()
        token = uuid.uuid4().hex
        claimed = _claim(at, token, limit)
        if not claimed:
            return report
        by_kind: dict[str, list[int]] = {}
        for pk, kind in claimed:
            by_kind.setdefault(kind, []).append(pk)
        for kind, kind_ids in sorted(by_kind.items()):
            _fire(kind, kind_ids, token, report)
        if len(claimed) < limit:
            return report


def timers_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """The safety net (beat, every few seconds): fire what is due and was missed (an on-time message lost to a
    restart, a retry whose wait has passed), and queue the on-time messages of timers now within the horizon."""
    now = now or timezone.now()
    report = timers_fire_due(now=now)
    coming = (
        Timer.objects.filter(fired_at__isnull=True, failed_at__isnull=True, due_at__lte=now + ETA_HORIZON)
        .filter(Q(queued_for__isnull=True) | ~Q(queued_for=F("due_at")))
        .order_by("due_at")
    )
    upcoming = list(coming.values_list("pk", "due_at")[:10_000])
    if upcoming:
        Timer.objects.filter(pk__in=[pk for pk, _ in upcoming]).update(queued_for=F("due_at"))
        _queue_on_commit(due_at for _, due_at in upcoming)
    return {**report.as_dict(), "queued": len(upcoming)}


# Declared here, next to what queues it, so the kernel's tasks module and this one do not import each other; the
# name is the one queued messages carry.
@shared_task(name="config.tasks.fire_timers", acks_late=True)
def fire_timers() -> dict[str, int]:
    """Fire the durable timers due now (queued with an eta by `_queue_on_commit` when one is scheduled)."""
    return timers_fire_due().as_dict()
