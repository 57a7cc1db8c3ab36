"""What the trial loop adds to the condition language: the properties of a customer's current trial (`trial.*`,
`score.*`) and whether the customer's email is a free-mail address (`customer.free_mail`, from the score settings'
list as it is when the condition is evaluated), registered into the segment catalogue with their condition
builders, and the trial reader computed traits use ("since the trial started", "trial days remaining"). The
conditions layer sits below the trial loop and never imports it: TrialsConfig.ready() registers these
(register_trial_conditions)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from audiences.models import Customer
from segments.catalogue import PropertySpec, register_properties
from segments.compiler import ALWAYS, NEVER, POSITIVE_OF, compare, days_q, email_domain
from segments.traits.trial_reader import register_trial_reader
from segments.value_types import ValueType
from trials.loop.lifecycle import IN_TRIAL_STAGES
from trials.loop.models import Trial
from trials.loop.scores import free_mail_domains

TRIAL_STAGES = ("trigger", "activate", "habit", "signal", "convert", "recover", "lost")


def trial_q(spec: PropertySpec, operator: str, value: Any, now: datetime) -> Q:
    """A property of the customer's current trial (trial.*, score.*): EXISTS such a trial satisfying the positive
    form of the operator; negative operators are its negation, so a customer without a trial matches them."""
    positive = POSITIVE_OF.get(operator, operator)
    if spec.derived == "predicate":  # trial.opt_in
        opt_in = Q(model=Trial.Model.OPT_IN)
        held = {"is_true": opt_in, "is_false": ~opt_in, "is_set": ALWAYS}[positive]
    elif spec.derived == "days_until":
        held = days_q(spec.path, positive, value, now, since=False)
    else:
        held = compare(spec.path, spec.value_type, positive, value, now, scale=spec.scale)
    q = Q(Exists(Trial.objects.filter(held, customer=OuterRef("pk"), is_current=True)))
    return ~q if positive != operator else q


def trial_actual(spec: PropertySpec, customer: Customer, now: datetime) -> Any:
    """A property of the customer's current trial as the condition compares it (None without a trial)."""
    trial = Trial.objects.filter(customer=customer, is_current=True).first()
    if trial is None:
        return None
    if spec.derived == "days_until":
        return (trial.ends_at - now).days
    if spec.derived == "predicate":
        return trial.model == Trial.Model.OPT_IN
    value = getattr(trial, spec.path)
    return value.isoformat() if isinstance(value, datetime) else value


def _on_trial(key: str, label: str, group: str, value_type: ValueType, path: str, **extra: Any) -> PropertySpec:
    return PropertySpec(key, label, group, value_type, path, compile=trial_q, actual=trial_actual, **extra)


TRIAL_PROPERTIES: tuple[PropertySpec, ...] = (
    _on_trial("trial.stage", "Stage", "Trial", ValueType.STRING, "stage", choices=TRIAL_STAGES),
    _on_trial("trial.days_left", "Days left", "Trial", ValueType.NUMBER, "ends_at", derived="days_until"),
    _on_trial("trial.opt_in", "Opt-in (no card)", "Trial", ValueType.BOOLEAN, "", derived="predicate"),
    _on_trial("trial.use_case", "Use case", "Trial", ValueType.STRING, "use_case"),
    _on_trial("trial.source", "Source", "Trial", ValueType.STRING, "source"),
    _on_trial("trial.started", "Started", "Trial", ValueType.DATE, "started_at"),
    _on_trial("score.fit", "Fit score", "Score", ValueType.NUMBER, "fit_score"),
    _on_trial("score.behaviour", "Behaviour score", "Score", ValueType.NUMBER, "behaviour_score"),
    _on_trial("score.pql", "PQL score", "Score", ValueType.NUMBER, "pql_score"),
)


def free_mail_q(spec: PropertySpec, operator: str, value: Any, now: datetime) -> Q:
    """customer.free_mail: the email's domain is on the score settings' free-mail list (read now, so an edit of the
    list applies at the next evaluation); a customer without an email is not on it."""
    if operator in ("is_set", "is_not_set"):
        return ALWAYS if operator == "is_set" else NEVER
    domains = Customer.objects.filter(pk=OuterRef("pk")).annotate(domain=email_domain())
    held = Q(Exists(domains.filter(domain__in=sorted(free_mail_domains()))))
    return held if operator == "is_true" else ~held


def free_mail_actual(spec: PropertySpec, customer: Customer, now: datetime) -> Any:
    """Whether the customer's email domain is on the free-mail list, as the condition compares it."""
    return "@" in customer.email and customer.email.rpartition("@")[2].lower() in free_mail_domains()


FREE_MAIL = PropertySpec(
    "customer.free_mail",
    "Free-mail address (score settings' list)",
    "Customer",
    ValueType.BOOLEAN,
    "email",
    compile=free_mail_q,
    actual=free_mail_actual,
)


class CurrentTrialReader:
    """The trial facts computed traits read (segments.traits.trial_reader.TrialReader)."""

    def events_in_current_trial(self) -> Q:
        in_trial = Trial.objects.filter(
            customer_id=OuterRef("customer_id"), is_current=True, started_at__lte=OuterRef("timestamp")
        )
        return Q(Exists(in_trial))

    def current_trial_customers(self, customer_ids: Sequence[int]) -> QuerySet[Any]:
        return Trial.objects.filter(customer_id__in=customer_ids, is_current=True).values("customer_id")

    def running_trial_ends(self, customer_ids: Sequence[int] | None, now: datetime) -> QuerySet[Any]:
        trials = Trial.objects.filter(is_current=True, stage__in=IN_TRIAL_STAGES, ends_at__gt=now)
        if customer_ids is not None:
            trials = trials.filter(customer_id__in=customer_ids)
        return trials.values_list("customer_id", "ends_at")


def register_trial_conditions() -> None:
    """Register the trial loop's properties and trial reader with the conditions layer (TrialsConfig.ready())."""
    register_properties((*TRIAL_PROPERTIES, FREE_MAIL))
    register_trial_reader(CurrentTrialReader())
