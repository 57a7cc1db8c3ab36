"""Plays: each default play fires on the right customers and not on near-misses (built from event histories and
derived trials), deduplication and cooldown, holdout and test mode, real time through the stored-batch hook,
the segment-usage registry, validation, and the notifications an alert sends."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from audiences.models import Account, Customer, Event, Source
from audiences.pipeline import stored_events_process
from config.facts import FactKind
from config.roles import Role
from integrations.destinations.models import Destination, DestinationDelivery
from integrations.destinations.services import destination_create
from segments.models import Segment
from segments.usage import segment_uses
from trials.loop.lifecycle import trials_process
from trials.plays.alerts import alert_dismiss, alert_done
from trials.plays.defaults import PLAYS
from trials.plays.models import Alert, Play
from trials.plays.plays import MAX_COOLDOWN_HOURS, active_plays_forget, play_save, plays_evaluate

pytestmark = pytest.mark.django_db

ACTIVATED = (("Project Created", 2), ("Teammate Invited", 3))
FIT_TRAITS: dict[str, dict[str, Any]] = {
    "high": {"employees": 40, "industry": "SaaS"},
    "medium": {"employees": 40},
    "low": {},
}
_ids = itertools.count(1)


def event(source: Source, customer: Customer, name: str, at: datetime, **properties: Any) -> Event:
    return Event.objects.create(
        source=source,
        message_id=f"m-{next(_ids)}",
        customer=customer,
        type=Event.Type.TRACK,
        name=name,
        user_id=customer.user_id or "",
        properties=properties,
        timestamp=at,
        received_at=at,
    )


def person(
    source: Source,
    user_id: str,
    *,
    now: datetime,
    fit: str = "high",
    signed_up_days_ago: float = 2,
    actions: Iterable[tuple[str, float]] = (),
    account: Account | None = None,
    last_seen: datetime | None = None,
    is_test: bool = False,
) -> Customer:
    """A signup `signed_up_days_ago` days ago with the fit's traits and `actions` (name, hours after signup)."""
    signed_up = now - timedelta(days=signed_up_days_ago)
    customer = Customer.objects.create(
        user_id=user_id,
        email=f"{user_id}@corp.test",
        name=f"{user_id.title()} Person",
        traits={**FIT_TRAITS[fit], "title": "Head of Data"},
        account=account,
        first_seen_at=signed_up,
        last_seen_at=last_seen or now,
        is_test=is_test,
    )
    event(source, customer, "Signed Up", signed_up)
    for name, hours in actions:
        event(source, customer, name, signed_up + timedelta(hours=hours))
    return customer


def derive(now: datetime) -> None:
    trials_process(customer_ids=set(Customer.objects.values_list("pk", flat=True)), now=now)


def fired(key: str) -> set[str]:
    return {str(u) for u in Alert.objects.filter(play__key=key).values_list("customer__user_id", flat=True)}


@pytest.fixture(autouse=True)
def fresh_active_plays() -> Iterator[None]:
    """Each test reads the plays its own database holds (the real-time hook keeps a per-process copy)."""
    active_plays_forget()
    yield
    active_plays_forget()


@pytest.fixture
def now() -> datetime:
    return timezone.now().replace(microsecond=0)


@pytest.fixture
def rep(make_user: Any) -> Any:
    user = make_user(Role.SALES_REP, "rita")
    user.email = "rita@trialloop.test"
    user.save()
    return user


class TestDefaultPlays:
    def test_the_four_defaults_are_seeded_and_valid(self) -> None:
        assert set(Play.objects.values_list("key", flat=True)) >= {p["key"] for p in PLAYS}
        for play in Play.objects.filter(key__in=[p["key"] for p in PLAYS]):
            play_save(play)  # raises if the condition or the templates were invalid

    def test_activation_reached_needs_activation_and_medium_or_high_fit(self, source: Source, now: datetime) -> None:
        person(source, "medium_active", now=now, fit="medium", actions=ACTIVATED)
        person(source, "high_active", now=now, fit="high", actions=ACTIVATED)
        person(source, "low_active", now=now, fit="low", actions=ACTIVATED)  # near miss: fit
        person(source, "medium_idle", now=now, fit="medium", actions=[("Project Created", 2)])  # no invite
        derive(now)
        plays_evaluate(now=now)
        assert fired("activation-reached") == {"medium_active", "high_active"}

    def test_stuck_after_signup_needs_72_hours_without_activation_and_high_fit(
        self, source: Source, now: datetime
    ) -> None:
        person(source, "stuck", now=now, fit="high", signed_up_days_ago=4)
        person(source, "too_early", now=now, fit="high", signed_up_days_ago=2.5)  # near miss: 60 hours
        person(source, "medium_fit", now=now, fit="medium", signed_up_days_ago=4)  # near miss: fit
        person(source, "activated", now=now, fit="high", signed_up_days_ago=4, actions=ACTIVATED)
        derive(now)
        plays_evaluate(now=now)
        assert fired("stuck-after-signup") == {"stuck"}

    def test_trial_expiring_needs_72_hours_left_high_fit_and_no_meeting(
        self, source: Source, now: datetime, rep: Any
    ) -> None:
        person(source, "expiring", now=now, fit="high", signed_up_days_ago=12)  # 14-day trial: 2 days left
        person(source, "not_yet", now=now, fit="high", signed_up_days_ago=10)  # near miss: 4 days left
        person(source, "medium", now=now, fit="medium", signed_up_days_ago=12)  # near miss: fit
        crm = person(source, "crm_meeting", now=now, fit="high", signed_up_days_ago=12)
        event(source, crm, "Meeting Logged", now - timedelta(days=1))  # near miss: the CRM logged a meeting
        met = person(source, "rep_meeting", now=now, fit="high", signed_up_days_ago=12)
        derive(now)
        # A rep closed an earlier alert on this customer with a meeting booked.
        stuck = Play.objects.get(key="stuck-after-signup")
        earlier = Alert.objects.create(
            play=stuck, customer=met, dedup_key=f"c:{met.pk}", due_at=now, created_at=now - timedelta(days=5)
        )
        alert_done(alert_id=earlier.pk, user=rep, outcome=Alert.Outcome.MEETING_BOOKED, now=now - timedelta(days=4))
        plays_evaluate(now=now)
        assert fired("trial-expiring") == {"expiring"}

    def test_champion_at_risk_is_the_only_active_member_of_a_team_trial(self, source: Source, now: datetime) -> None:
        old = now - timedelta(days=20)
        team = Account.objects.create(group_id="grp_team", name="Team Co")
        champion = person(source, "champion", now=now, account=team, actions=ACTIVATED)
        person(source, "idle_mate", now=now, account=team, last_seen=old, signed_up_days_ago=3)
        busy = Account.objects.create(group_id="grp_busy", name="Busy Co")  # near miss: two active members
        person(source, "busy_one", now=now, account=busy, actions=ACTIVATED)
        person(source, "busy_two", now=now, account=busy, signed_up_days_ago=1)
        solo = Account.objects.create(group_id="grp_solo", name="Solo Co")  # near miss: one seat
        person(source, "solo", now=now, account=solo, actions=ACTIVATED)
        quiet = Account.objects.create(group_id="grp_quiet", name="Quiet Co")  # near miss: low usage
        person(source, "quiet_lead", now=now, account=quiet)
        person(source, "quiet_mate", now=now, account=quiet, last_seen=old)
        derive(now)
        plays_evaluate(now=now)
        assert fired("champion-at-risk") == {"champion"}
        alert = Alert.objects.get(play__key="champion-at-risk")
        assert (alert.account_id, alert.dedup_key, alert.customer_id) == (team.pk, f"a:{team.pk}", champion.pk)


class TestDedupAndCooldown:
    def test_one_active_alert_per_customer_per_play(self, source: Source, now: datetime, rep: Any) -> None:
        person(source, "ada", now=now, fit="high", actions=ACTIVATED)
        derive(now)
        first = plays_evaluate(now=now)
        again = plays_evaluate(now=now + timedelta(hours=1))
        assert first["alerts"] >= 1 and again["alerts"] == 0
        assert Alert.objects.filter(play__key="activation-reached").count() == 1

    def test_the_database_refuses_a_second_active_alert(self, source: Source, now: datetime) -> None:
        from django.db import IntegrityError, transaction

        ada = person(source, "ada", now=now)
        play = Play.objects.get(key="activation-reached")
        Alert.objects.create(play=play, customer=ada, dedup_key=f"c:{ada.pk}", due_at=now, created_at=now)
        with pytest.raises(IntegrityError), transaction.atomic():
            Alert.objects.create(play=play, customer=ada, dedup_key=f"c:{ada.pk}", due_at=now, created_at=now)

    def test_a_dismissed_alert_reopens_only_after_the_cooldown(self, source: Source, now: datetime, rep: Any) -> None:
        Play.objects.exclude(key="activation-reached").update(active=False)
        Play.objects.filter(key="activation-reached").update(cooldown_hours=48)
        person(source, "ada", now=now, fit="high", actions=ACTIVATED)
        derive(now)
        plays_evaluate(now=now)
        alert = Alert.objects.get()
        alert_dismiss(alert_id=alert.pk, user=rep, now=now + timedelta(hours=1))
        assert plays_evaluate(now=now + timedelta(hours=48))["alerts"] == 0  # 47 hours after the dismissal
        assert Alert.objects.count() == 1
        assert plays_evaluate(now=now + timedelta(hours=50))["alerts"] == 1
        assert list(Alert.objects.order_by("pk").values_list("status", flat=True)) == ["dismissed", "open"]

    def test_a_done_alert_also_waits_for_the_cooldown(self, source: Source, now: datetime, rep: Any) -> None:
        Play.objects.exclude(key="activation-reached").update(active=False)
        Play.objects.filter(key="activation-reached").update(cooldown_hours=24)
        person(source, "ada", now=now, fit="high", actions=ACTIVATED)
        derive(now)
        plays_evaluate(now=now)
        alert_done(alert_id=Alert.objects.get().pk, user=rep, outcome="reached", now=now)
        assert plays_evaluate(now=now + timedelta(hours=23))["alerts"] == 0
        assert plays_evaluate(now=now + timedelta(hours=25))["alerts"] == 1

    def test_an_account_play_fires_once_per_account(self, source: Source, now: datetime) -> None:
        play = Play.objects.get(key="activation-reached")
        play.target = Play.Target.ACCOUNT
        play.save()
        acme = Account.objects.create(group_id="grp_acme", name="Acme")
        person(source, "one", now=now, account=acme, actions=ACTIVATED)
        person(source, "two", now=now, account=acme, actions=ACTIVATED)
        derive(now)
        plays_evaluate(now=now)
        assert Alert.objects.filter(play=play).count() == 1


class TestHoldoutAndTestMode:
    def test_holdout_rows_are_the_control_group_never_queued_or_notified(
        self, source: Source, now: datetime, rep: Any, django_capture_on_commit_callbacks: Any, settings: Any
    ) -> None:
        settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
        Play.objects.exclude(key="activation-reached").update(active=False)
        Play.objects.filter(key="activation-reached").update(holdout_percent=100, no_holdout=False)
        person(source, "ada", now=now, actions=ACTIVATED)
        derive(now)
        with django_capture_on_commit_callbacks(execute=True):
            totals = plays_evaluate(now=now)
        assert (totals["alerts"], totals["holdout"]) == (0, 1)
        alert = Alert.objects.get()
        assert (alert.status, alert.assignee_id, alert.brief) == ("holdout", None, {})
        assert mail.outbox == []
        assert plays_evaluate(now=now + timedelta(days=30))["holdout"] == 0  # stays one row

    def test_test_mode_plays_fire_for_test_customers_only(self, source: Source, now: datetime) -> None:
        Play.objects.exclude(key="activation-reached").update(active=False)
        person(source, "real", now=now, actions=ACTIVATED)
        person(source, "tester", now=now, actions=ACTIVATED, is_test=True)
        derive(now)
        plays_evaluate(now=now)
        assert fired("activation-reached") == {"real"}
        Alert.objects.all().delete()
        Play.objects.filter(key="activation-reached").update(test_mode=True)
        plays_evaluate(now=now)
        assert fired("activation-reached") == {"tester"}


def test_events_trigger_plays_in_real_time(source: Source, rep: Any, django_assert_max_num_queries: Any) -> None:
    now = timezone.now()
    ada = person(source, "ada", now=now, signed_up_days_ago=1)
    stored_events_process(event_ids=list(Event.objects.filter(customer=ada).values_list("pk", flat=True)), now=now)
    assert not fired("activation-reached")
    # A batch no play reads (and that moves no trial) costs the plays no query at all.
    other = [event(source, ada, "Page Viewed", now).pk]
    with django_assert_max_num_queries(40) as counted:
        stored_events_process(event_ids=other, now=now)
    assert not any("trials_play" in q["sql"] or "trials_alert" in q["sql"] for q in counted.captured_queries)
    new = [event(source, ada, name, now - timedelta(minutes=5 - n)).pk for n, (name, _) in enumerate(ACTIVATED)]
    stored_events_process(event_ids=new, now=now)
    assert fired("activation-reached") == {"ada"}
    alert = Alert.objects.get(play__key="activation-reached")
    assert alert.assignee == rep and alert.brief["who"]["name"] == "Ada Person"


@pytest.fixture
def broken_plays() -> list[Play]:
    """Three plays evaluated before activation-reached (the only other active one) that match the same people yet
    cannot be evaluated: saved before a property was removed, before MAX_COOLDOWN_HOURS and before the SLA check
    (stored bypassing play_save, as such old rows are)."""
    Play.objects.exclude(key="activation-reached").update(active=False)
    condition = Play.objects.get(key="activation-reached").condition
    broken = [Play.objects.create(key=f"broken-{n}", name=f"Broken {n}", condition=condition, priority=0)
              for n in range(3)]  # fmt: skip
    Play.objects.filter(pk=broken[0].pk).update(condition={"type": "group", "operator": "and", "children": [
        {"type": "condition", "property": "traits.gone", "operator": "no_such_operator", "value": 1}]})  # fmt: skip
    Play.objects.filter(pk=broken[1].pk).update(cooldown_hours=10**9)
    Play.objects.filter(pk=broken[2].pk).update(sla_business_hours=7000)  # beyond MAX_DAYS_SCANNED of 9-17 weekdays
    return broken


class TestBrokenPlays:
    def test_the_beat_skips_a_broken_play_and_evaluates_the_others(
        self, source: Source, now: datetime, broken_plays: list[Play], caplog: pytest.LogCaptureFixture
    ) -> None:
        person(source, "ada", now=now, actions=ACTIVATED)
        derive(now)
        with caplog.at_level(logging.ERROR, logger="trials.plays"):
            totals = plays_evaluate(now=now)
        assert (totals["failed"], totals["alerts"]) == (3, 1)
        assert fired("activation-reached") == {"ada"}
        assert not Alert.objects.filter(play__in=broken_plays).exists()
        logged = " ".join(record.getMessage() for record in caplog.records)
        assert all(f"'{play.key}'" in logged for play in broken_plays)

    def test_real_time_skips_a_broken_play_without_failing_the_batch(
        self, source: Source, now: datetime, broken_plays: list[Play]
    ) -> None:
        ada = person(source, "ada", now=now, signed_up_days_ago=1)
        stored_events_process(event_ids=list(Event.objects.filter(customer=ada).values_list("pk", flat=True)), now=now)
        new = [event(source, ada, name, now - timedelta(minutes=5 - n)).pk for n, (name, _) in enumerate(ACTIVATED)]
        stored_events_process(event_ids=new, now=now)
        assert fired("activation-reached") == {"ada"}
        assert not Alert.objects.filter(play__in=broken_plays).exists()


def test_notifications_reach_destinations_and_the_assignee(
    source: Source, now: datetime, rep: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.DESTINATIONS_ALLOW_PRIVATE_URLS = True
    crm = destination_create(
        name="CRM", kind=Destination.Kind.WEBHOOK, url="http://127.0.0.1:9/hook", kinds=[FactKind.ALERT_CREATED]
    )
    Play.objects.exclude(key="activation-reached").update(active=False)
    person(source, "ada", now=now, actions=ACTIVATED)
    derive(now)
    with django_capture_on_commit_callbacks(execute=False):
        plays_evaluate(now=now)
    alert = Alert.objects.get()
    delivery = DestinationDelivery.objects.get(destination=crm)
    assert delivery.kind == "alert_created" and delivery.idempotency_key == f"alert_created:{alert.pk}"
    payload = delivery.payload["data"]
    assert payload["play"]["key"] == "activation-reached" and payload["alert"]["assignee"] == "rita"
    assert payload["brief"]["who"]["name"] == "Ada Person" and payload["brief"]["scores"]["fit"] == 75
    mail.outbox.clear()
    Alert.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        plays_evaluate(now=now)
    assert [m.to for m in mail.outbox] == [["rita@trialloop.test"]]
    assert "Activation reached" in mail.outbox[0].subject and "/alerts/" in mail.outbox[0].body
    Alert.objects.all().delete()
    mail.outbox.clear()
    Play.objects.filter(key="activation-reached").update(notify_assignee=False)
    with django_capture_on_commit_callbacks(execute=True):
        plays_evaluate(now=now)
    assert mail.outbox == []


class TestValidationAndUsage:
    def test_bad_conditions_and_templates_are_refused_per_field(self) -> None:
        play = Play(key="bad", name="Bad", condition={"type": "group", "operator": "and", "children": []})
        play.subject = "{{ nope }}"
        play.body = "{% load static %}"
        with pytest.raises(ValidationError) as refused:
            play_save(play)
        assert set(refused.value.message_dict) == {"condition", "subject", "body"}

    def test_rep_variables_are_allowed(self) -> None:
        play = Play(
            key="ok",
            name="OK",
            condition={"type": "group", "operator": "and", "children": [
                {"type": "condition", "property": "score.fit", "operator": "gte", "value": 1}]},
            subject="{{ first_name }} {{ use_case }} {{ plan_name }}",
            body="{{ key_actions }} {{ rep_name }} {{ teammates }} {{ computed.nope }}",
        )  # fmt: skip
        with pytest.raises(ValidationError) as refused:
            play_save(play)
        assert list(refused.value.message_dict) == ["body"]  # only the unknown computed trait

    def test_an_unreachable_sla_and_an_endless_cooldown_are_refused_per_field(self) -> None:
        play = Play.objects.get(key="activation-reached")
        play.sla_business_hours = 7000  # 175 weeks of 9-17 weekdays: beyond what the SLA clock scans
        play.cooldown_hours = MAX_COOLDOWN_HOURS + 1
        with pytest.raises(ValidationError) as refused:
            play_save(play)
        assert set(refused.value.message_dict) == {"sla_business_hours", "cooldown_hours"}
        play.sla_business_hours, play.cooldown_hours = 2000, MAX_COOLDOWN_HOURS
        play_save(play)

    def test_segment_test_mode_names_the_plays_using_it(self) -> None:
        segment = Segment.objects.create(
            name="Big", conditions={"type": "group", "operator": "and", "children": [
                {"type": "condition", "property": "score.fit", "operator": "gte", "value": 70}]},
        )  # fmt: skip
        condition = {"type": "group", "operator": "and", "children": [
            {"type": "segment", "segment": segment.pk, "operator": "in"}]}  # fmt: skip
        play_save(Play(key="in-big", name="In big", condition=condition))
        assert [(u.kind, u.name) for u in segment_uses(segment)] == [("Play", "In big")]


def test_the_demo_data_set_has_a_few_alerts() -> None:
    from config.demo.seed import demo_seed

    demo_seed(customers=300, seed=42, now=datetime(2026, 3, 2, tzinfo=timezone.get_current_timezone()))
    alerts = Alert.objects.exclude(status="holdout")
    assert 1 <= alerts.count() <= 300 and alerts.values("play").distinct().count() >= 2
    assert all(alert.brief.get("message", {}).get("subject") for alert in alerts)


def test_the_beat_task_evaluates_and_records_its_run(source: Source, now: datetime) -> None:
    from config.models import TaskRun
    from config.schedules import SCHEDULES
    from trials.plays.tasks import evaluate_plays

    assert "trials.tasks.evaluate_plays" in {schedule.task for schedule in SCHEDULES}
    person(source, "ada", now=timezone.now(), actions=ACTIVATED)
    derive(timezone.now())
    detail = evaluate_plays()
    assert detail["alerts"] >= 1 and fired("activation-reached") == {"ada"}
    assert TaskRun.objects.get(name="plays evaluate").outcome == TaskRun.Outcome.SUCCEEDED
