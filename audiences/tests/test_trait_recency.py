"""Issue 18: a late batch never overwrites a trait with an older value. Each customer and account trait remembers
the time of the event that set it, and only a newer event replaces it — across batches, whatever order they are
stored or their profile tasks run (or run again after a redelivery) in."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from audiences.ingestion import IncomingMessage, messages_ingest
from audiences.models import Account, Customer, Source
from audiences.pipeline import stored_events_process

pytestmark = pytest.mark.django_db

NOW = timezone.now()
HOUR = timedelta(hours=1)


def identify(message_id: str, at: datetime, *, user_id: str = "usr_1", **traits: Any) -> IncomingMessage:
    return IncomingMessage(
        type="identify",
        message_id=message_id,
        user_id=user_id,
        anonymous_id=None,
        name="",
        properties=traits,
        context={},
        timestamp=at,
        received_at=timezone.now(),
        traits=traits,
    )


def group(message_id: str, at: datetime, **traits: Any) -> IncomingMessage:
    return IncomingMessage(
        type="group",
        message_id=message_id,
        user_id="usr_1",
        anonymous_id=None,
        name="",
        properties=traits,
        context={},
        timestamp=at,
        received_at=timezone.now(),
        group_id="grp_acme",
        traits=traits,
    )


def store(source: Source, *messages: IncomingMessage) -> list[int]:
    return messages_ingest(source=source, messages=list(messages)).event_ids


def traits() -> Any:
    return Customer.objects.get(user_id="usr_1").traits


def test_a_late_batch_does_not_put_back_an_older_value(source: Source) -> None:
    stored_events_process(event_ids=store(source, identify("new", NOW, plan="pro", email="new@acme.test")))
    # A batch sent late (a mobile client back online) carries what was true an hour earlier.
    late = store(source, identify("old", NOW - HOUR, plan="team", email="old@acme.test", role="cto"))
    stored_events_process(event_ids=late)
    customer = Customer.objects.get(user_id="usr_1")
    assert customer.traits == {"plan": "pro", "email": "new@acme.test", "role": "cto"}
    assert customer.email == "new@acme.test"
    assert customer.trait_timestamps["plan"][0] == NOW.isoformat(timespec="microseconds")
    assert customer.trait_timestamps["role"][0] == (NOW - HOUR).isoformat(timespec="microseconds")


def test_a_profile_task_run_again_after_a_newer_one_changes_nothing(source: Source) -> None:
    older = store(source, identify("first", NOW - HOUR, plan="team"))
    newer = store(source, identify("second", NOW, plan="pro"))
    stored_events_process(event_ids=older)
    stored_events_process(event_ids=newer)
    stored_events_process(event_ids=older)  # redelivered
    assert traits() == {"plan": "pro"}


@pytest.mark.parametrize("order", ["stored order", "reversed"])
def test_the_same_moment_is_settled_by_the_later_stored_event_in_any_run_order(source: Source, order: str) -> None:
    first = store(source, identify("first", NOW, plan="team"))
    second = store(source, identify("second", NOW, plan="pro"))
    runs = [first, second] if order == "stored order" else [second, first]
    for event_ids in runs:
        stored_events_process(event_ids=event_ids)
    assert traits() == {"plan": "pro"}


def test_within_one_batch_the_newest_event_wins_whatever_its_position(source: Source) -> None:
    batch = store(source, identify("b", NOW, name="Ada Lovelace"), identify("a", NOW - HOUR, name="Ada"))
    stored_events_process(event_ids=batch)
    customer = Customer.objects.get(user_id="usr_1")
    assert (customer.traits["name"], customer.name) == ("Ada Lovelace", "Ada Lovelace")


def test_account_traits_follow_the_newest_group_call(source: Source) -> None:
    stored_events_process(event_ids=store(source, group("g-new", NOW, name="Acme Inc", employees=120)))
    late = store(source, group("g-old", NOW - HOUR, name="Acme", employees=40, industry="tools"))
    stored_events_process(event_ids=late)
    account = Account.objects.get(group_id="grp_acme")
    assert (account.name, account.traits) == ("Acme Inc", {"name": "Acme Inc", "employees": 120, "industry": "tools"})
    stored_events_process(event_ids=late)  # redelivered
    assert Account.objects.get(group_id="grp_acme").traits["employees"] == 120


def test_a_merge_keeps_the_newer_value_of_each_trait(source: Source) -> None:
    stored_events_process(event_ids=store(source, identify("k", NOW - 2 * HOUR, plan="team", seats=3)))
    phone = IncomingMessage(
        type="identify",
        message_id="p",
        user_id=None,
        anonymous_id="phone",
        name="",
        properties={"plan": "pro", "device": "ios"},
        context={},
        timestamp=NOW - HOUR,
        received_at=NOW,
        traits={"plan": "pro", "device": "ios"},
    )
    stored_events_process(event_ids=store(source, phone))
    sign_in = IncomingMessage(
        type="track",
        message_id="link",
        user_id="usr_1",
        anonymous_id="phone",
        name="Signed In",
        properties={},
        context={},
        timestamp=NOW,
        received_at=NOW,
    )
    stored_events_process(event_ids=store(source, sign_in))
    customer = Customer.objects.get(user_id="usr_1")
    assert customer.traits == {"plan": "pro", "seats": 3, "device": "ios"}
    assert customer.trait_timestamps["plan"][0] == (NOW - HOUR).isoformat(timespec="microseconds")


def test_traits_stored_before_they_had_times_give_way_to_the_next_event(source: Source) -> None:
    Customer.objects.create(user_id="usr_1", traits={"plan": "legacy"})
    stored_events_process(event_ids=store(source, identify("any", NOW - 100 * HOUR, plan="team")))
    assert traits() == {"plan": "team"}
