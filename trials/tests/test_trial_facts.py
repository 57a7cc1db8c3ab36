"""Trial facts: "days active" over any event, computed trait windows since the trial started, trial days
remaining for trials without a card, and the loop board counting the trials that reached each stage."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audiences.models import ComputedTrait, ComputedTraitValue, Customer, Event, Source
from audiences.pipeline import stored_events_process
from audiences.services import source_create
from config.roles import Role
from conftest import TEST_PASSWORD
from segments.selectors import explain
from segments.traits.services import computed_trait_save
from trials.loop.lifecycle import trials_sweep
from trials.loop.models import Trial, TrialStageChange

pytestmark = pytest.mark.django_db
Kind = ComputedTrait.Kind


def trait(key: str, kind: str, **fields: Any) -> ComputedTrait:
    made = computed_trait_save(key=key, name=key, kind=kind, **fields)
    ComputedTrait.objects.filter(pk=made.pk).update(
        backfill_status=ComputedTrait.Backfill.DONE, backfill_finished_at=timezone.now() - timedelta(days=30)
    )
    made.refresh_from_db()
    return made


def stored(source: Source, customer: Customer, name: str, days_ago: float, kind: str = "track") -> Event:
    now = timezone.now()
    return Event.objects.create(
        source=source,
        message_id=f"{name}-{days_ago}-{Event.objects.count()}",
        customer=customer,
        type=kind,
        name=name,
        timestamp=now - timedelta(days=days_ago),
        received_at=now,
    )


def value(computed: ComputedTrait, customer: Customer) -> Any:
    row = ComputedTraitValue.objects.filter(trait=computed, customer=customer).first()
    return row.value if row is not None else None


class TestTraitsOfTheTrial:
    def test_days_active_since_the_trial_started_count_days_with_any_event(self, source: Source) -> None:
        days_active = trait("days_active_in_trial", Kind.UNIQUE_DAYS, since_trial_start=True)
        ever_active = trait("days_active", Kind.UNIQUE_DAYS)
        stripe, _ = source_create(name="Stripe", kind=Source.Kind.STRIPE)
        ada = Customer.objects.create(user_id="ada", email="ada@acme.test")
        batch = [
            stored(source, ada, "Pricing", 20, kind="page"),  # before the trial: not in it
            stored(source, ada, "Signed Up", 3),  # starts a trial without a card
            stored(source, ada, "Project Created", 2),
            stored(source, ada, "Dashboard", 1, kind="page"),
            stored(source, ada, "", 0.01, kind="identify"),  # who they are, not what they did
            stored(stripe, ada, "Payment Failed", 0.01),  # what billing did
        ]
        stored_events_process(event_ids=[e.pk for e in batch])
        trial = Trial.objects.get(customer=ada, is_current=True)
        assert trial.model == Trial.Model.OPT_IN
        assert value(days_active, ada) == 3
        assert value(ever_active, ada) == 4
        later = stored(source, ada, "Report Generated", 0.005)
        stored_events_process(event_ids=[later.pk])
        assert (value(days_active, ada), value(ever_active, ada)) == (4, 5)
        condition = {"type": "condition", "property": "computed.days_active_in_trial", "operator": "gte", "value": 4}
        assert explain(condition, ada)["matches"] is True

    def test_a_new_trial_starts_the_count_over(self, source: Source) -> None:
        in_trial = trait("reports_in_trial", Kind.COUNT, event="Report Generated", since_trial_start=True)
        ada = Customer.objects.create(user_id="ada")
        stored_events_process(
            event_ids=[
                e.pk for e in (stored(source, ada, "Signed Up", 60), stored(source, ada, "Report Generated", 59))
            ]
        )
        assert value(in_trial, ada) == 1
        trials_sweep(now=timezone.now())  # the trial ended unpaid long ago: recover, then lost
        trials_sweep(now=timezone.now())
        assert Trial.objects.get(customer=ada).stage == "lost"
        stored_events_process(event_ids=[stored(source, ada, "Signed Up", 1).pk])  # back: the trial restarts
        assert value(in_trial, ada) == 0

    def test_trial_days_remaining_for_a_trial_without_a_card(self, source: Source) -> None:
        left = trait("trial_left", Kind.TRIAL_DAYS_REMAINING)
        bo = Customer.objects.create(user_id="bo")
        stored_events_process(event_ids=[stored(source, bo, "Signed Up", 3).pk])  # a 14-day trial, no Stripe
        trial = Trial.objects.get(customer=bo)
        assert trial.subscription is None
        row = ComputedTraitValue.objects.get(trait=left, customer=bo)
        assert row.date_value == trial.ends_at
        condition = {"type": "condition", "property": "computed.trial_left", "operator": "equals", "value": 10}
        assert explain(condition, bo)["matches"] is True
        Trial.objects.filter(pk=trial.pk).update(ends_at=timezone.now() - timedelta(minutes=1))
        trials_sweep(now=timezone.now() + timedelta(days=1))
        assert not ComputedTraitValue.objects.filter(trait=left, customer=bo, date_value__isnull=False).exists()


class TestLoopBoard:
    def test_activate_counts_the_trials_that_activated_even_when_they_moved_on_at_once(
        self, make_user: Callable[..., AbstractUser]
    ) -> None:
        now = timezone.now()
        for index, (activated_days_ago, stage) in enumerate(
            ((1, "signal"), (2, "convert"), (3, "activate"), (40, "habit"))
        ):
            customer = Customer.objects.create(user_id=f"t{index}")
            started = now - timedelta(days=activated_days_ago + 2)
            trial = Trial.objects.create(
                customer=customer,
                started_at=started,
                ends_at=started + timedelta(days=14),
                stage=stage,
                stage_changed_at=now,
                activated_at=now - timedelta(days=activated_days_ago),
                habit_at=now - timedelta(days=activated_days_ago) if stage == "habit" else None,
            )
            # One batch brought activation and more: the history says trigger → (the final stage) only.
            TrialStageChange.objects.create(
                trial=trial, customer=customer, from_stage="trigger", to_stage=stage, changed_at=now
            )
        client = Client()
        client.login(username=make_user(Role.CS).get_username(), password=TEST_PASSWORD)
        board = client.get(reverse("trial-loop"), {"days": 30}).context["board"]
        rows = {stage["key"]: (stage["count"], stage["reached"]) for stage in board.stages}
        assert rows["activate"] == (1, 3)  # one is there now; three reached it in the last 30 days
        assert rows["trigger"] == (0, 3)
        assert rows["habit"] == (1, 1)  # recorded in the period, though its milestones are older
        page = client.get(reverse("trial-loop"), {"days": 30}).content.decode()
        assert "Reached in the last 30 days" in page
