"""The Trial-to-Paid Loop: trials created from signups and subscriptions, stages kept current through the
stored-batch hook, time-based transitions by the sweep (due trials only), and the recover → trigger loop."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audiences.ingestion import IncomingMessage, messages_ingest
from audiences.models import Customer, Event, Source
from integrations.stripe.models import Plan, Subscription
from trials.loop.lifecycle import trials_process, trials_sweep
from trials.loop.models import Trial, TrialStageChange

pytestmark = pytest.mark.django_db


def message(
    kind: str = "track", *, user: str, name: str = "", at: datetime | None = None, **traits: Any
) -> IncomingMessage:
    now = timezone.now()
    return IncomingMessage(
        type=kind,
        message_id=f"m-{time.monotonic_ns()}",
        user_id=user,
        anonymous_id=None,
        name=name,
        properties=traits if kind == "identify" else {},
        context={},
        timestamp=at or now,
        received_at=now,
        traits=traits,
    )


def ingest(source: Source, *messages: IncomingMessage) -> None:
    """As the tracking API stores a batch; the worker task (and so the trials hook) runs on commit."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        messages_ingest(source=source, messages=list(messages))


def stages(trial: Trial) -> list[tuple[str, str]]:
    return list(trial.stage_changes.order_by("pk").values_list("from_stage", "to_stage"))


def track(customer: Customer, source: Source, name: str, at: datetime) -> None:
    Event.objects.create(
        source=source,
        message_id=f"e-{time.monotonic_ns()}",
        customer=customer,
        type=Event.Type.TRACK,
        name=name,
        user_id=customer.user_id or "",
        timestamp=at,
        received_at=at,
    )


def test_a_low_fit_signup_walks_trigger_activate_habit_signal_through_ingestion(source: Source) -> None:
    ingest(
        source,
        message("identify", user="usr_bo", email="bo@gmail.com", role="other"),
        message(user="usr_bo", name="Signed Up"),
    )
    trial = Trial.objects.get(customer__user_id="usr_bo")
    assert (trial.stage, trial.model, trial.fit_score) == ("trigger", "opt_in", 0)
    assert trial.score_breakdown["fit"]["rules"][0]["rule"] == "Free-mail address"

    ingest(source, message(user="usr_bo", name="Project Created"))
    trial.refresh_from_db()
    assert trial.stage == "trigger"  # the definition also needs a teammate invited

    ingest(source, message(user="usr_bo", name="Teammate Invited"))
    trial.refresh_from_db()
    assert trial.stage == "activate" and trial.activated_at is not None

    ingest(source, message(user="usr_bo", name="Report Generated"))
    trial.refresh_from_db()
    assert trial.stage == "habit"  # three high-intent actions inside the first week

    ingest(source, *[message(user="usr_bo", name="Report Generated") for _ in range(3)])
    trial.refresh_from_db()
    assert (trial.stage, trial.pql_score) == ("signal", 60)
    assert stages(trial) == [("", "trigger"), ("trigger", "activate"), ("activate", "habit"), ("habit", "signal")]


def test_a_high_fit_activation_is_product_qualified_at_once(source: Source) -> None:
    ingest(
        source,
        message("identify", user="usr_cy", email="cy@acme.example", employees=200, industry="SaaS", role="executive"),
        message(user="usr_cy", name="Signed Up"),
        message(user="usr_cy", name="Project Created"),
        message(user="usr_cy", name="Teammate Invited"),
    )
    trial = Trial.objects.get(customer__user_id="usr_cy")
    assert (trial.fit_score, trial.stage) == (100, "signal")


def subscribe(customer: Customer, plan: Plan, *, start: datetime, days: int = 14, **fields: Any) -> Subscription:
    return Subscription.objects.create(
        customer=customer,
        plan=plan,
        status=fields.pop("status", "trialing"),
        started_at=start,
        trial_start=start,
        trial_end=start + timedelta(days=days),
        **fields,
    )


def test_paying_converts_and_ending_unpaid_recovers_then_loses_then_returns(
    customer: Customer, plan: Plan, source: Source
) -> None:
    now = timezone.now()
    subscription = subscribe(customer, plan, start=now - timedelta(days=13))
    trials_process(customer_ids={customer.pk}, now=now)
    trial = Trial.objects.get(customer=customer)
    assert (trial.subscription_id, trial.model, trial.stage) == (subscription.pk, "opt_out", "trigger")

    # the trial ends unpaid: the sweep (not an event) moves it to recover
    later = now + timedelta(days=1, hours=1)
    trials_sweep(now=later)
    trial.refresh_from_db()
    assert (trial.stage, trial.expired_at) == ("recover", subscription.trial_end)
    expired = subscription.trial_end
    assert expired is not None

    # the 30-day win-back window closes
    trials_sweep(now=expired + timedelta(days=30, minutes=1))
    trial.refresh_from_db()
    assert trial.stage == "lost" and trial.next_check_at is None

    # the customer comes back with a new trial subscription: back to trigger, same trial, history kept
    back = expired + timedelta(days=40)
    again = subscribe(customer, plan, start=back)
    trials_process(customer_ids={customer.pk}, now=back)
    trial.refresh_from_db()
    assert (trial.stage, trial.subscription_id, trial.started_at) == ("trigger", again.pk, back)
    assert stages(trial) == [("", "trigger"), ("trigger", "recover"), ("recover", "lost"), ("lost", "trigger")]

    Subscription.objects.filter(pk=again.pk).update(status="active")
    trials_process(customer_ids={customer.pk}, now=back + timedelta(days=1))
    trial.refresh_from_db()
    assert trial.stage == "convert" and trial.converted_at is not None and trial.next_check_at is None


def test_recover_returns_to_trigger_on_a_new_signup(source: Source) -> None:
    now = timezone.now()
    customer = Customer.objects.create(user_id="usr_dee", email="dee@gmail.com")
    track(customer, source, "Signed Up", now - timedelta(days=20))
    trials_process(customer_ids={customer.pk}, now=now - timedelta(days=20))
    trials_sweep(now=now)
    trial = Trial.objects.get(customer=customer)
    assert trial.stage == "recover"
    track(customer, source, "Signed Up", now + timedelta(hours=1))
    trials_process(customer_ids={customer.pk}, now=now + timedelta(hours=1))
    trial.refresh_from_db()
    assert trial.stage == "trigger" and trial.ends_at == now + timedelta(hours=1, days=14)
    assert stages(trial)[-1] == ("recover", "trigger")


def test_a_canceled_trial_subscription_recovers_before_its_end(plan: Plan) -> None:
    now = timezone.now()
    customer = Customer.objects.create(user_id="usr_gus", email="gus@gmail.com")
    subscribe(customer, plan, start=now - timedelta(days=2), status="canceled", ended_at=now - timedelta(days=1))
    trials_process(customer_ids={customer.pk}, now=now)
    trial = Trial.objects.get(customer=customer)
    assert trial.stage == "recover" and trial.expired_at == now - timedelta(days=1)


def test_habit_counts_only_the_first_week_and_the_sweep_handles_the_window_closing(source: Source, plan: Plan) -> None:
    start = timezone.now() - timedelta(days=6)
    customer = Customer.objects.create(user_id="usr_eve", email="eve@gmail.com")
    subscribe(customer, plan, start=start, days=30)
    track(customer, source, "Project Created", start + timedelta(hours=1))
    track(customer, source, "Teammate Invited", start + timedelta(hours=2))
    trials_process(customer_ids={customer.pk}, now=start + timedelta(days=6))
    trial = Trial.objects.get(customer=customer)
    assert trial.stage == "activate"
    assert trial.next_check_at == start + timedelta(days=7)  # the habit window closing is the next due moment
    track(customer, source, "Report Generated", start + timedelta(days=8))  # too late for the habit
    trials_sweep(now=start + timedelta(days=8, hours=1))
    trial.refresh_from_db()
    assert trial.stage == "activate" and trial.habit_at is None
    assert trial.next_check_at is not None and trial.next_check_at > start + timedelta(days=8)


def test_activation_outside_72_hours_does_not_count(source: Source, plan: Plan) -> None:
    start = timezone.now() - timedelta(days=5)
    customer = Customer.objects.create(user_id="usr_fay", email="fay@gmail.com")
    subscribe(customer, plan, start=start)
    track(customer, source, "Project Created", start + timedelta(hours=80))
    track(customer, source, "Teammate Invited", start + timedelta(hours=81))
    trials_process(customer_ids={customer.pk}, now=timezone.now())
    assert Trial.objects.get(customer=customer).stage == "trigger"


def test_the_sweep_reads_only_due_trials_in_a_constant_number_of_queries(source: Source, plan: Plan) -> None:
    now = timezone.now()

    def make(count: int, prefix: str) -> None:
        for index in range(count):
            customer = Customer.objects.create(user_id=f"{prefix}{index}", email=f"{prefix}{index}@gmail.com")
            subscribe(customer, plan, start=now - timedelta(days=13))
        trials_process(
            customer_ids=set(Customer.objects.filter(user_id__startswith=prefix).values_list("pk", flat=True)), now=now
        )

    make(1, "one_")
    with CaptureQueriesContext(connection) as one:
        trials_sweep(now=now + timedelta(days=2))
    make(6, "six_")
    not_due = Customer.objects.create(user_id="not_due", email="x@gmail.com")
    subscribe(not_due, plan, start=now - timedelta(days=20), status="active")  # converted: never due again
    trials_process(customer_ids={not_due.pk}, now=now)
    with CaptureQueriesContext(connection) as six:
        result = trials_sweep(now=now + timedelta(days=2))
    assert result["customers"] == 6  # the one already in recover and the converted one are not due
    assert len(six.captured_queries) <= len(one.captured_queries) + 2
    assert Trial.objects.get(customer=not_due).stage == "convert"
    assert TrialStageChange.objects.filter(to_stage="recover").count() == 7


def test_the_backfill_command_creates_trials_from_history_in_chunks(source: Source, plan: Plan) -> None:
    from django.core.management import call_command

    now = timezone.now()
    for index in range(3):
        customer = Customer.objects.create(user_id=f"hist{index}", email=f"h{index}@gmail.com")
        track(customer, source, "Signed Up", now - timedelta(days=index))
    Customer.objects.create(user_id="never")
    call_command("trials_sync", "--chunk", "2")
    assert set(Trial.objects.values_list("customer__user_id", flat=True)) == {"hist0", "hist1", "hist2"}
    call_command("trials_sync")  # twice is harmless
    assert Trial.objects.count() == 3 and TrialStageChange.objects.count() == 3


def test_a_stripe_trial_extension_moves_the_end(plan: Plan) -> None:
    now = timezone.now()
    customer = Customer.objects.create(user_id="usr_ext", email="ext@gmail.com")
    subscription = subscribe(customer, plan, start=now - timedelta(days=13))
    trials_process(customer_ids={customer.pk}, now=now)
    Subscription.objects.filter(pk=subscription.pk).update(trial_end=now + timedelta(days=8))
    trials_process(customer_ids={customer.pk}, now=now + timedelta(days=2))
    trial = Trial.objects.get(customer=customer)
    assert trial.ends_at == now + timedelta(days=8) and trial.stage == "trigger"
