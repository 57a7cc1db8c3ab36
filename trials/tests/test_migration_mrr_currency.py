"""Migration trials.0012 on a populated database: the MRR stored before (each subscription in its own currency's
smallest unit, customers summing them whatever the currency) becomes `mrr_amount` with its currency, and
`mrr_cents` becomes the workspace currency's (USD by default, no rates yet): a yen subscription and its customer
are left unconverted instead of being added as cents."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from config.tests.migrating import migrate_to

BEFORE = [("trials", "0011_throttle_window_bound"), ("audiences", "0010_trait_timestamps")]
AFTER = [("trials", "0012_stripe_mirror_money_discounts_accounts")]


@pytest.fixture(autouse=True)
def latest_schema_after() -> Iterator[None]:
    """Migrations run back to an older state here; the tests after this one need every table of the latest."""
    yield
    migrate_to()


@pytest.mark.django_db(transaction=True)
def test_the_migration_splits_mrr_by_currency_and_back() -> None:
    old = migrate_to(BEFORE)
    Customer, Product, Plan, Subscription = (
        old.get_model("audiences", "Customer"),
        old.get_model("trials", "Product"),
        old.get_model("trials", "Plan"),
        old.get_model("trials", "Subscription"),
    )
    product = Product.objects.create(name="Pro")
    usd = Plan.objects.create(product=product, name="USD", amount_cents=10000, currency="usd")
    jpy = Plan.objects.create(product=product, name="JPY", amount_cents=10000, currency="jpy")
    at = datetime(2026, 9, 1, tzinfo=UTC)
    american = Customer.objects.create(user_id="us", mrr_cents=15000)
    japanese = Customer.objects.create(user_id="jp", mrr_cents=10000)
    both = Customer.objects.create(user_id="both", mrr_cents=20000)
    Subscription.objects.create(customer=american, plan=usd, status="active", started_at=at, mrr_cents=10000)
    Subscription.objects.create(customer=american, plan=usd, status="active", started_at=at, mrr_cents=5000)
    Subscription.objects.create(customer=japanese, plan=jpy, status="active", started_at=at, mrr_cents=10000)
    Subscription.objects.create(customer=both, plan=usd, status="active", started_at=at, mrr_cents=10000)
    Subscription.objects.create(customer=both, plan=jpy, status="active", started_at=at, mrr_cents=10000)
    Subscription.objects.create(customer=both, plan=jpy, status="canceled", started_at=at, mrr_cents=0)

    new = migrate_to(AFTER)
    NewSubscription, NewCustomer = new.get_model("trials", "Subscription"), new.get_model("audiences", "Customer")
    rows = sorted(NewSubscription.objects.values_list("customer__user_id", "currency", "mrr_amount", "mrr_cents"))
    assert rows == [
        ("both", "jpy", 0, None),
        ("both", "jpy", 10000, None),
        ("both", "usd", 10000, 10000),
        ("jp", "jpy", 10000, None),
        ("us", "usd", 5000, 5000),
        ("us", "usd", 10000, 10000),
    ]
    assert dict(NewCustomer.objects.values_list("user_id", "mrr_cents")) == {"us": 15000, "jp": None, "both": None}

    old = migrate_to(BEFORE)
    restored = old.get_model("audiences", "Customer")
    assert dict(restored.objects.values_list("user_id", "mrr_cents")) == {"us": 15000, "jp": 10000, "both": 20000}
    migrate_to()
