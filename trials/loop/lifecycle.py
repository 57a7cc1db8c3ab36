"""The Trial-to-Paid Loop: trials created from subscriptions and signups, their stage and scores kept current.

Three doors call the same two services: the stored-batch hook (`trials_on_batch` in trials.loop.hooks,
registered in TrialsConfig.ready(), for the customers a batch touched), the beat sweep (`trials_sweep`, for trials that
time alone has made due) and `manage.py trials_sync` (a backfill in chunks). `trials_sync` creates, attaches
and restarts trials; `trials_refresh` derives each trial's stage and scores from its data in a handful of
queries for the whole set (annotated subqueries, one compiled condition), then writes the differences with
bulk updates and records stage changes.

Stages: trigger → activate (activation done) → habit (N high-intent actions inside the habit window) → signal
(activated and PQL at the threshold) → convert (a paid subscription); ended unpaid → recover (inside the
win-back window) → lost (window over); a returning lapsed customer (a new trial subscription or signup)
restarts their trial at trigger. In-trial milestones are sticky.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import (
    Count,
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from audiences.models import Customer, Event
from audiences.pipeline import BatchFacts, trait_changes_publish
from integrations.stripe.models import Subscription
from segments.compiler import compile_tree
from segments.conditions import parse_tree
from segments.live.membership import audiences_refresh
from segments.traits.evaluation import computed_traits_trial_changed
from trials.loop.defaults import DEFINITION
from trials.loop.models import ActivationDefinition, FitRule, Trial, TrialStage, TrialStageChange
from trials.loop.scores import (
    CompiledRule,
    ScoreInputs,
    fit_annotations,
    fit_matched,
    fit_rules_compiled,
    score_settings,
    scores_compute,
)

PAID_STATUSES = (Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE, Subscription.Status.UNPAID)
ENDED_STATUSES = (Subscription.Status.CANCELED, Subscription.Status.INCOMPLETE_EXPIRED)
LAPSED_STAGES = (TrialStage.RECOVER, TrialStage.LOST)
IN_TRIAL_STAGES = (TrialStage.TRIGGER, TrialStage.ACTIVATE, TrialStage.HABIT, TrialStage.SIGNAL)
DECAY_RECHECK = timedelta(days=1)
SWEEP_LIMIT = 2000


def activation_definition() -> ActivationDefinition:
    """The one definition row (created with defaults when a database has none)."""
    definition, _ = ActivationDefinition.objects.get_or_create(pk=1, defaults=DEFINITION)
    return definition


def _record(trial: Trial, to_stage: str, now: datetime, changes: list[TrialStageChange]) -> None:
    changes.append(
        TrialStageChange(
            trial=trial, customer_id=trial.customer_id, from_stage=trial.stage, to_stage=to_stage, changed_at=now
        )
    )
    trial.stage = to_stage
    trial.stage_changed_at = now


def _restart(trial: Trial, started_at: datetime, ends_at: datetime, now: datetime) -> None:
    """A lapsed customer came back: the same trial row starts over at trigger (the loop's recover → trigger)."""
    trial.started_at, trial.ends_at = started_at, max(ends_at, started_at)
    trial.activated_at = trial.habit_at = trial.signal_at = trial.converted_at = trial.expired_at = None
    trial.next_check_at = now


def _new_trial(customer: Customer, *, started_at: datetime, ends_at: datetime, model: str, now: datetime) -> Trial:
    traits = customer.traits or {}
    return Trial(
        customer=customer,
        model=model,
        started_at=started_at,
        ends_at=max(ends_at, started_at),
        source=str(traits.get("signup_source", ""))[:100],
        use_case=str(traits.get("use_case", ""))[:255],
        stage=TrialStage.TRIGGER,
        stage_changed_at=now,
        next_check_at=now,
    )


def _subscription_model(subscription: Subscription) -> str:
    """Stripe trials usually collect a card (opt-out); `metadata.trial_model` overrides it per subscription."""
    stated = (subscription.metadata or {}).get("trial_model")
    return str(stated) if stated in Trial.Model.values else Trial.Model.OPT_OUT


def trials_sync(*, customer_ids: set[int], now: datetime, definition: ActivationDefinition | None = None) -> set[int]:
    """Create, attach or restart the trials of these customers from their trial subscriptions and signup events.

    A trial subscription without a trial attaches to the customer's open signup trial, restarts a lapsed trial
    (when it started after the lapse), or creates a trial. A signup event creates an opt-in trial for a customer
    without one, or restarts a lapsed one. Returns the customers whose trials were created or restarted.
    """
    if not customer_ids:
        return set()
    definition = definition or activation_definition()
    current = {t.customer_id: t for t in Trial.objects.filter(customer_id__in=customer_ids, is_current=True)}
    changed: set[int] = set()
    created: list[Trial] = []
    updated: list[Trial] = []
    stage_changes: list[TrialStageChange] = []
    subscriptions = (
        Subscription.objects.filter(customer_id__in=customer_ids, trial_start__isnull=False, trial__isnull=True)
        .select_related("customer")
        .order_by("trial_start")
    )
    for subscription in subscriptions:
        assert subscription.trial_start is not None
        ends_at = subscription.trial_end or subscription.trial_start + timedelta(days=definition.trial_days)
        trial = current.get(subscription.customer_id)
        if trial is None:
            trial = _new_trial(
                subscription.customer,
                started_at=subscription.trial_start,
                ends_at=ends_at,
                model=_subscription_model(subscription),
                now=now,
            )
            trial.subscription = subscription
            created.append(trial)
            current[subscription.customer_id] = trial
        elif trial.stage in LAPSED_STAGES and trial.expired_at and subscription.trial_start > trial.expired_at:
            _restart(trial, subscription.trial_start, ends_at, now)
            trial.subscription, trial.model = subscription, _subscription_model(subscription)
            _record(trial, TrialStage.TRIGGER, now, stage_changes)
            updated.append(trial)
        elif trial.subscription_id is None and trial.stage not in LAPSED_STAGES:
            trial.subscription, trial.model = subscription, _subscription_model(subscription)
            trial.ends_at, trial.next_check_at = max(ends_at, trial.started_at), now
            updated.append(trial)
        else:
            continue  # an older or parallel trial subscription: the current trial stays as it is
        changed.add(subscription.customer_id)
    if definition.signup_event:
        signups = dict(
            Event.objects.filter(customer_id__in=customer_ids, name=definition.signup_event)
            .order_by()
            .values("customer_id")
            .annotate(last=Max("timestamp"))
            .values_list("customer_id", "last")
        )
        customers = {c.pk: c for c in Customer.objects.filter(pk__in=set(signups) - set(current))}
        for customer_id, signed_up in signups.items():
            trial = current.get(customer_id)
            ends_at = signed_up + timedelta(days=definition.trial_days)
            if trial is None:
                trial = _new_trial(
                    customers[customer_id], started_at=signed_up, ends_at=ends_at, model=Trial.Model.OPT_IN, now=now
                )
                created.append(trial)
                current[customer_id] = trial
            elif trial.stage in LAPSED_STAGES and trial.expired_at and signed_up > trial.expired_at:
                _restart(trial, signed_up, ends_at, now)
                trial.subscription, trial.model = None, Trial.Model.OPT_IN
                _record(trial, TrialStage.TRIGGER, now, stage_changes)
                updated.append(trial)
            else:
                continue
            changed.add(customer_id)
    for trial in created:
        trial.save()
        stage_changes.append(
            TrialStageChange(
                trial=trial, customer_id=trial.customer_id, from_stage="", to_stage=TrialStage.TRIGGER, changed_at=now
            )
        )
    for trial in updated:
        trial.save()
    TrialStageChange.objects.bulk_create(stage_changes)
    return changed


def _nth_event_time(names: list[str], nth: int, until: Any) -> Subquery:
    """The time of the customer's nth event among `names` from the trial's start up to `until` (or NULL)."""
    events = Event.objects.filter(
        customer=OuterRef("customer_id"), name__in=names, timestamp__gte=OuterRef("started_at")
    )
    if until is not None:
        events = events.filter(timestamp__lte=until)
    return Subquery(events.order_by("timestamp", "pk").values("timestamp")[nth - 1 : nth])


def _annotated(
    trials: QuerySet[Trial], definition: ActivationDefinition, now: datetime, fit_rules: list[CompiledRule]
) -> QuerySet[Trial]:
    """Everything the stage and scores need, per trial, in the same query as the trial (the fit rules too: a flag
    per rule, trials.loop.scores.fit_annotations)."""
    habit_events = [str(name) for name in definition.habit_events]
    window_end = ExpressionWrapper(
        F("started_at") + timedelta(days=definition.habit_window_days), output_field=DateTimeField()
    )
    trials = trials.annotate(habit_window_end=window_end)
    if definition.activation_event:
        hours = definition.activation_within_hours
        deadline = (
            ExpressionWrapper(F("started_at") + timedelta(hours=hours), output_field=DateTimeField())
            if hours is not None
            else None
        )
        trials = trials.annotate(activation_deadline=deadline) if deadline is not None else trials
        trials = trials.annotate(
            activation_event_at=_nth_event_time(
                [definition.activation_event],
                max(1, definition.activation_count),
                OuterRef("activation_deadline") if deadline is not None else None,
            )
        )
    actions = Event.objects.filter(
        customer=OuterRef("customer_id"),
        name__in=habit_events,
        timestamp__gte=OuterRef("started_at"),
        timestamp__lte=now,
    )
    recent = actions  # inactivity: no high-intent action (other events do not reset the decay)
    return trials.select_related("customer__account", "subscription").annotate(
        habit_reached_at=_nth_event_time(
            habit_events, max(1, definition.habit_threshold), OuterRef("habit_window_end")
        ),
        action_count=Coalesce(
            Subquery(actions.order_by().values("customer").annotate(n=Count("pk")).values("n")),
            Value(0),
            output_field=IntegerField(),
        ),
        last_active_at=Subquery(recent.order_by("-timestamp").values("timestamp")[:1]),
        has_paid_subscription=Exists(
            Subscription.objects.filter(
                customer=OuterRef("customer_id"), status__in=PAID_STATUSES, started_at__gte=OuterRef("started_at")
            )
        ),
        **fit_annotations(fit_rules, customer="customer_id"),
    )


def _condition_holders(definition: ActivationDefinition, customer_ids: set[int], now: datetime) -> set[int] | None:
    """The customers for whom the activation condition holds (None: no condition is set)."""
    if not definition.activation_condition:
        return None

    tree = compile_tree(parse_tree(definition.activation_condition), now)
    return set(Customer.objects.filter(pk__in=customer_ids).filter(tree).values_list("pk", flat=True))


@dataclass
class _Derived:
    converted: bool
    ended_at: datetime | None


def _outcome(trial: Any, now: datetime) -> _Derived:
    """Paid, or ended unpaid (and when), from the subscription (or any paid one, for a signup trial)."""
    subscription: Subscription | None = trial.subscription
    if subscription is not None:
        if subscription.status in PAID_STATUSES:
            return _Derived(True, None)
        if subscription.status in ENDED_STATUSES:
            ended = subscription.ended_at or subscription.canceled_at or now
            return _Derived(False, min(ended, trial.ends_at))
    elif trial.has_paid_subscription:
        return _Derived(True, None)
    return _Derived(False, trial.ends_at if now >= trial.ends_at else None)


def _next_check(trial: Trial, definition: ActivationDefinition, now: datetime) -> datetime | None:
    """The next moment time alone may change this trial."""
    if trial.stage == TrialStage.CONVERT or trial.stage == TrialStage.LOST:
        return None
    if trial.stage == TrialStage.RECOVER:
        assert trial.expired_at is not None
        return trial.expired_at + timedelta(days=definition.recover_window_days)
    moments = [trial.ends_at, now + DECAY_RECHECK]
    habit_end = trial.started_at + timedelta(days=definition.habit_window_days)
    if trial.habit_at is None and habit_end > now:
        moments.append(habit_end)
    return min(moment for moment in moments if moment > now) if any(m > now for m in moments) else now + DECAY_RECHECK


UPDATED_FIELDS = [
    "ends_at", "stage", "stage_changed_at", "activated_at", "habit_at", "signal_at", "converted_at", "expired_at",
    "fit_score", "behaviour_score", "pql_score", "score_breakdown", "next_check_at",
]  # fmt: skip
SEGMENT_VISIBLE = ("stage", "fit_score", "behaviour_score", "pql_score", "ends_at", "model")


def _state(trial: Trial) -> tuple[Any, ...]:
    return tuple(getattr(trial, field) for field in UPDATED_FIELDS)


def trials_refresh(
    *, trials: QuerySet[Trial], now: datetime, definition: ActivationDefinition | None = None
) -> set[int]:
    """Derive stage and scores for these trials from their data and write what changed; returns the customers
    whose segment-visible trial data (stage, scores) changed. Query count does not grow with the set's size."""
    definition = definition or activation_definition()
    compiled = fit_rules_compiled(FitRule.objects.all(), now)
    rows: list[Any] = list(_annotated(trials, definition, now, compiled))  # Trials with _annotated's annotations
    if not rows:
        return set()
    settings = score_settings()
    holders = _condition_holders(definition, {t.customer_id for t in rows}, now)
    changed: set[int] = set()
    stage_changes: list[TrialStageChange] = []
    dirty: list[Trial] = []
    for trial in rows:
        before = tuple(getattr(trial, field) for field in SEGMENT_VISIBLE)
        before_all = _state(trial)
        subscription = trial.subscription
        if subscription is not None and subscription.trial_end and subscription.trial_end >= trial.started_at:
            trial.ends_at = subscription.trial_end  # Stripe's trial end wins (an extension moves it)
        event_at = getattr(trial, "activation_event_at", None)
        event_ok = not definition.activation_event or event_at is not None
        condition_ok = holders is None or trial.customer_id in holders
        if trial.activated_at is None and event_ok and condition_ok and (definition.activation_event or holders):
            trial.activated_at = now if holders is not None or event_at is None else event_at
        if trial.habit_at is None and trial.habit_reached_at is not None:
            trial.habit_at = trial.habit_reached_at
        fit_points, fit_rules = fit_matched(trial, compiled)
        scores = scores_compute(
            ScoreInputs(
                activated=trial.activated_at is not None,
                actions=int(trial.action_count),
                last_active_at=trial.last_active_at or trial.started_at,
                fit_points=fit_points,
                fit_rules=tuple(fit_rules),
            ),
            settings=settings,
            now=now,
        )
        trial.fit_score, trial.behaviour_score, trial.pql_score = scores.fit, scores.behaviour, scores.pql
        trial.score_breakdown = scores.breakdown
        if trial.signal_at is None and trial.activated_at is not None and scores.pql >= settings.pql_threshold:
            trial.signal_at = now
        outcome = _outcome(trial, now)
        if outcome.converted:
            trial.converted_at = trial.converted_at or now
            stage: str = TrialStage.CONVERT
        elif outcome.ended_at is not None:
            trial.expired_at = trial.expired_at or outcome.ended_at
            window_end = trial.expired_at + timedelta(days=definition.recover_window_days)
            stage = TrialStage.LOST if now >= window_end else TrialStage.RECOVER
        elif trial.signal_at is not None:
            stage = TrialStage.SIGNAL
        elif trial.habit_at is not None and trial.activated_at is not None:
            stage = TrialStage.HABIT
        elif trial.activated_at is not None:
            stage = TrialStage.ACTIVATE
        else:
            stage = TrialStage.TRIGGER
        if stage != trial.stage:
            _record(trial, stage, now, stage_changes)
        trial.next_check_at = _next_check(trial, definition, now)
        after = tuple(getattr(trial, field) for field in SEGMENT_VISIBLE)
        after_all = _state(trial)
        if after != before:
            changed.add(trial.customer_id)
        if after_all != before_all:
            dirty.append(trial)
    Trial.objects.bulk_update(dirty, UPDATED_FIELDS, batch_size=500)
    TrialStageChange.objects.bulk_create(stage_changes)
    return changed


def trials_process(*, customer_ids: set[int], now: datetime) -> set[int]:
    """Sync and refresh the current trials of these customers; the customers whose trial data changed."""
    if not customer_ids:
        return set()
    created = trials_sync(customer_ids=customer_ids, now=now)
    refreshed = trials_refresh(trials=Trial.objects.filter(customer_id__in=customer_ids, is_current=True), now=now)
    return created | refreshed


def trial_traits_refresh(customer_ids: set[int], now: datetime) -> dict[int, set[str]]:
    """The trials of these customers started, restarted, moved their end or changed stage: recompute the computed
    traits that read the trial (days remaining, counts since the trial started), tell the destinations, and
    return the changed keys per customer for the live audiences reading them."""
    changes = computed_traits_trial_changed(customer_ids=sorted(customer_ids), now=now)
    trait_changes_publish(changes, now)
    changed: dict[int, set[str]] = {}
    for change in changes:
        changed.setdefault(change.customer_id, set()).add(change.trait_key)
    return changed


def trials_sweep(*, now: datetime | None = None, limit: int = SWEEP_LIMIT) -> dict[str, int]:
    """What time alone changes: trials for trialing subscriptions no batch has told about yet, and the due
    trials (habit window closed, trial ended, win-back window over, behaviour decayed). Only due rows are read,
    at most `limit` of each per run; live audiences are re-evaluated for the customers whose trial changed."""
    now = now or timezone.now()
    with transaction.atomic():
        untracked = set(
            Subscription.objects.filter(status=Subscription.Status.TRIALING, trial__isnull=True)
            .order_by()
            .values_list("customer_id", flat=True)[:limit]
        )
        due = list(
            Trial.objects.filter(next_check_at__lte=now)
            .order_by("next_check_at")
            .values_list("pk", "customer_id")[:limit]
        )
        customer_ids = sorted(untracked | {customer_id for _, customer_id in due})
        if not customer_ids:
            return {"customers": 0, "changed": 0}
        list(
            Customer.objects.select_for_update(no_key=True).filter(pk__in=customer_ids).order_by("pk").values_list("pk")
        )
        changed = trials_sync(customer_ids=untracked, now=now)
        changed |= trials_refresh(trials=Trial.objects.filter(pk__in=[pk for pk, _ in due]), now=now)
        changed |= trials_refresh(
            trials=Trial.objects.filter(customer_id__in=untracked, is_current=True).exclude(
                pk__in=[pk for pk, _ in due]
            ),
            now=now,
        )
        if changed:
            traits = trial_traits_refresh(changed, now)
            audiences_refresh(facts=BatchFacts(profile_changed=changed, changed_traits=traits), now=now)
    return {"customers": len(customer_ids), "changed": len(changed)}


def days_left(trial: Trial, now: datetime) -> int:
    """Whole days until the trial ends, as `trial.days_left` compares it (negative once it has ended)."""
    return math.floor((trial.ends_at - now).total_seconds() / 86400)


def trials_mark_due(*, now: datetime | None = None) -> int:
    """After the definition or scoring changed: every trial not yet converted or lost is due (one UPDATE); the
    sweep re-derives them in chunks."""
    now = now or timezone.now()
    return Trial.objects.exclude(stage__in=[TrialStage.CONVERT, TrialStage.LOST]).update(next_check_at=now)


def trials_backfill(*, now: datetime | None = None, chunk: int = 500) -> int:
    """Create and refresh trials from history (trial subscriptions, signup events) for data that arrived
    without the batch hook (the demo set, a bulk import): chunk by chunk of customer ids, each chunk set-based
    and in its own transaction. Returns how many customers were processed."""
    now = now or timezone.now()
    definition = activation_definition()
    signed_up = (
        Q(Exists(Event.objects.filter(customer=OuterRef("pk"), name=definition.signup_event)))
        if definition.signup_event
        else Q(pk__in=[])
    )
    candidates = Customer.objects.filter(
        Q(Exists(Subscription.objects.filter(customer=OuterRef("pk"), trial_start__isnull=False))) | signed_up
    )
    done, after = 0, 0
    while True:
        ids = list(candidates.filter(pk__gt=after).order_by("pk").values_list("pk", flat=True)[:chunk])
        if not ids:
            return done
        with transaction.atomic():
            list(Customer.objects.select_for_update(no_key=True).filter(pk__in=ids).order_by("pk").values_list("pk"))
            changed = trials_process(customer_ids=set(ids), now=now)
            if changed:
                traits = trial_traits_refresh(changed, now)
                audiences_refresh(facts=BatchFacts(profile_changed=changed, changed_traits=traits), now=now)
        done, after = done + len(ids), ids[-1]
