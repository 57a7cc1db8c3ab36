"""Fit and PQL scores: firmographic fit from FitRule condition trees, behaviour with decay, PQL as their weighted
sum.

Fit rules are condition trees in the segment language, compiled by segments.compiler (one Q per rule) and
evaluated by the database for a whole set of trials or customers at once: one flag per rule (which rules matched)
in the query that already reads the trials (trials.loop.lifecycle) — never a query per customer; the points are
the sum of the matched rules'. The rest is pure arithmetic over one trial's numbers.
The breakdown is stored with the trial and shown on the customer page, so a rep sees why a score is what it is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import BooleanField, Case, Exists, OuterRef, Q, Value, When

from audiences.models import Customer
from segments.compiler import compile_tree
from segments.conditions import parse_tree
from trials.loop.models import FitRule, ScoreSettings

logger = logging.getLogger(__name__)


def score_settings() -> ScoreSettings:
    """The one settings row (created with defaults when a database has none; the default fit rules are seeded
    by migration 0005)."""
    settings, _ = ScoreSettings.objects.get_or_create(pk=1)
    return settings


def free_mail_domains() -> frozenset[str]:
    """The score settings' free-mail domains, lowercased (what `customer.free_mail` compares with)."""
    return frozenset(score_settings().free_mail_domains.lower().split())


@dataclass(frozen=True)
class CompiledRule:
    """A fit rule with its condition compiled to a filter on Customer."""

    rule: FitRule
    held: Q


def fit_rules_compiled(rules: Iterable[FitRule], now: datetime) -> list[CompiledRule]:
    """Each rule's condition parsed and compiled once for this evaluation; a rule whose tree no longer parses (a
    custom property it names was removed) is left out, with a warning, rather than failing every score."""
    compiled = []
    for rule in rules:
        try:
            compiled.append(CompiledRule(rule, compile_tree(parse_tree(rule.condition), now)))
        except ValueError as error:  # InvalidCondition
            logger.warning("fit rule %s left out: %s", rule.pk, error)
    return compiled


def fit_annotations(compiled: Sequence[CompiledRule], *, customer: str | None = None) -> dict[str, Any]:
    """Annotations for a queryset: `fit_rule_<i>`, whether rule i holds — each rule's condition evaluated once per
    row; the points follow from the flags (fit_matched). On Customer rows by default; with `customer`
    ("customer_id"), on rows pointing at a customer (trials), through an EXISTS on the customer."""

    def held(q: Q) -> Q:
        return Q(Exists(Customer.objects.filter(q, pk=OuterRef(customer)))) if customer else q

    return {
        f"fit_rule_{index}": Case(
            When(held(item.held), then=Value(True)), default=Value(False), output_field=BooleanField()
        )
        for index, item in enumerate(compiled)
    }


def fit_matched(row: Any, compiled: Sequence[CompiledRule]) -> tuple[int, list[FitRule]]:
    """The points and the matched rules of a row annotated with fit_annotations."""
    matched = [item.rule for index, item in enumerate(compiled) if getattr(row, f"fit_rule_{index}")]
    return sum(rule.points for rule in matched), matched


def customers_fit(
    customer_ids: Iterable[int], *, now: datetime, rules: Iterable[FitRule] | None = None
) -> dict[int, tuple[int, list[FitRule]]]:
    """Fit points and matched rules of these customers, in one query for the set."""
    compiled = fit_rules_compiled(FitRule.objects.all() if rules is None else rules, now)
    customers = Customer.objects.filter(pk__in=list(customer_ids)).annotate(**fit_annotations(compiled))
    return {customer.pk: fit_matched(customer, compiled) for customer in customers}


def condition_text(node: dict[str, Any]) -> str:
    """A stored condition tree in words, for the score breakdown ("trait.role one of [...] or ...")."""
    kind = node.get("type")
    if kind == "group":
        parts = [condition_text(child) for child in node.get("children", [])]
        text = f" {node.get('operator', 'and')} ".join(parts)
        text = f"({text})" if len(parts) > 1 else text
        return f"not {text}" if node.get("negate") else text
    if kind == "event":
        return f"performed {node.get('event')} {str(node.get('operator', '')).replace('_', ' ')} {node.get('count', 1)}"
    if kind == "segment":
        return f"segment {node.get('segment')} {str(node.get('operator', '')).replace('_', ' ')}"
    value = node.get("value")
    described = f"{node.get('property')} {str(node.get('operator', '')).replace('_', ' ')}"
    return described if value is None else f"{described} {value}"


def fit_tier(fit: int, settings: ScoreSettings) -> str:
    return "high" if fit >= settings.high_fit else "medium" if fit >= settings.medium_fit else "low"


@dataclass(frozen=True)
class ScoreInputs:
    """One trial's behaviour so far: activated or not, high-intent actions since the start, last activity."""

    activated: bool
    actions: int
    last_active_at: datetime
    fit_points: int = 0  # the points of the matching fit rules (fit_annotations)
    fit_rules: tuple[FitRule, ...] = ()  # the matching fit rules, for the breakdown


@dataclass(frozen=True)
class Scores:
    fit: int
    behaviour: int
    pql: int
    breakdown: dict[str, Any]


def _clamp(value: float) -> int:
    return max(0, min(100, round(value)))


def scores_compute(inputs: ScoreInputs, *, settings: ScoreSettings, now: datetime) -> Scores:
    """Fit (base + matching rules, 0–100), behaviour (activation and actions, halved every half-life of
    inactivity, 0–100) and PQL (their weighted sum, 0–100), with the breakdown that explains them."""
    matched = [
        {"rule": str(rule), "condition": condition_text(rule.condition), "points": rule.points}
        for rule in inputs.fit_rules
    ]
    fit_raw = settings.base_fit + inputs.fit_points
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
