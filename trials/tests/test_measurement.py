"""The measurement reports recover the effects the demo data plants, and agree with a naive count on small data."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from audiences.models import Customer, Event, Source
from config.demo.effects import NOISE_EVENT, PlantedEffects, plant_effects
from trials.loop.models import Trial, TrialStage
from trials.loop.settings import activation_definition_update
from trials.measurement.behaviour import converters_vs_churners
from trials.measurement.cohorts import activation_discovery, conversion_cohorts
from trials.measurement.retention import retention_report
from trials.measurement.scope import BENCHMARKS, INVITE_EVENT, Filters
from trials.measurement.stats import Verdict
from trials.measurement.tables import cohort_table, retention_table
from trials.measurement.uplift import uplift_from_counts, uplift_report

NOW = datetime(2026, 6, 1, tzinfo=UTC)
TRIALS = 3000
EFFECTS = PlantedEffects()


@pytest.fixture
def planted(source: Source) -> Source:
    plant_effects(source=source, trials=TRIALS, seed=11, now=NOW)
    return source


def test_discovery_recovers_the_planted_activation_event(planted: Source, django_assert_max_num_queries: Any) -> None:
    with django_assert_max_num_queries(4):
        report = activation_discovery(filters=Filters(), days=3, now=NOW)
    assert report.ended_trials == TRIALS
    top = report.rows[0]
    assert (top.event, top.threshold) == (EFFECTS.activation_event, 1)
    assert top.comparison.verdict is Verdict.EFFECT
    assert top.comparison.difference_ci.contains(EFFECTS.activation_lift)
    assert top.coverage == pytest.approx(EFFECTS.doer_share, abs=0.03)
    noise = next(row for row in report.rows if (row.event, row.threshold) == (NOISE_EVENT, 1))
    assert noise.comparison.difference_ci.contains(0.0)
    # Ranked by the lift's lower bound, the planted event's thresholds come before the noise.
    ranked = [row.event for row in report.rows]
    assert ranked.index(EFFECTS.activation_event) < ranked.index(NOISE_EVENT)


def test_uplift_recovers_the_planted_template_and_reads_the_null_one_as_no_effect(
    planted: Source, django_assert_max_num_queries: Any
) -> None:
    with django_assert_max_num_queries(2):  # one GROUP BY for the templates, one for the plays
        rows = {row.key: row for row in uplift_report(filters=Filters(), now=NOW)}
    effect, null = rows[EFFECTS.uplift_template].comparison, rows[EFFECTS.null_template].comparison
    assert effect.trials_a + effect.trials_b == TRIALS
    assert effect.verdict is Verdict.EFFECT
    assert effect.difference_ci.contains(EFFECTS.template_uplift)
    assert effect.relative_ci.excludes(0.0)
    assert null.verdict is Verdict.NO_DETECTABLE_EFFECT
    assert null.difference_ci.contains(0.0)
    assert null.sentence.startswith("No detectable effect")


def test_cohorts_match_a_naive_count_and_mark_immature_cohorts(planted: Source, customer: Customer) -> None:
    Trial.objects.create(
        customer=customer, started_at=NOW - timedelta(days=2), ends_at=NOW + timedelta(days=12), stage_changed_at=NOW
    )
    report = conversion_cohorts(filters=Filters(), period="month", split="model", now=NOW)
    assert sum(row.trials for row in report.rows) == TRIALS + 1
    naive_30d = sum(
        1
        for trial in Trial.objects.all()
        if trial.converted_at is not None and trial.converted_at <= trial.ends_at + timedelta(days=30)
    )
    naive_in_trial = sum(1 for t in Trial.objects.all() if t.converted_at is not None and t.converted_at <= t.ends_at)
    assert sum(row.converted_30d for row in report.rows) == naive_30d
    assert sum(row.converted_in_trial for row in report.rows) == naive_in_trial
    assert naive_in_trial < naive_30d
    latest = [row for row in report.rows if row.cohort == date(2026, 5, 1)]
    assert latest and not latest[0].window_closed and not latest[0].mature
    assert all(row.mature for row in report.rows if row.cohort < date(2026, 3, 1))
    assert report.groups == ["opt_in"]
    subscription = customer.subscriptions.get()
    Trial.objects.filter(customer=customer).update(subscription=subscription)
    by_plan = conversion_cohorts(filters=Filters(), period="month", split="plan", now=NOW)
    assert by_plan.groups == ["No plan", subscription.plan.name]
    only_plan = conversion_cohorts(filters=Filters(plan=subscription.plan), period="month", now=NOW)
    assert [(row.trials, row.group) for row in only_plan.rows] == [(1, "All trials")]
    by_source = conversion_cohorts(filters=Filters(source="paid"), period="week", split="source", now=NOW)
    assert by_source.groups == ["paid"]
    assert sum(row.trials for row in by_source.rows) == Trial.objects.filter(source="paid").count()


def test_retention_recovery_and_time_to_convert(planted: Source) -> None:
    report = retention_report(filters=Filters(), now=NOW)
    trials = list(Trial.objects.all())
    lapsed = [t for t in trials if t.converted_at is None or t.converted_at > t.ends_at]
    recovered = [t for t in lapsed if t.converted_at is not None and t.converted_at <= t.ends_at + timedelta(days=30)]
    assert (report.lapsed, report.recovered) == (len(lapsed), len(recovered))
    assert report.recovery_ci.contains(len(recovered) / len(lapsed))
    assert report.offers["save_rate"] is None  # no cancellation sessions in this data
    days = sorted((t.converted_at - t.started_at).total_seconds() / 86400 for t in trials if t.converted_at)
    assert report.days_to_convert is not None
    assert report.days_to_convert.median == pytest.approx(days[(len(days) + 1) // 2 - 1], abs=0.05)
    assert report.converted == len(days)


def _trial(source: Source, user_id: str, *, converted: bool, events: list[tuple[str, int]]) -> None:
    customer = Customer.objects.create(user_id=user_id)
    started = NOW - timedelta(days=40)
    Trial.objects.create(
        customer=customer,
        started_at=started,
        ends_at=started + timedelta(days=14),
        stage=TrialStage.CONVERT if converted else TrialStage.LOST,
        stage_changed_at=NOW,
        converted_at=started + timedelta(days=10) if converted else None,
    )
    for index, (name, day) in enumerate(events):
        moment = started + timedelta(days=day, hours=1)
        Event.objects.create(
            source=source, message_id=f"{user_id}-{index}", customer=customer, type=Event.Type.TRACK, name=name,
            timestamp=moment, received_at=moment,
        )  # fmt: skip


def test_converters_vs_churners_quartiles(source: Source, django_assert_max_num_queries: Any) -> None:
    core = "Project Created"  # one of the seeded definition's high-intent events
    _trial(source, "c1", converted=True, events=[(core, 0), (core, 1), (INVITE_EVENT, 1), ("Late", 20)])
    _trial(source, "c2", converted=True, events=[(core, 0), (core, 0), (core, 2), (core, 3)])
    _trial(source, "l1", converted=False, events=[("Viewed", 0)])
    _trial(source, "l2", converted=False, events=[])
    _trial(source, "l3", converted=False, events=[(core, 5)])
    with django_assert_max_num_queries(3):
        groups = {group.label: group for group in converters_vs_churners(filters=Filters(), now=NOW)}
    converters, churners = groups["Converters"], groups["Churners"]
    assert (converters.trials, churners.trials) == (2, 3)
    # c1: 3 core uses (the invite is high-intent too), 2 days, 1 invite; c2: 4 core uses, 3 days, 0 invites.
    assert converters.measures["core_uses"].median == 3 and converters.measures["core_uses"].maximum == 4
    assert converters.measures["days_active"].median == 2
    assert converters.measures["invites"].maximum == 1
    # l1: 0 core, 1 day; l2: nothing; l3: 1 core, 1 day → sorted core (0, 0, 1), days (0, 1, 1).
    assert churners.measures["core_uses"].median == 0 and churners.measures["core_uses"].q3 == 1
    assert churners.measures["days_active"].median == 1 and churners.measures["days_active"].minimum == 0


def test_discovery_marks_current_only_for_the_definitions_window(source: Source) -> None:
    _trial(source, "d1", converted=True, events=[("Report Built", 0)])
    _trial(source, "d2", converted=False, events=[])
    activation_definition_update(
        data={"activation_event": "Report Built", "activation_count": 1, "activation_within_hours": 72}
    )

    def current(days: int) -> bool:
        report = activation_discovery(filters=Filters(), days=days, now=NOW)
        return next(row for row in report.rows if row.threshold == 1).is_current

    # The 72-hour definition is the 3-day row, not the 7-day one (which stays adoptable).
    assert current(3) and not current(7)


def test_uplift_from_counts_is_the_shared_comparison() -> None:
    row = uplift_from_counts(
        kind="play", key="p", name="P", holdout_percent=10, treated=400, treated_converted=120, control=400,
        control_converted=80,
    )  # fmt: skip
    assert row.comparison.difference == pytest.approx(0.10)
    assert row.comparison.verdict is Verdict.EFFECT


def test_retention_reuses_the_offers_save_rate_and_mrr_saved(customer: Customer, plan: Any) -> None:
    from integrations.stripe.models import Subscription
    from offers.models import CancellationFlow, CancellationSession

    now = datetime.now(tz=UTC)
    flow = CancellationFlow.objects.create(name="Standard", is_draft=False)
    subscription = Subscription.objects.create(
        customer=customer, plan=plan, status=Subscription.Status.ACTIVE, started_at=now - timedelta(days=90)
    )
    for index, (outcome, mrr) in enumerate([("saved", 4900), ("saved", 1000), ("canceled", 2500)]):
        CancellationSession.objects.create(
            token=f"token-{index}-xxxxxxxxxxxxxxxx", customer=customer, subscription=subscription, flow=flow,
            outcome=outcome, outcome_at=now - timedelta(days=2), mrr_cents=mrr,
        )  # fmt: skip
    report = retention_report(filters=Filters(), now=datetime.now(tz=UTC))  # sessions are stamped on creation
    assert report.offers["save_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert report.offers["mrr_saved_cents"] == 5900
    older = retention_report(filters=Filters(until=(now - timedelta(days=10)).date()), now=now)
    assert older.offers["saved"] == 0


def test_retention_names_the_period_the_offers_figures_cover(db: Any) -> None:
    # Two years of trials: the offers app caps its report at a year, and the table says which one.
    report = retention_report(filters=Filters(since=date(2024, 6, 1), until=date(2026, 5, 31)), now=NOW)
    assert report.offers_period == (date(2025, 5, 31), date(2026, 5, 31))
    rows = {row["metric"]: row["value"] for row in retention_table(report).rows}
    assert (rows["offers_since"], rows["offers_until"]) == ("2025-05-31", "2026-05-31")
    # Without a range, the offers' last 90 days.
    today = timezone.localdate(NOW)
    assert retention_report(filters=Filters(), now=NOW).offers_period == (today - timedelta(days=89), today)


def test_cohort_benchmark_lines_are_labelled_from_their_values(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BENCHMARKS[Trial.Model.OPT_IN], "median", 0.2)
    chart = cohort_table(conversion_cohorts(filters=Filters(), now=NOW)).chart
    lines = {dataset["label"] for dataset in chart["datasets"] if dataset.get("benchmark")}
    assert lines == {"Opt-in median 20%", "Opt-in top quartile 25%", "Opt-out median 60%"}


def test_the_demo_seed_plants_the_effects_and_its_reset_removes_them(db: Any) -> None:
    from config.demo.effects import USER_ID_PREFIX
    from config.demo.seed import demo_data_delete, demo_seed
    from config.demo.vocabulary import MIN_CUSTOMERS
    from trials.messaging.models import MessageSend, MessageTemplate

    demo_seed(customers=MIN_CUSTOMERS, seed=1, now=NOW, effect_trials=200)
    planted = Trial.objects.filter(customer__user_id__startswith=USER_ID_PREFIX)
    assert planted.count() == 200 and not planted.filter(started_at__gt=NOW - timedelta(days=50)).exists()
    assert MessageSend.objects.filter(template__key=EFFECTS.uplift_template).count() == 200
    assert not MessageTemplate.objects.get(key=EFFECTS.null_template).active
    demo_data_delete()
    assert not Trial.objects.exists() and not MessageSend.objects.exists()


def _play_with_alerts(treated: tuple[int, int], control: tuple[int, int]) -> str:
    """A play whose alerted customers convert `treated` = (converted, total) and its holdout `control`."""
    from trials.plays.models import Alert, Play

    play = Play.objects.create(key="hot-trials", name="Hot trials", condition={}, holdout_percent=50)
    alerts = []
    for status, (converted, total) in ((Alert.Status.DISMISSED, treated), (Alert.Status.HOLDOUT, control)):
        for index in range(total):
            customer = Customer.objects.create(user_id=f"usr_play_{status}_{index}")
            created = NOW - timedelta(days=40)
            Trial.objects.create(
                customer=customer, started_at=created - timedelta(days=2), ends_at=created + timedelta(days=12),
                stage_changed_at=created, converted_at=created + timedelta(days=5) if index < converted else None,
            )  # fmt: skip
            alerts.append(
                Alert(play=play, customer=customer, dedup_key=f"c:{customer.pk}", status=status, due_at=created,
                      created_at=created)
            )  # fmt: skip
    Alert.objects.bulk_create(alerts)
    return play.key


def test_play_uplift_from_its_holdout_alerts(db: Any, make_user: Any, api_client_for: Any) -> None:
    from config.roles import Role

    key = _play_with_alerts(treated=(90, 200), control=(30, 200))
    rows = {row.key: row for row in uplift_report(filters=Filters(), now=NOW)}
    play = rows[key].comparison
    assert (rows[key].kind, play.trials_a, play.successes_a, play.trials_b, play.successes_b) == (
        "play",
        200,
        90,
        200,
        30,
    )
    assert play.difference == pytest.approx(0.30) and play.verdict is Verdict.EFFECT
    assert key not in {row.key for row in uplift_report(filters=Filters(), now=NOW, plays=False)}
    growth, cs = make_user(Role.GROWTH), make_user(Role.CS)  # CS may not see plays
    assert key in {row["key"] for row in api_client_for(growth).get("/api/v1/measurement/uplift/").json()["rows"]}
    assert key not in {row["key"] for row in api_client_for(cs).get("/api/v1/measurement/uplift/").json()["rows"]}
