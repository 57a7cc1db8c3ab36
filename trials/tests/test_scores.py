"""Fit and PQL scores: firmographic rules (free-mail and .edu low), weights, behaviour decay with inactivity."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audiences.models import Account, Customer
from segments.models import CustomProperty
from segments.selectors import explain
from trials.loop.defaults import FIT_RULES
from trials.loop.models import FitRule
from trials.loop.scores import ScoreInputs, customers_fit, score_settings, scores_compute

pytestmark = pytest.mark.django_db


def fit_of(customer: Customer) -> tuple[int, list[str]]:
    now = timezone.now()
    points, matched = customers_fit([customer.pk], now=now)[customer.pk]
    scores = scores_compute(
        ScoreInputs(activated=False, actions=0, last_active_at=now, fit_points=points, fit_rules=tuple(matched)),
        settings=score_settings(),
        now=now,
    )
    return scores.fit, [rule["rule"] for rule in scores.breakdown["fit"]["rules"]]


def test_a_mid_size_target_industry_decision_maker_fits_high() -> None:
    account = Account.objects.create(group_id="g1", name="Acme", traits={"employees": 200, "industry": "Fintech"})
    customer = Customer.objects.create(
        user_id="u1", email="cto@acme.example", account=account, traits={"role": "executive"}
    )
    assert fit_of(customer) == (100, ["11–1000 employees", "Target industry", "Decision maker"])


def test_free_mail_and_edu_addresses_score_low() -> None:
    free = Customer.objects.create(user_id="u2", email="someone@Gmail.com", traits={"role": "executive"})
    edu = Customer.objects.create(user_id="u3", email="prof@hollowbrook.edu", traits={"role": "academic"})
    company = Customer.objects.create(user_id="u4", email="me@small.example", traits={"role": "executive"})
    assert fit_of(free) == (0, ["Decision maker", "Free-mail address"])
    assert fit_of(edu) == (0, [".edu address"])
    assert fit_of(company)[0] == 35 and fit_of(company)[0] > fit_of(free)[0]


def test_pql_weighs_fit_and_behaviour_and_behaviour_halves_every_half_life() -> None:
    customer = Customer.objects.create(user_id="u5", email="a@b.example", traits={"role": "executive"})
    now = timezone.now()
    settings = score_settings()

    points, matched = customers_fit([customer.pk], now=now)[customer.pk]

    def scores(idle_days: float) -> tuple[int, int, int]:
        result = scores_compute(
            ScoreInputs(
                activated=True,
                actions=4,
                last_active_at=now - timedelta(days=idle_days),
                fit_points=points,
                fit_rules=tuple(matched),
            ),
            settings=settings,
            now=now,
        )
        return result.fit, result.behaviour, result.pql

    assert scores(0) == (35, 80, 62)  # 0.4 × 35 + 0.6 × 80
    assert scores(7) == (35, 40, 38)  # one half-life idle: behaviour halves
    assert scores(14) == (35, 20, 26)
    settings.fit_weight, settings.behaviour_weight = 100, 0
    assert scores(14)[2] == 35


def test_rule_operators() -> None:
    FitRule.objects.all().delete()
    CustomProperty.objects.create(key="title", value_type="string")

    def leaf(prop: str, operator: str, value: object) -> dict[str, object]:
        return {"type": "condition", "property": prop, "operator": operator, "value": value}

    FitRule.objects.create(condition=leaf("trait.title", "contains", "head"), points=30)
    FitRule.objects.create(condition=leaf("trait.industry", "equals", "SaaS"), points=20)
    FitRule.objects.create(condition=leaf("trait.employees", "between", [10, 50]), points=5)
    customer = Customer.objects.create(
        user_id="u6", email="x@y.example", traits={"title": "Head of Data", "industry": "SaaS", "employees": "n/a"}
    )
    assert fit_of(customer)[0] == 60


def test_the_seeded_rules_converted_by_the_migration_are_the_default_trees() -> None:
    """trials.0005 seeds the old mini-language rules and trials.0017 converts them: the result is FIT_RULES."""
    seeded = list(FitRule.objects.order_by("pk").values("condition", "points", "label"))
    assert seeded == list(FIT_RULES)


def test_fit_is_one_query_for_the_whole_set_after_compiling_the_rules() -> None:
    """Set-based: the rules compile once (their catalogue look-ups), then one query scores any number of customers."""

    def queries(count: int) -> int:
        ids = [
            Customer.objects.create(user_id=f"q{count}-{n}", email=f"q{n}@gmail.com", traits={"role": "data"}).pk
            for n in range(count)
        ]
        with CaptureQueriesContext(connection) as captured:
            fits = customers_fit(ids, now=timezone.now())
        assert {points for points, _ in fits.values()} == {25 - 40}
        return len(captured.captured_queries)

    assert queries(1) == queries(8)


def test_free_mail_reads_the_settings_list_when_evaluated_and_explain_agrees() -> None:
    customer = Customer.objects.create(user_id="fm", email="me@Corp-Mail.example")
    tree = {"type": "condition", "property": "customer.free_mail", "operator": "is_true"}
    assert explain(tree, customer)["matches"] is False
    settings = score_settings()
    settings.free_mail_domains += " corp-mail.example"
    settings.save()
    explained = explain(tree, customer)
    assert explained["matches"] is True and explained["leaves"][0]["actual"] is True
