"""Time-based lifecycle emails fire from durable timers when they fall due — not at the next 5-minute sweep — at
the customer's local time of day when the template asks for it, outside quiet hours; timers are armed set-based
when trials start, templates are saved and customers change zone, and moving them never sends twice."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from typing import Any
from unittest import mock

import pytest
from django.test import TestCase
from django.utils import timezone

from audiences.ingestion import IncomingMessage, messages_ingest
from audiences.models import Customer, Source
from audiences.pipeline import BatchFacts
from config.models import Timer
from config.timers import timers_fire_due
from trials.loop.models import Trial, TrialStage
from trials.messaging.decide import messages_sweep
from trials.messaging.defaults import MESSAGE_TEMPLATES
from trials.messaging.models import CustomerMessageLock, EmailSettings, MessageSend, MessageTemplate
from trials.messaging.realtime import event_templates_forget, messages_on_batch
from trials.messaging.templates import message_template_save
from trials.messaging.timers import MESSAGE_TIMER, message_timers_arm
from trials.tests.holdouts import without_holdout

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def workspace(db: Any) -> None:
    """The seeded templates ("no holdout", see trials.tests.holdouts), default quiet hours 21-8 in UTC."""
    EmailSettings.objects.get_or_create(pk=1)
    for row in MESSAGE_TEMPLATES:
        MessageTemplate.objects.get_or_create(key=row["key"], defaults=without_holdout(row))
    event_templates_forget()


def nudge() -> MessageTemplate:
    return MessageTemplate.objects.get(key="day-1-activation-nudge")


def person(*, started: datetime, **traits: Any) -> Customer:
    number = next(_ids)
    customer = Customer.objects.create(user_id=f"tm_{number}", email=f"tm{number}@example.test", traits=traits)
    Trial.objects.create(
        customer=customer, started_at=started, ends_at=started + timedelta(days=14), stage=TrialStage.TRIGGER,
        stage_changed_at=started,
    )  # fmt: skip
    return customer


def timer_due(template: MessageTemplate, customer: Customer) -> datetime | None:
    found = Timer.objects.filter(key=f"message:{template.pk}:{customer.pk}", fired_at__isnull=True).first()
    return found.due_at if found else None


def fire(now: datetime) -> None:
    """The timers' worker at `now`."""
    with mock.patch("django.utils.timezone.now", return_value=now):
        timers_fire_due(now=now)


def sends(customer: Customer) -> list[tuple[str, str, datetime]]:
    rows = MessageSend.objects.filter(customer=customer).order_by("pk")
    return list(rows.values_list("template__key", "status", "created_at"))


def test_the_nudge_is_decided_the_moment_it_falls_due(source: Source) -> None:
    """Through a real batch: the sign-up starts the trial, the batch hook arms the nudge's timer for the trial's
    24th hour, and the timer decides it then — not up to five minutes later at a sweep."""
    now = timezone.now()
    messages = [
        IncomingMessage(
            type=kind,
            message_id=f"s-{kind}-{now.timestamp()}",
            user_id="usr_on_time",
            anonymous_id=None,
            name=name,
            properties=traits,
            context={},
            timestamp=now,
            received_at=now,
            traits=traits,
        )
        for kind, name, traits in (("identify", "", {"email": "ontime@example.test"}), ("track", "Signed Up", {}))
    ]
    with TestCase.captureOnCommitCallbacks(execute=True):  # as the tracking API: the worker runs on commit
        messages_ingest(source=source, messages=messages)
    customer = Customer.objects.get(user_id="usr_on_time")
    trial = Trial.objects.get(customer=customer)
    due = trial.started_at + timedelta(days=1)
    EmailSettings.objects.filter(pk=1).update(quiet_start_hour=0, quiet_end_hour=0)  # any wall-clock hour
    message_timers_arm(nudge(), now=now)  # the quiet hours changed: the same moment, nothing moves
    assert timer_due(nudge(), customer) == due
    fire(due - timedelta(seconds=1))
    assert sends(customer) == []
    fire(due)
    assert sends(customer) == [("day-1-activation-nudge", "queued", due)]


def test_at_the_customers_local_time_of_day() -> None:
    template = nudge()
    template.send_at_local_time = dt_time(10, 0)
    message_template_save(template)
    # Day 1 ends at 14:30 in New York (EDT since 8 March): the next 10:00 there is 12 March, 14:00 UTC.
    new_york = person(started=datetime(2026, 3, 10, 18, 30, tzinfo=UTC), timezone="America/New_York")
    tokyo = person(started=datetime(2026, 3, 10, 18, 30, tzinfo=UTC), timezone="Asia/Tokyo")
    assert message_timers_arm(template, now=NOW) == 2
    assert timer_due(template, new_york) == datetime(2026, 3, 12, 14, 0, tzinfo=UTC)
    assert timer_due(template, tokyo) == datetime(2026, 3, 12, 1, 0, tzinfo=UTC)  # 10:00 JST
    fire(datetime(2026, 3, 12, 1, 0, tzinfo=UTC))
    assert [row[:2] for row in sends(tokyo)] == [("day-1-activation-nudge", "queued")]
    assert sends(new_york) == []


def test_never_in_quiet_hours_and_moved_when_the_customer_changes_zone() -> None:
    # Due at 23:00 UTC: quiet (21-8) in London, so the timer waits for 08:00 there.
    customer = person(started=datetime(2026, 3, 9, 23, 0, tzinfo=UTC), timezone="Europe/London")
    message_timers_arm(nudge(), now=NOW - timedelta(days=1))
    assert timer_due(nudge(), customer) == datetime(2026, 3, 11, 8, 0, tzinfo=UTC)
    # An identify moves them to Los Angeles (PDT, UTC-7): 23:00 UTC is 16:00 there, outside quiet hours.
    Customer.objects.filter(pk=customer.pk).update(traits={"timezone": "America/Los_Angeles"})
    messages_on_batch(BatchFacts(profile_changed={customer.pk}), NOW - timedelta(days=1))
    assert timer_due(nudge(), customer) == datetime(2026, 3, 10, 23, 0, tzinfo=UTC)


def test_moving_a_timer_after_the_send_never_sends_twice() -> None:
    customer = person(started=NOW - timedelta(days=1))
    message_timers_arm(nudge(), now=NOW - timedelta(hours=1))
    fire(NOW)
    # The template changes after the send: its customers who had it are not armed again, and a timer armed anyway
    # (a stale worker, a retried save) decides nothing for a pair already sent.
    template = nudge()
    template.send_at_local_time = dt_time(15, 0)
    message_template_save(template)
    assert timer_due(template, customer) is None
    Timer.objects.filter(key=f"message:{template.pk}:{customer.pk}").update(fired_at=None, due_at=NOW)
    fire(NOW + timedelta(hours=30))
    assert [row[1] for row in sends(customer)] == ["queued"]


def test_a_throttled_nudge_goes_when_the_window_ends() -> None:
    customer = person(started=NOW - timedelta(days=1))
    CustomerMessageLock.objects.create(customer=customer, last_sent_at=NOW - timedelta(hours=20))
    message_timers_arm(nudge(), now=NOW - timedelta(hours=1))
    fire(NOW)
    assert [row[1] for row in sends(customer)] == ["suppressed"]
    assert timer_due(nudge(), customer) == NOW + timedelta(hours=4)
    fire(NOW + timedelta(hours=4))
    assert [row[1:] for row in sends(customer)][-1] == ("queued", NOW + timedelta(hours=4))


def test_the_sweep_arms_missing_timers_and_leaves_the_decision_to_them() -> None:
    customer = person(started=NOW - timedelta(days=1) + timedelta(minutes=20))  # due at 12:20
    Timer.objects.all().delete()  # created without any door that arms timers
    assert messages_sweep(now=NOW) == {"armed": 1}
    assert timer_due(nudge(), customer) == NOW + timedelta(minutes=20)
    messages_sweep(now=NOW + timedelta(minutes=25))
    assert sends(customer) == []  # the sweep never decides a time-based template itself
    fire(NOW + timedelta(minutes=25))
    assert [row[1] for row in sends(customer)] == ["queued"]


def test_arming_is_set_based(django_assert_max_num_queries: Any) -> None:
    customers = [person(started=NOW - timedelta(hours=n)) for n in range(40)]
    Timer.objects.all().delete()
    with django_assert_max_num_queries(8):
        assert message_timers_arm(nudge(), now=NOW) == len(customers)
    with django_assert_max_num_queries(8):
        assert message_timers_arm(nudge(), now=NOW) == 0  # the same moments: nothing moves
    assert Timer.objects.filter(kind=MESSAGE_TIMER).count() == len(customers)


def test_deactivating_a_template_cancels_its_timers() -> None:
    person(started=NOW - timedelta(hours=2))
    template = nudge()
    message_timers_arm(template, now=NOW)
    assert Timer.objects.filter(key__startswith=f"message:{template.pk}:").exists()
    template.active = False
    message_template_save(template)
    assert not Timer.objects.filter(key__startswith=f"message:{template.pk}:").exists()


def test_a_time_based_email_that_lost_on_priority_goes_when_the_window_ends() -> None:
    expiry = MessageTemplate.objects.get(key="day-12-expiry-warning")
    MessageTemplate.objects.filter(pk=expiry.pk).update(condition=None)  # also for trials that never activated
    customer = person(started=NOW - timedelta(days=12, hours=1))
    message_timers_arm(nudge(), now=NOW - timedelta(hours=2))
    message_timers_arm(MessageTemplate.objects.get(pk=expiry.pk), now=NOW - timedelta(hours=2))
    fire(NOW)
    assert [row[:2] for row in sends(customer)] == [
        ("day-12-expiry-warning", "suppressed"),
        ("day-1-activation-nudge", "queued"),
    ]
    assert timer_due(expiry, customer) == NOW + timedelta(hours=24)
    fire(NOW + timedelta(hours=24))
    assert sends(customer)[-1] == ("day-12-expiry-warning", "queued", NOW + timedelta(hours=24))
