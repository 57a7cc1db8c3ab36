"""Every operator through the one compiler, including missing values, checked against a small known world."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from audiences.models import Account, Customer, Event
from audiences.services import source_create
from integrations.stripe.models import Plan, Product, Subscription
from segments.compiler import compile_tree
from segments.conditions import parse_tree
from segments.models import CustomProperty
from segments.selectors import explain

NOW = timezone.now()


CUSTOM_PROPERTIES = {"tier": "string", "seats": "number", "beta": "boolean", "renewal": "date", "features": "list"}


def declare_custom_properties() -> None:
    """One custom property of every type, as the operator cases and the property test use them."""
    CustomProperty.objects.bulk_create([CustomProperty(key=k, value_type=v) for k, v in CUSTOM_PROPERTIES.items()])


@pytest.fixture
def world(db: Any) -> dict[str, Customer]:
    declare_custom_properties()
    product = Product.objects.create(name="Team", stripe_product_id="prod_team")
    monthly = Plan.objects.create(product=product, name="Team monthly", stripe_price_id="price_m", amount_cents=5000)
    yearly = Plan.objects.create(
        product=product, name="Team yearly", stripe_price_id="price_y", amount_cents=50000, interval="year"
    )
    acme = Account.objects.create(group_id="acme", name="Acme", domain="acme.test")
    ada = Customer.objects.create(
        name="Ada", email="ada@acme.test", user_id="usr_ada", mrr_cents=20000, account=acme, subscriber_status="active",
        first_seen_at=NOW - timedelta(days=10), last_seen_at=NOW - timedelta(hours=1),
        traits={"tier": "gold", "seats": 12, "beta": True, "renewal": (NOW + timedelta(days=5)).date().isoformat(),
                "features": ["sso", "api"]},
    )  # fmt: skip
    nobody = Customer.objects.create(name="", email="", traits={})
    bob = Customer.objects.create(
        name="Bob", email="bob@example.test", user_id="usr_bob", mrr_cents=5000, subscriber_status="canceled",
        first_seen_at=NOW - timedelta(days=90), last_seen_at=NOW - timedelta(days=40), is_test=True,
        traits={"tier": "silver", "seats": 3, "beta": False, "renewal": "2026-01-15", "features": ["api"]},
    )  # fmt: skip
    Subscription.objects.create(
        customer=ada, plan=monthly, status="active", quantity=3, started_at=NOW - timedelta(days=10),
        current_period_end=NOW + timedelta(days=20), coupon_id="QUARTER", discount_percent=25, mrr_cents=15000,
    )  # fmt: skip
    Subscription.objects.create(
        customer=bob, plan=yearly, status="canceled", started_at=NOW - timedelta(days=400), cancel_at_period_end=True
    )
    source, _ = source_create(name="Web")
    events = [
        (ada, "Project Created", 1),
        (ada, "Project Created", 2),
        (ada, "Project Created", 20),
        (bob, "Project Created", 3),
    ]
    for index, (customer, name, days_ago) in enumerate(events):
        Event.objects.create(
            source=source, customer=customer, message_id=f"m{index}", type="track", name=name,
            properties={"template": "kanban" if index % 2 == 0 else "list"},
            timestamp=NOW - timedelta(days=days_ago), received_at=NOW,
        )  # fmt: skip
    return {"ada": ada, "nobody": nobody, "bob": bob}


def names(tree: Any) -> set[str]:
    matched = Customer.objects.filter(compile_tree(parse_tree(tree), NOW))
    return {customer.name or "nobody" for customer in matched}


def leaf(prop: str, operator: str, value: Any = None) -> dict[str, Any]:
    return {"type": "condition", "property": prop, "operator": operator, "value": value}


CASES = [
    # numbers, money in currency units
    (leaf("subscriber.mrr", "gt", 100), {"Ada"}),
    (leaf("subscriber.mrr", "lte", 50), {"nobody", "Bob"}),
    (leaf("subscriber.mrr", "between", [40, 60]), {"Bob"}),
    (leaf("subscriber.mrr", "equals", 200), {"Ada"}),
    (leaf("subscriber.mrr", "not_equals", 200), {"nobody", "Bob"}),
    # strings, with missing values
    (leaf("subscriber.status", "equals", "active"), {"Ada"}),
    (leaf("subscriber.status", "not_equals", "active"), {"nobody", "Bob"}),
    (leaf("subscriber.status", "one_of", ["active", "canceled"]), {"Ada", "Bob"}),
    (leaf("subscriber.status", "not_one_of", ["active"]), {"nobody", "Bob"}),
    (leaf("customer.email", "contains", "ACME"), {"Ada"}),
    (leaf("customer.email", "not_contains", "acme"), {"nobody", "Bob"}),
    (leaf("customer.email", "starts_with", "bob"), {"Bob"}),
    (leaf("customer.email", "ends_with", ".test"), {"Ada", "Bob"}),
    (leaf("customer.email", "matches_regex", "^[a-z]+@acme"), {"Ada"}),
    (leaf("customer.email", "is_set"), {"Ada", "Bob"}),
    (leaf("customer.email", "is_not_set"), {"nobody"}),
    (leaf("customer.email_domain", "equals", "acme.test"), {"Ada"}),
    (leaf("customer.email_domain", "one_of", ["example.test", "other.test"]), {"Bob"}),
    (leaf("customer.email_domain", "not_equals", "acme.test"), {"nobody", "Bob"}),
    (leaf("customer.email_domain", "ends_with", "PLE.TEST"), {"Bob"}),
    (leaf("customer.email_domain", "is_not_set"), {"nobody"}),
    (leaf("customer.user_id", "is_not_set"), {"nobody"}),
    (leaf("account.name", "equals", "Acme"), {"Ada"}),
    (leaf("account.name", "not_equals", "Acme"), {"nobody", "Bob"}),
    (leaf("customer.is_test", "is_true"), {"Bob"}),
    (leaf("customer.is_test", "is_false"), {"Ada", "nobody"}),
    # dates
    (leaf("customer.first_seen", "within_last_days", 30), {"Ada"}),
    (leaf("customer.first_seen", "more_than_days_ago", 30), {"Bob"}),
    (leaf("customer.first_seen", "before", (NOW - timedelta(days=30)).date().isoformat()), {"Bob"}),
    (leaf("customer.first_seen", "after", (NOW - timedelta(days=30)).date().isoformat()), {"Ada"}),
    (leaf("customer.first_seen", "on", (NOW - timedelta(days=10)).date().isoformat()), {"Ada"}),
    (leaf("customer.first_seen", "is_not_set"), {"nobody"}),
    # subscriptions: at least one subscription satisfies it; none for a customer without subscriptions
    (leaf("subscription.status", "equals", "active"), {"Ada"}),
    (leaf("subscription.status", "not_equals", "active"), {"Bob"}),
    (leaf("plan.interval", "equals", "year"), {"Bob"}),
    (leaf("subscription.quantity", "gte", 2), {"Ada"}),
    (leaf("subscription.mrr", "gt", 100), {"Ada"}),
    (leaf("subscription.coupon_id", "equals", "QUARTER"), {"Ada"}),
    (leaf("subscription.discount_percent", "equals", 25), {"Ada"}),
    (leaf("subscription.cancel_at_period_end", "is_true"), {"Bob"}),
    (leaf("subscription.next_billing_date", "within_next_days", 30), {"Ada"}),
    (leaf("product.name", "equals", "Team"), {"Ada", "Bob"}),
    (leaf("subscription.is_free_trial", "is_true"), set()),
    (leaf("subscription.will_renew", "is_true"), {"Ada"}),
    (leaf("subscription.will_renew", "is_false"), {"Bob"}),
    (leaf("subscription.is_past_due", "is_false"), {"Ada", "Bob"}),
    (leaf("subscription.duration_days", "gte", 5), {"Ada", "Bob"}),
    (leaf("subscription.duration_days", "lt", 30), {"Ada"}),
    (leaf("subscription.duration_days", "equals", 10), {"Ada"}),
    (leaf("subscription.duration_days", "between", [300, 500]), {"Bob"}),
    (leaf("plan.id", "one_of", ["price_m"]), {"Ada"}),
    # custom properties (traits), with a customer who has none of them
    (leaf("trait.tier", "equals", "gold"), {"Ada"}),
    (leaf("trait.tier", "not_equals", "gold"), {"nobody", "Bob"}),
    (leaf("trait.tier", "is_set"), {"Ada", "Bob"}),
    (leaf("trait.tier", "is_not_set"), {"nobody"}),
    (leaf("trait.tier", "one_of", ["gold", "silver"]), {"Ada", "Bob"}),
    (leaf("trait.seats", "gt", 5), {"Ada"}),
    (leaf("trait.seats", "between", [1, 5]), {"Bob"}),
    (leaf("trait.beta", "is_true"), {"Ada"}),
    (leaf("trait.beta", "is_false"), {"Bob"}),
    (leaf("trait.renewal", "within_next_days", 10), {"Ada"}),
    (leaf("trait.renewal", "before", "2026-02-01"), {"Bob"}),
    (leaf("trait.features", "contains", "sso"), {"Ada"}),
    (leaf("trait.features", "not_contains", "sso"), {"nobody", "Bob"}),
    # behaviour
    ({"type": "event", "event": "Project Created", "operator": "at_least", "count": 2}, {"Ada"}),
    ({"type": "event", "event": "Project Created", "operator": "at_least", "count": 2, "within_days": 7}, {"Ada"}),
    ({"type": "event", "event": "Project Created", "operator": "at_least", "count": 3, "within_days": 7}, set()),
    ({"type": "event", "event": "Project Created", "operator": "at_most", "count": 1}, {"nobody", "Bob"}),
    ({"type": "event", "event": "Project Created", "operator": "exactly", "count": 0}, {"nobody"}),
    ({"type": "event", "event": "Project Created", "operator": "not_performed", "within_days": 2}, {"nobody", "Bob"}),
    ({"type": "event", "event": "Project Created", "operator": "first_before", "date": (NOW - timedelta(days=10)).date().isoformat()}, {"Ada"}),
    ({"type": "event", "event": "Project Created", "operator": "first_after", "date": (NOW - timedelta(days=10)).date().isoformat()}, {"Bob"}),
    ({"type": "event", "event": "Project Created", "operator": "last_before", "date": (NOW - timedelta(days=2)).date().isoformat()}, {"Bob"}),
    ({"type": "event", "event": "Project Created", "operator": "last_after", "date": (NOW - timedelta(days=2)).date().isoformat()}, {"Ada"}),
    ({"type": "event", "event": "Project Created", "operator": "at_least", "count": 1,
      "where": [{"property": "template", "operator": "equals", "value": "list"}]}, {"Ada", "Bob"}),
    ({"type": "event", "event": "Project Created", "operator": "at_least", "count": 2,
      "where": [{"property": "template", "operator": "equals", "value": "kanban"}]}, {"Ada"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("tree", "expected"),
    CASES,
    ids=[f"{i}-{c[0].get('property', c[0].get('event'))}-{c[0]['operator']}" for i, c in enumerate(CASES)],
)
def test_operator(world: dict[str, Customer], tree: dict[str, Any], expected: set[str]) -> None:
    assert names(tree) == expected


def test_groups_combine_and_negate(world: dict[str, Customer]) -> None:
    either = {
        "type": "group",
        "operator": "or",
        "children": [leaf("trait.tier", "equals", "gold"), leaf("customer.is_test", "is_true")],
    }
    assert names(either) == {"Ada", "Bob"}
    both = {
        "type": "group",
        "operator": "and",
        "children": [leaf("trait.tier", "is_set"), leaf("subscriber.mrr", "lt", 100)],
    }
    assert names(both) == {"Bob"}
    assert names({**both, "negate": True}) == {"Ada", "nobody"}


def test_one_query_whatever_the_tree(world: dict[str, Customer], django_assert_num_queries: Any) -> None:
    tree = parse_tree(
        {"type": "group", "operator": "and", "children": [
            leaf("subscriber.mrr", "gt", 1), leaf("plan.interval", "equals", "month"), leaf("trait.tier", "is_set"),
            {"type": "event", "event": "Project Created", "operator": "at_least", "count": 1, "within_days": 30},
        ]}
    )  # fmt: skip
    with django_assert_num_queries(1):
        assert list(Customer.objects.filter(compile_tree(tree, NOW)).values_list("name", flat=True)) == ["Ada"]


def test_negating_a_trait_condition_keeps_customers_without_the_trait(world: dict[str, Customer]) -> None:
    # Found by the hypothesis test: NOT over an absent JSON key must not become SQL NULL.
    tiered = {
        "type": "group",
        "operator": "and",
        "negate": True,
        "children": [leaf("trait.tier", "one_of", ["gold", "silver"])],
    }
    assert names(tiered) == {"nobody"}


@pytest.mark.django_db
def test_account_custom_properties_read_the_account_traits() -> None:
    CustomProperty.objects.filter(key="employees").delete()  # the default fit rules' declarations (trials.0017)
    CustomProperty.objects.create(scope="account", key="employees", value_type="number")
    CustomProperty.objects.create(key="employees", value_type="string")  # the same key, as a customer trait
    big = Account.objects.create(group_id="g_big", traits={"employees": 250})
    small = Account.objects.create(group_id="g_small", traits={"employees": 8})
    ada = Customer.objects.create(user_id="ada", account=big, traits={"employees": "lots"})
    Customer.objects.create(user_id="bob", account=small)
    Customer.objects.create(user_id="cy")  # no account
    conditions = {"type": "group", "operator": "and", "children": [
        {"type": "condition", "property": "account.trait.employees", "operator": "gte", "value": 50},
    ]}  # fmt: skip
    tree = parse_tree(conditions)
    assert set(Customer.objects.filter(compile_tree(tree)).values_list("user_id", flat=True)) == {"ada"}
    negated = {**conditions, "negate": True}
    assert set(Customer.objects.filter(compile_tree(parse_tree(negated))).values_list("user_id", flat=True)) == {
        "bob",
        "cy",
    }
    leaf = explain(conditions, ada)["leaves"][0]
    assert (leaf["actual"], leaf["held"]) == (250, True)
