"""Fit and PQL scores: firmographic fit from FitRule rows, behaviour with decay, PQL as their weighted sum.

Pure functions over one customer's data (traits and email are already loaded with the trial), so
trials.loop.lifecycle can score a whole set of trials without a query per trial. The breakdown is stored with the trial
and shown on the customer page, so a rep sees why a score is what it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from audiences.models import Customer
from trials.loop.models import FitRule, ScoreSettings


def score_settings() -> ScoreSettings:
    """The one settings row (created with defaults when a database has none; the default fit rules are seeded
    by migration 0005)."""
    settings, _ = ScoreSettings.objects.get_or_create(pk=1)
    return settings


def _attribute(customer: Customer, name: str) -> Any:
    if name == "email_domain":
        return customer.email.rpartition("@")[2].lower() if "@" in customer.email else None
    traits = customer.traits or {}
    if name in traits:
        return traits[name]
    account = customer.account
    return (account.traits or {}).get(name) if account is not None else None


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def rule_matches(rule: FitRule, value: Any, free_mail: frozenset[str]) -> bool:
    """Whether one rule holds for an attribute value (a missing value matches no rule)."""
    if value is None or value == "":
        return False
    text = str(value).strip().lower()
    wanted = rule.value.strip().lower()
    if rule.operator == FitRule.Operator.EQUALS:
        return text == wanted
    if rule.operator == FitRule.Operator.ONE_OF:
        return text in {item.strip() for item in wanted.split(",")}
    if rule.operator == FitRule.Operator.CONTAINS:
        return wanted in text
    if rule.operator == FitRule.Operator.ENDS_WITH:
        return text.endswith(wanted)
    if rule.operator == FitRule.Operator.FREE_MAIL:
        return text in free_mail
    number = _number(value)
    if number is None:
        return False
    if rule.operator == FitRule.Operator.GTE:
        bound = _number(wanted)
        return bound is not None and number >= bound
    low, _, high = wanted.partition("-")
    low_n, high_n = _number(low), _number(high)
    return low_n is not None and high_n is not None and low_n <= number <= high_n  # between


def fit_tier(fit: int, settings: ScoreSettings) -> str:
    return "high" if fit >= settings.high_fit else "medium" if fit >= settings.medium_fit else "low"


@dataclass(frozen=True)
class ScoreInputs:
    """One trial's behaviour so far: activated or not, high-intent actions since the start, last activity."""

    customer: Customer
    activated: bool
    actions: int
    last_active_at: datetime


@dataclass(frozen=True)
class Scores:
    fit: int
    behaviour: int
    pql: int
    breakdown: dict[str, Any]


def _clamp(value: float) -> int:
    return max(0, min(100, round(value)))


def scores_compute(inputs: ScoreInputs, *, rules: Iterable[FitRule], settings: ScoreSettings, now: datetime) -> Scores:
    """Fit (base + matching rules, 0–100), behaviour (activation and actions, halved every half-life of
    inactivity, 0–100) and PQL (their weighted sum, 0–100), with the breakdown that explains them."""
    free_mail = frozenset(settings.free_mail_domains.lower().split())
    matched = []
    fit_raw = settings.base_fit
    for rule in rules:
        value = _attribute(inputs.customer, rule.attribute)
        if rule_matches(rule, value, free_mail):
            fit_raw += rule.points
            matched.append({"rule": str(rule), "attribute": rule.attribute, "value": value, "points": rule.points})
    fit = _clamp(fit_raw)
    raw = (settings.activation_points if inputs.activated else 0) + settings.action_points * inputs.actions
    raw = min(100, raw)
    idle_days = max(0.0, (now - inputs.last_active_at).total_seconds() / 86400)
    half_life = max(1, settings.decay_half_life_days)
    decay = 0.5 ** (idle_days / half_life)
    behaviour = _clamp(raw * decay)
    pql = _clamp((fit * settings.fit_weight + behaviour * settings.behaviour_weight) / 100)
    breakdown = {
        "fit": {"base": settings.base_fit, "rules": matched, "total": fit, "tier": fit_tier(fit, settings)},
        "behaviour": {
            "activated": inputs.activated,
            "activation_points": settings.activation_points if inputs.activated else 0,
            "actions": inputs.actions,
            "action_points": settings.action_points * inputs.actions,
            "raw": raw,
            "idle_days": round(idle_days, 1),
            "decay": round(decay, 3),
            "total": behaviour,
        },
        "pql": {"fit_weight": settings.fit_weight, "behaviour_weight": settings.behaviour_weight, "total": pql},
    }
    return Scores(fit=fit, behaviour=behaviour, pql=pql, breakdown=breakdown)
