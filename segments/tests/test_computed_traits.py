"""Computed traits: incremental folding agrees with recomputation from history, kind by kind, also out of order."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from audiences.models import (
    ComputedTrait,
    ComputedTraitChange,
    ComputedTraitValue,
    Customer,
    Event,
    Source,
)
from integrations.stripe.models import Plan, Subscription
from segments.selectors import explain, segment_preview
from segments.traits.definitions import InvalidTrait
from segments.traits.evaluation import (
    computed_trait_backfill,
    computed_traits_apply,
    computed_traits_decay,
    computed_traits_refresh,
)
from segments.traits.services import computed_trait_save

pytestmark = pytest.mark.django_db

Kind = ComputedTrait.Kind
PLANS = ["team", "pro", "solo", None, 3, "pro"]


def make_trait(key: str, kind: str, *, done: bool = True, **fields: Any) -> ComputedTrait:
    trait = computed_trait_save(key=key, name=key.replace("_", " "), kind=kind, **fields)
    if done:
        ComputedTrait.objects.filter(pk=trait.pk).update(
            backfill_status=ComputedTrait.Backfill.DONE, backfill_finished_at=timezone.now() - timedelta(days=1)
        )
        trait.refresh_from_db()
    return trait


def store(source: Source, customer: Customer, name: str, days_ago: float, **properties: Any) -> Event:
    now = timezone.now()
    return Event.objects.create(
        source=source,
        message_id=f"m-{Event.objects.count()}-{random.random()}",
        customer=customer,
        type=Event.Type.TRACK,
        name=name,
        properties=properties,
        timestamp=now - timedelta(days=days_ago),
        received_at=now,
    )


def values(trait: ComputedTrait) -> dict[int, Any]:
    return dict(ComputedTraitValue.objects.filter(trait=trait).values_list("customer_id", "value"))


PROPERTY_KINDS = {
    Kind.SUM, Kind.AVERAGE, Kind.MIN, Kind.MAX, Kind.FIRST_VALUE, Kind.LAST_VALUE, Kind.MOST_FREQUENT,
    Kind.UNIQUE_LIST, Kind.UNIQUE_COUNT,
}  # fmt: skip
EVENT_KINDS = [k for k in Kind.values if k != Kind.TRIAL_DAYS_REMAINING]


@pytest.mark.parametrize("kind", EVENT_KINDS)
@pytest.mark.parametrize("seed", [1, 2])
def test_incremental_folding_equals_recomputation_from_history_in_any_arrival_order(
    kind: str, seed: int, source: Source
) -> None:
    # Given a trait kept current incrementally, and customers whose events arrive in shuffled batches
    rng = random.Random(seed)
    prop: dict[str, Any] = {"property": "plan"} if kind in PROPERTY_KINDS else {}
    numeric = kind in (Kind.SUM, Kind.AVERAGE, Kind.MIN, Kind.MAX)
    live = make_trait(
        "live_value",
        kind,
        event="Report Run",
        where=[{"property": "ok", "operator": "not_equals", "value": "no"}],
        **prop,
    )
    people = [Customer.objects.create(user_id=f"u{seed}-{i}") for i in range(3)]
    events = []
    for _ in range(40):
        person = rng.choice(people)
        value: Any = rng.choice([1, 2.5, "7", "x", None, 10]) if numeric else rng.choice(PLANS)
        name = rng.choice(["Report Run", "Report Run", "Page Viewed"])
        ok = rng.choice(["yes", "yes", "no"])
        events.append(store(source, person, name, days_ago=rng.choice([0.5, 1.5, 1.5, 3, 9]), plan=value, ok=ok))
    rng.shuffle(events)
    # When they are folded in batch by batch (out of time order), one batch twice (a retried task)
    batches = [events[i : i + 7] for i in range(0, len(events), 7)]
    for batch in batches:
        computed_traits_apply(event_ids=[e.pk for e in batch])
    computed_traits_apply(event_ids=[e.pk for e in batches[0]])
    # Then the values equal a recomputation from the whole history
    scratch = make_trait("scratch_value", kind, done=False, event="Report Run", where=live.where, **prop)
    computed_trait_backfill(trait=scratch)
    assert values(live) == values(scratch)
    assert values(live), "the generated history matched nothing"


def test_most_frequent_ties_go_to_the_alphabetically_first_value(source: Source) -> None:
    trait = make_trait("top_plan", Kind.MOST_FREQUENT, event="Plan Viewed", property="plan")
    ada = Customer.objects.create(user_id="ada")
    batch = [store(source, ada, "Plan Viewed", 1, plan=p) for p in ["pro", "team", "team", "pro"]]
    computed_traits_apply(event_ids=[e.pk for e in batch])
    assert values(trait) == {ada.pk: "pro"}


def test_first_and_last_value_follow_event_time_not_arrival(source: Source) -> None:
    first = make_trait("first_plan", Kind.FIRST_VALUE, event="Plan Viewed", property="plan")
    last = make_trait("last_plan", Kind.LAST_VALUE, event="Plan Viewed", property="plan")
    ada = Customer.objects.create(user_id="ada")
    late = store(source, ada, "Plan Viewed", 1, plan="pro")
    computed_traits_apply(event_ids=[late.pk])
    early = store(source, ada, "Plan Viewed", 5, plan="solo")  # arrives later, happened earlier
    computed_traits_apply(event_ids=[early.pk])
    assert values(first) == {ada.pk: "solo"}
    assert values(last) == {ada.pk: "pro"}


def test_a_value_change_is_recorded_old_to_new(source: Source) -> None:
    trait = make_trait("reports", Kind.COUNT, event="Report Run")
    ada = Customer.objects.create(user_id="ada")
    computed_traits_apply(event_ids=[store(source, ada, "Report Run", 1).pk])
    changes = computed_traits_apply(event_ids=[store(source, ada, "Report Run", 1).pk])
    assert [(c.old, c.new) for c in changes] == [(1, 2)]
    history = list(ComputedTraitChange.objects.filter(trait=trait).order_by("id").values_list("old", "new"))
    assert history == [(0, 1), (1, 2)]


def test_events_of_other_names_or_filtered_out_change_nothing(source: Source) -> None:
    trait = make_trait(
        "big_reports",
        Kind.COUNT,
        event="Report Run",
        where=[{"property": "size", "operator": "equals", "value": "big"}],
    )
    ada = Customer.objects.create(user_id="ada")
    changes = computed_traits_apply(
        event_ids=[store(source, ada, "Report Run", 1, size="small").pk, store(source, ada, "Page Viewed", 1).pk]
    )
    assert changes == []
    assert values(trait) == {}


def test_a_windowed_trait_counts_only_the_window_and_decays_with_time(source: Source) -> None:
    trait = make_trait("reports_7d", Kind.COUNT, event="Report Run", window_days=7)
    ada = Customer.objects.create(user_id="ada")
    batch = [
        store(source, ada, "Report Run", 8),
        store(source, ada, "Report Run", 2),
        store(source, ada, "Report Run", 1),
    ]
    computed_traits_apply(event_ids=[e.pk for e in batch])
    row = ComputedTraitValue.objects.get(trait=trait, customer=ada)
    assert row.value == 2
    assert row.expires_at is not None
    assert abs((row.expires_at - (batch[1].timestamp + timedelta(days=7))).total_seconds()) < 1
    # Nothing is due before the oldest counted event leaves the window
    assert computed_traits_decay(now=timezone.now() + timedelta(days=4)) == []
    changes = computed_traits_decay(now=timezone.now() + timedelta(days=5, hours=12))
    assert [(c.old, c.new) for c in changes] == [(2, 1)]
    changes = computed_traits_decay(now=timezone.now() + timedelta(days=7))
    assert [(c.old, c.new) for c in changes] == [(1, 0)]
    assert ComputedTraitValue.objects.get(trait=trait, customer=ada).expires_at is None


def test_trial_days_remaining_follows_the_trialing_subscription(plan: Plan) -> None:
    trait = make_trait("trial_left", Kind.TRIAL_DAYS_REMAINING)
    ada = Customer.objects.create(user_id="ada")
    now = timezone.now()
    Subscription.objects.create(
        customer=ada, plan=plan, status=Subscription.Status.TRIALING, started_at=now, trial_start=now,
        trial_end=now + timedelta(days=4, hours=1),
    )  # fmt: skip
    computed_traits_refresh(customer_ids=[ada.pk])
    assert explain({"type": "group", "operator": "and", "children": [
        {"type": "condition", "property": "computed.trial_left", "operator": "equals", "value": 4}
    ]}, ada)["matches"] is True  # fmt: skip
    # When the trial has ended, the sweep clears it
    changes = computed_traits_decay(now=now + timedelta(days=5))
    assert len(changes) == 1
    assert changes[0].new is None
    assert trait.pk == changes[0].trait_id


def test_a_new_definition_backfills_with_progress(source: Source) -> None:
    people = [Customer.objects.create(user_id=f"u{i}") for i in range(5)]
    for person in people[:3]:
        store(source, person, "Report Run", 2)
    trait = computed_trait_save(key="reports", name="Reports", kind=Kind.COUNT, event="Report Run")
    assert trait.backfill_status == ComputedTrait.Backfill.PENDING
    computed_trait_backfill(trait=trait)
    trait.refresh_from_db()
    assert (trait.backfill_status, trait.backfill_total, trait.backfill_done) == ("done", 3, 3)
    assert values(trait) == {p.pk: 1 for p in people[:3]}


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"key": "1bad", "kind": "count", "event": "E"}, "key", "letters, digits"),
        ({"key": "ok", "kind": "sum", "property": "p"}, "event", "name the event it is read from"),
        ({"key": "ok", "kind": "count", "window_days": 7, "since_trial_start": True}, "window_days", "one window"),
        ({"key": "ok", "kind": "sum", "event": "E"}, "property", "reads an event property"),
        ({"key": "ok", "kind": "count", "event": "E", "property": "p"}, "property", "does not read"),
        ({"key": "ok", "kind": "nope", "event": "E"}, "kind", "must be one of"),
        ({"key": "ok", "kind": "count", "event": "E", "window_days": 0}, "window_days", "between 1 and"),
        (
            {"key": "ok", "kind": "count", "event": "E", "where": [{"property": "p", "operator": "gt"}]},
            "where",
            "where[0]",
        ),
        ({"key": "ok", "kind": "trial_days_remaining", "event": "E"}, "kind", "comes from the trial"),
        ({"key": "ok", "kind": "trial_days_remaining", "since_trial_start": True}, "kind", "comes from the trial"),
    ],
)
def test_invalid_definitions_are_refused_naming_the_field(fields: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(InvalidTrait) as refused:
        computed_trait_save(name="A trait", **fields)
    assert refused.value.field == field
    assert message in str(refused.value)


def test_a_duplicate_key_is_refused() -> None:
    computed_trait_save(key="reports", name="Reports", kind=Kind.COUNT, event="E")
    with pytest.raises(InvalidTrait, match="already exists"):
        computed_trait_save(key="reports", name="Again", kind=Kind.COUNT, event="E")


def tree(*leaves: dict[str, Any]) -> dict[str, Any]:
    return {"type": "group", "operator": "and", "children": list(leaves)}


def leaf(prop: str, operator: str, value: Any = None) -> dict[str, Any]:
    return {"type": "condition", "property": prop, "operator": operator, "value": value}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (leaf("computed.reports", "gte", 2), {"busy"}),
        (leaf("computed.reports", "lt", 1), {"idle"}),  # no stored value reads as 0
        (leaf("computed.reports", "equals", 0), {"idle"}),
        (leaf("computed.reports", "not_equals", 1), {"busy", "idle"}),
        (leaf("computed.reports", "is_set"), {"busy", "light", "idle"}),
        (leaf("computed.ever_reported", "is_false"), {"idle"}),
        (leaf("computed.ever_reported", "is_true"), {"busy", "light"}),
        (leaf("computed.last_plan", "equals", "pro"), {"busy"}),
        (leaf("computed.last_plan", "not_equals", "pro"), {"light", "idle"}),  # missing matches negatives
        (leaf("computed.last_plan", "is_not_set"), {"idle"}),
        (leaf("computed.plans", "contains", "team"), {"busy", "light"}),
        (leaf("computed.plans", "not_contains", "pro"), {"light", "idle"}),
        (leaf("computed.days_since_report", "gt", 3), {"light"}),
        (leaf("computed.days_since_report", "lte", 3), {"busy"}),
    ],
)
def test_computed_traits_in_segments_with_spelled_out_empty_semantics(
    source: Source, condition: dict[str, Any], expected: set[str]
) -> None:
    make_trait("reports", Kind.COUNT, event="Report Run")
    make_trait("ever_reported", Kind.EVER, event="Report Run")
    make_trait("last_plan", Kind.LAST_VALUE, event="Report Run", property="plan")
    make_trait("plans", Kind.UNIQUE_LIST, event="Report Run", property="plan")
    make_trait("days_since_report", Kind.DAYS_SINCE_LAST, event="Report Run")
    busy, light, idle = (Customer.objects.create(user_id=u) for u in ("busy", "light", "idle"))
    batch = [
        store(source, busy, "Report Run", 1, plan="team"),
        store(source, busy, "Report Run", 0.5, plan="pro"),
        store(source, light, "Report Run", 5, plan="team"),
    ]
    computed_traits_apply(event_ids=[e.pk for e in batch])
    names = {c.pk: c.user_id for c in (busy, light, idle)}
    result = segment_preview(tree(condition))
    assert {names[row["id"]] for row in result["sample"]} == expected
    for person in (busy, light, idle):
        assert explain(tree(condition), person)["matches"] is (person.user_id in expected)


def test_a_property_name_is_one_json_key_whatever_it_holds(source: Source) -> None:
    """`a__b` names the key "a__b", not the path a → b, and a dotted name is one key too."""
    ada = Customer.objects.create(user_id="ada")
    store(source, ada, "Invoice Paid", 1, **{"a__b": 5, "a": {"b": 700}, "plan.seats": 3})
    store(source, ada, "Invoice Paid", 2, **{"a__b": 6, "a": {"b": 800}, "plan.seats": 4})
    underscored = make_trait("underscored", Kind.SUM, event="Invoice Paid", property="a__b", done=False)
    dotted = make_trait("dotted", Kind.MAX, event="Invoice Paid", property="plan.seats", done=False)
    computed_trait_backfill(trait=underscored)
    computed_trait_backfill(trait=dotted)
    assert values(underscored) == {ada.pk: 11}
    assert values(dotted) == {ada.pk: 4}
