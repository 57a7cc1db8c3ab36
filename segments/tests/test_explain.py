"""Explain agrees with evaluation: random trees over random customers (hypothesis), on both databases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiences.models import Customer, Event, Source
from audiences.services import source_create
from integrations.stripe.models import Plan, Product, Subscription
from segments.compiler import compile_tree
from segments.conditions import parse_tree
from segments.selectors import explain
from segments.tests.test_compiler import CASES, declare_custom_properties

NOW = timezone.now()
LEAVES = [case[0] for case in CASES]


def trees(depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    leaf = st.sampled_from(LEAVES)
    if depth >= 2:
        return leaf
    group = st.fixed_dictionaries(
        {
            "type": st.just("group"),
            "operator": st.sampled_from(["and", "or"]),
            "negate": st.booleans(),
            "children": st.lists(trees(depth + 1), min_size=1, max_size=3),
        }
    )
    return st.one_of(leaf, group)


customers = st.lists(
    st.fixed_dictionaries(
        {
            "mrr_cents": st.sampled_from([0, 5000, 20000]),
            "email": st.sampled_from(["", "ada@acme.test", "bob@example.test"]),
            "status": st.sampled_from(["", "active", "canceled"]),
            "is_test": st.booleans(),
            "seen_days_ago": st.sampled_from([None, 5, 45]),
            "traits": st.fixed_dictionaries(
                {},
                optional={
                    "tier": st.sampled_from(["gold", "silver"]),
                    "seats": st.sampled_from([3, 12]),
                    "beta": st.booleans(),
                    "renewal": st.sampled_from(["2026-01-15", (NOW + timedelta(days=5)).date().isoformat()]),
                    "features": st.sampled_from([["sso", "api"], ["api"], []]),
                },
            ),
            "subscription": st.sampled_from([None, ("active", "month", 3), ("canceled", "year", 1)]),
            "events": st.lists(st.tuples(st.sampled_from([1, 3, 20]), st.sampled_from(["kanban", "list"])), max_size=3),
        }
    ),
    min_size=1,
    max_size=5,
)


def combine(node: dict[str, Any], held: list[bool]) -> bool:
    """The tree's boolean value from its leaves' values, taken in explain's order."""
    if node["type"] != "group":
        return held.pop(0)
    values = [combine(child, held) for child in node["children"]]
    result = all(values) if node["operator"] == "and" else any(values)
    return not result if node.get("negate") else result


@pytest.fixture
def catalogue(db: Any) -> tuple[Source, dict[str, Plan]]:
    declare_custom_properties()
    product = Product.objects.create(name="Team", stripe_product_id="prod_team")
    plans = {
        "month": Plan.objects.create(product=product, name="m", stripe_price_id="price_m", amount_cents=5000),
        "year": Plan.objects.create(
            product=product, name="y", stripe_price_id="price_y", amount_cents=9, interval="year"
        ),
    }
    source, _ = source_create(name="Web")
    return source, plans


@pytest.mark.django_db
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees(), people=customers)
def test_sql_membership_equals_explain(
    catalogue: tuple[Source, dict[str, Plan]], tree: dict[str, Any], people: list[dict[str, Any]]
) -> None:
    source, plans = catalogue
    with transaction.atomic():
        created = []
        for index, person in enumerate(people):
            seen = NOW - timedelta(days=person["seen_days_ago"]) if person["seen_days_ago"] is not None else None
            customer = Customer.objects.create(
                email=person["email"], mrr_cents=person["mrr_cents"], subscriber_status=person["status"],
                is_test=person["is_test"], first_seen_at=seen, traits=person["traits"],
            )  # fmt: skip
            if person["subscription"]:
                status, interval, quantity = person["subscription"]
                Subscription.objects.create(
                    customer=customer, plan=plans[interval], status=status, quantity=quantity, started_at=NOW
                )
            for number, (days_ago, template) in enumerate(person["events"]):
                Event.objects.create(
                    source=source, customer=customer, message_id=f"{index}-{number}", type="track",
                    name="Project Created", properties={"template": template},
                    timestamp=NOW - timedelta(days=days_ago), received_at=NOW,
                )  # fmt: skip
            created.append(customer)
        members = set(Customer.objects.filter(compile_tree(parse_tree(tree), NOW)).values_list("pk", flat=True))
        for customer in created:
            result = explain(tree, customer, now=NOW)
            assert result["matches"] == (customer.pk in members)
            held = [leaf["held"] for leaf in result["leaves"]]
            wrapped = tree if tree["type"] == "group" else {"type": "group", "operator": "and", "children": [tree]}
            assert combine(wrapped, held) == result["matches"], (tree, result)
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_a_negated_group_over_a_missing_relation_agrees_with_its_leaves() -> None:
    # Found by hypothesis: for a customer without an account, "account.name = Acme" is NULL in SQL (a LEFT
    # JOIN), so NOT(… AND that) stayed NULL and dropped the customer, while the leaves say the group is false.
    lonely = Customer.objects.create(user_id="lonely")
    tree = {"type": "group", "operator": "and", "negate": True, "children": [
        {"type": "condition", "property": "account.name", "operator": "not_equals", "value": "Acme"},
        {"type": "condition", "property": "account.name", "operator": "equals", "value": "Acme"},
    ]}  # fmt: skip
    result = explain(tree, lonely)
    assert [leaf["held"] for leaf in result["leaves"]] == [True, False]
    assert result["matches"] is True
    assert Customer.objects.filter(compile_tree(parse_tree(tree))).filter(pk=lonely.pk).exists()
