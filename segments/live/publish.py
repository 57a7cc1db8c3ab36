"""Publishing live audience changes: every entry and exit of a live audience is published the same way,
whichever path found it (the batch worker, the periodic full evaluation, the time sweep, a window timer): an
`Audience Entered` / `Audience Exited` event on the customer's timeline, a fact for the destinations, and the
enter/exit hooks through which the actions above (emails, plays) start or cancel their work. Each entry is claimed
once (a conditional UPDATE of `published_at`), so no path publishes an entry, or its exit, twice."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.utils import timezone
from django.utils.text import slugify

from audiences.models import Event
from audiences.services import internal_source
from config.facts import Fact, FactKind, facts_record
from segments.models import Segment, SegmentMembership, SegmentMembershipChange

ENTERED, EXITED = SegmentMembershipChange.Kind.ENTERED, SegmentMembershipChange.Kind.EXITED


@dataclass(frozen=True)
class MembershipChange:
    """A customer entering or leaving a live audience. `entry_id` names the stay (the membership row the entry
    created; its exit carries the same id), so a publication is keyed by (audience, customer, entry) and no path
    can publish one entry, or its exit, twice."""

    segment_id: int
    customer_id: int
    kind: str
    entry_id: int

    @property
    def idempotency_key(self) -> str:
        return f"audience:{self.segment_id}:{self.customer_id}:{self.entry_id}:{self.kind}"


ExitHook = Callable[[Segment, list[int]], None]
_exit_hooks: list[ExitHook] = []


def on_audience_exit(hook: ExitHook) -> ExitHook:
    """Register a suppression hook, called with the audience and the customers who just left it, inside the
    transaction that records the exit (usable as a decorator; features register in AppConfig.ready())."""
    if hook not in _exit_hooks:
        _exit_hooks.append(hook)
    return hook


def remove_exit_hook(hook: ExitHook) -> None:
    if hook in _exit_hooks:
        _exit_hooks.remove(hook)


EnterHook = Callable[[Segment, list[int]], None]
_enter_hooks: list[EnterHook] = []


def on_audience_enter(hook: EnterHook) -> EnterHook:
    """Register a trigger hook, called with the audience and the customers who just entered it, inside the
    transaction that records the entry (features queue their work on commit; register in AppConfig.ready())."""
    if hook not in _enter_hooks:
        _enter_hooks.append(hook)
    return hook


def remove_enter_hook(hook: EnterHook) -> None:
    if hook in _enter_hooks:
        _enter_hooks.remove(hook)


def audience_key(segment: Segment) -> str:
    """The snake_case key downstream tools see, as Segment Engage names audiences."""
    return segment.audience_key or slugify(segment.name).replace("-", "_") or f"audience_{segment.pk}"


def audience_changes_publish(
    segments: dict[int, Segment], changes: Sequence[MembershipChange], now: datetime, *, hooks: bool = True
) -> None:
    """Timeline events, outbound messages and the enter/exit hooks for entries and exits of live audiences (a
    handful of statements whatever the number of audiences and customers). Callers pass only changes whose
    publication they claimed (entries_publish) or whose published entry they deleted, so each is published once;
    `hooks=False` for members announced when an audience is switched live (they did not enter now)."""
    changes = [c for c in changes if segments[c.segment_id].is_live]
    if not changes:
        return
    audiences = {
        pk: {"id": pk, "key": audience_key(segment), "name": segment.name}
        for pk, segment in segments.items()
        if segment.is_live
    }
    source = internal_source()
    names: dict[str, str] = {ENTERED: "Audience Entered", EXITED: "Audience Exited"}
    kinds: dict[str, str] = {ENTERED: FactKind.AUDIENCE_ENTERED, EXITED: FactKind.AUDIENCE_EXITED}
    Event.objects.bulk_create(
        [
            Event(
                source=source,
                message_id=c.idempotency_key,
                customer_id=c.customer_id,
                type=Event.Type.TRACK,
                name=names[c.kind],
                properties={f"audience_{k}": v for k, v in audiences[c.segment_id].items()},
                timestamp=now,
                received_at=now,
            )
            for c in changes
        ],
        batch_size=1000,
        ignore_conflicts=True,
    )
    facts_record(
        [
            Fact(
                kind=kinds[c.kind],
                customer_id=c.customer_id,
                idempotency_key=c.idempotency_key,
                occurred_at=now,
                data={"audience": audiences[c.segment_id]},
            )
            for c in changes
        ]
    )
    if not hooks:
        return
    exited: dict[int, list[int]] = {}
    entered: dict[int, list[int]] = {}
    for c in changes:
        (exited if c.kind == EXITED else entered).setdefault(c.segment_id, []).append(c.customer_id)
    for segment_id, customer_ids in exited.items():
        for hook in list(_exit_hooks):
            hook(segments[segment_id], customer_ids)
    for segment_id, customer_ids in entered.items():
        for enter_hook in list(_enter_hooks):
            enter_hook(segments[segment_id], customer_ids)


def _entries_claim(segments: dict[int, Segment], now: datetime, entry_ids: Sequence[int]) -> list[MembershipChange]:
    """Claim the publication of the entries of live audiences not published yet: the given membership rows, or —
    with no ids — every unpublished member of these audiences. The claim is one conditional UPDATE of
    `published_at`, so of two paths racing for one entry exactly one gets it."""
    live = sorted(pk for pk, segment in segments.items() if segment.is_live)
    if not live:
        return []
    table = SegmentMembership._meta.db_table
    at = connection.ops.adapt_datetimefield_value(now)
    claimed: list[MembershipChange] = []
    with connection.cursor() as cursor:
        chunks = [list(entry_ids[i : i + 1000]) for i in range(0, len(entry_ids), 1000)] if entry_ids else [[]]
        for chunk in chunks:
            which = f"id IN ({', '.join(str(int(i)) for i in chunk)})" if chunk else "true"
            cursor.execute(
                f"UPDATE {table} SET published_at = %s WHERE published_at IS NULL "
                f"AND segment_id IN ({', '.join(str(pk) for pk in live)}) AND {which} "
                "RETURNING segment_id, customer_id, id",
                [at],
            )
            claimed += [MembershipChange(int(s), int(c), ENTERED, int(i)) for s, c, i in cursor.fetchall()]
    claimed.sort(key=lambda c: (c.segment_id, c.customer_id))
    return claimed


def entries_publish(
    segments: dict[int, Segment], now: datetime, *, entry_ids: Sequence[int] = (), hooks: bool = True
) -> list[MembershipChange]:
    """Claim (_entries_claim) and publish the entries of live audiences not published yet: the given membership
    rows, or — with no ids — every unpublished member of these audiences (an audience just switched live, or an
    entry a concurrent path recorded while the audience was not live yet)."""
    claimed = _entries_claim(segments, now, entry_ids)
    audience_changes_publish(segments, claimed, now, hooks=hooks)
    return claimed


def changes_record(
    segments: dict[int, Segment],
    entered: Iterable[tuple[int, int, int]],
    exited: Iterable[tuple[int, int, int, bool]],
    now: datetime,
) -> list[MembershipChange]:
    """History rows for what actually changed — (segment, customer, membership row) entered, (segment, customer,
    membership row, entry published) exited — and their publication for the live audiences: each entry once
    (claimed), each exit of a published entry (an entry never published has no exit to tell). Returns every
    recorded change, published or not."""
    entered, exited = sorted(entered), sorted(exited)
    # Exits first: a customer moving from one audience to another leaves before arriving, in every log.
    rows = [SegmentMembershipChange(segment_id=s, customer_id=c, kind=EXITED, at=now) for s, c, _, _ in exited]
    rows += [SegmentMembershipChange(segment_id=s, customer_id=c, kind=ENTERED, at=now) for s, c, _ in entered]
    SegmentMembershipChange.objects.bulk_create(rows, batch_size=1000)
    exits = [MembershipChange(s, c, EXITED, entry) for s, c, entry, _ in exited]
    published = {entry for _, _, entry, was_published in exited if was_published}
    claimed = _entries_claim(segments, now, [entry for _, _, entry in entered]) if entered else []
    audience_changes_publish(segments, [c for c in exits if c.entry_id in published] + claimed, now)
    return exits + [MembershipChange(s, c, ENTERED, entry) for s, c, entry in entered]


def audience_members_announce(segment: Segment, now: datetime | None = None) -> int:
    """Publish the members of a segment that just became a live audience whose entry was never published — the
    timeline events and outbound messages (identify {audience_key: true} for Segment destinations) a newly synced
    audience sends for everyone already in it, keyed by their entry like any other, so an entry the evaluation
    already published is not sent again. No history row and no enter hooks: they did not enter now."""
    return len(entries_publish({segment.pk: segment}, now or timezone.now(), hooks=False))
