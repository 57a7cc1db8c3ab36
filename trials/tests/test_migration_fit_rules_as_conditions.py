"""Migration trials.0017 on a populated database: every fit rule of the old mini-language (one of each operator,
traits read from the customer, else the account) becomes a condition tree that matches the same customers, a rule
that cannot be said keeps its row matching nobody, and going back gives rules that match the same customers again."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from audiences.models import Account, Customer
from config.tests.migrating import migrate_to
from trials.loop.models import FitRule
from trials.loop.scores import customers_fit

BEFORE = [("trials", "0016_stripe_mirror_to_integrations"), ("segments", "0007_membership_published")]
AFTER = [("trials", "0017_fit_rules_as_conditions")]
FREE_MAIL = frozenset(["gmail.com", "yahoo.com", "hotmail.com"])


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def old_matches(rule: Any, customer: Customer) -> bool:
    """trials.loop.scores.rule_matches and _attribute as they were before 0017."""
    if rule.attribute == "email_domain":
        value = customer.email.rpartition("@")[2].lower() if "@" in customer.email else None
    elif rule.attribute in (customer.traits or {}):
        value = customer.traits[rule.attribute]
    else:
        value = (customer.account.traits or {}).get(rule.attribute) if customer.account else None
    if value is None or value == "":
        return False
    text, wanted = str(value).strip().lower(), str(rule.value).strip().lower()
    if rule.operator == "equals":
        return text == wanted
    if rule.operator == "one_of":
        return text in {item.strip() for item in wanted.split(",")}
    if rule.operator == "contains":
        return wanted in text
    if rule.operator == "ends_with":
        return text.endswith(wanted)
    if rule.operator == "free_mail":
        return text in FREE_MAIL
    number = _number(value)
    if number is None:
        return False
    if rule.operator == "gte":
        bound = _number(wanted)
        return bound is not None and number >= bound
    low, _, high = wanted.partition("-")
    low_n, high_n = _number(low), _number(high)
    return low_n is not None and high_n is not None and low_n <= number <= high_n


RULES = [
    ("industry", "equals", "SaaS", 11),
    ("role", "one_of", "executive, Product", 12),
    ("title", "contains", "head", 13),
    ("email_domain", "ends_with", ".edu", -14),
    ("email_domain", "equals", "acme.example", 15),
    ("employees", "between", "10-50", 16),
    ("seats", "gte", "5", 17),
    ("email_domain", "free_mail", "", -18),
]


def _customers() -> list[Customer]:
    saas = Account.objects.create(group_id="g-saas", traits={"industry": "SaaS", "employees": 20, "seats": 9})
    big = Account.objects.create(group_id="g-big", traits={"industry": "Media", "employees": 500})
    people: list[tuple[str, Account | None, dict[str, Any]]] = [
        ("a@ACME.example", saas, {}),  # everything from the account
        ("b@Gmail.com", saas, {"industry": "Media", "employees": 100, "seats": 3}),  # own traits win
        ("c@school.edu", big, {"industry": "saas", "role": "product", "title": "Head of Data"}),
        ("d@x.example", None, {"industry": "Fintech", "role": "Product", "employees": 50, "seats": 5}),
        ("e@x.example", big, {"role": "exec", "title": "Engineer", "employees": "n/a", "seats": 4.5}),
        ("no-email", None, {"role": "executive", "employees": 10}),
    ]
    return [
        Customer.objects.create(user_id=f"u{n}", email=email, account=account, traits=traits)
        for n, (email, account, traits) in enumerate(people)
    ]


@pytest.mark.django_db(transaction=True)
def test_old_fit_rules_become_trees_matching_the_same_customers() -> None:
    old = migrate_to(BEFORE)
    OldRule = old.get_model("trials", "FitRule")
    old.get_model("trials", "ScoreSettings").objects.update_or_create(
        pk=1, defaults={"free_mail_domains": " ".join(sorted(FREE_MAIL))}
    )
    OldRule.objects.all().delete()
    rules = [
        OldRule.objects.create(attribute=a, operator=o, value=v, points=p, label=f"{a} {o}") for a, o, v, p in RULES
    ]
    unconvertible = OldRule.objects.create(attribute="bad-key", operator="equals", value="x", points=99, label="Bad")
    customers = _customers()
    before = {rule.points: {c.pk for c in customers if old_matches(rule, c)} for rule in rules}
    assert all(before.values()) and all(set(before[p]) != {c.pk for c in customers} for p in before)

    started = timezone.now()
    new = migrate_to(AFTER)
    assert FitRule.objects.get(pk=unconvertible.pk).label.startswith("Bad (not converted:")
    recorded = new.get_model("project", "AuditEntry").objects.filter(
        via="system", actor_name="trials.0017_fit_rules_as_conditions", at__gte=started
    )
    assert set(recorded.filter(model="trials.FitRule").values_list("object_id", flat=True)) == {
        str(rule.pk) for rule in [*rules, unconvertible]
    }
    assert recorded.get(model="trials.FitRule", object_id=str(rules[0].pk)).changes["attribute"] == ["industry", None]
    declared = set(recorded.filter(model="segments.CustomProperty").values_list("object_repr", flat=True))
    assert {"customer title", "account seats"} <= declared
    fits = customers_fit([c.pk for c in customers], now=timezone.now(), rules=FitRule.objects.all())
    after = {p: {pk for pk, (_, matched) in fits.items() if p in {r.points for r in matched}} for p in before}
    assert after == before
    assert all(points == sum(p for p, holders in before.items() if pk in holders) for pk, (points, _) in fits.items())

    # Going back gives mini-language rules matching the same customers again.
    back = migrate_to(BEFORE).get_model("trials", "FitRule")
    again = {rule.points: {c.pk for c in customers if old_matches(rule, c)} for rule in back.objects.all()}
    assert again == {**before, 99: set()}
    migrate_to()
