"""MRR normalisation: the accepted rules, one behaviour per test."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from audiences.models import Customer
from integrations.stripe.models import AddOn, Plan, Product, Subscription, SubscriptionAddOn
from integrations.stripe.mrr import monthly_amount, subscription_mrr_cents, subscription_refresh_mrr


@pytest.fixture
def product(db: object) -> Product:
    return Product.objects.create(name="Suite")


def make_subscription(
    product: Product, *, amount: int = 10000, interval: str = "month", count: int = 1, **fields: object
) -> Subscription:
    plan = Plan.objects.create(
        product=product,
        name=f"{amount}/{count}{interval}",
        amount_cents=amount,
        interval=interval,
        interval_count=count,
    )
    defaults: dict[str, object] = {"status": Subscription.Status.ACTIVE, "started_at": timezone.now(), "quantity": 1}
    defaults.update(fields)
    return Subscription.objects.create(customer=Customer.objects.create(), plan=plan, **defaults)


@pytest.mark.django_db
class TestNormalisation:
    @pytest.mark.parametrize(
        ("interval", "count", "expected"),
        [
            ("month", 1, 12000),
            ("year", 1, 1000),
            ("month", 3, 4000),
            ("week", 1, 52000),
            ("day", 1, 365000),
            ("year", 2, 500),
        ],
    )
    def test_interval_is_normalised_to_a_month(
        self, product: Product, interval: str, count: int, expected: int
    ) -> None:
        subscription = make_subscription(product, amount=12000, interval=interval, count=count)
        assert subscription_mrr_cents(subscription) == expected

    def test_quantity_multiplies(self, product: Product) -> None:
        assert subscription_mrr_cents(make_subscription(product, amount=2500, quantity=4)) == 10000

    @pytest.mark.parametrize("status", ["trialing", "canceled", "incomplete", "incomplete_expired", "unpaid", "paused"])
    def test_only_active_and_past_due_count(self, product: Product, status: str) -> None:
        assert subscription_mrr_cents(make_subscription(product, status=status)) == 0

    def test_past_due_still_counts(self, product: Product) -> None:
        assert subscription_mrr_cents(make_subscription(product, status="past_due")) == 10000

    def test_free_plan_is_zero(self, product: Product) -> None:
        assert subscription_mrr_cents(make_subscription(product, amount=0)) == 0

    def test_metered_plan_is_excluded(self, product: Product) -> None:
        subscription = make_subscription(product)
        subscription.plan.usage_type = Plan.UsageType.METERED
        assert subscription_mrr_cents(subscription) == 0

    def test_add_ons_are_added_per_their_own_interval(self, product: Product) -> None:
        subscription = make_subscription(product)
        seats = AddOn.objects.create(name="Extra seat", amount_cents=1200, interval="year")
        SubscriptionAddOn.objects.create(subscription=subscription, add_on=seats, quantity=5)
        assert subscription_mrr_cents(subscription) == 10000 + 500

    def test_forever_percent_discount_reduces(self, product: Product) -> None:
        subscription = make_subscription(
            product, discount_percent=Decimal("25"), discount_duration="forever", coupon_id="c"
        )
        assert subscription_mrr_cents(subscription) == 7500

    def test_forever_fixed_discount_applies_per_invoice(self, product: Product) -> None:
        subscription = make_subscription(
            product, amount=120000, interval="year", discount_amount_cents=12000, discount_duration="forever"
        )
        assert subscription_mrr_cents(subscription) == 10000 - 1000

    @pytest.mark.parametrize("duration", ["once", "repeating"])
    def test_temporary_discounts_do_not_reduce(self, product: Product, duration: str) -> None:
        subscription = make_subscription(product, discount_percent=Decimal("50"), discount_duration=duration)
        assert subscription_mrr_cents(subscription) == 10000

    def test_full_discount_is_zero(self, product: Product) -> None:
        subscription = make_subscription(product, discount_percent=Decimal("100"), discount_duration="forever")
        assert subscription_mrr_cents(subscription) == 0

    def test_refresh_stores_subscription_and_customer_totals(self, product: Product) -> None:
        subscription = make_subscription(product, amount=3000)
        second = Subscription.objects.create(
            customer=subscription.customer, plan=subscription.plan, status="active", started_at=timezone.now()
        )
        subscription_refresh_mrr(subscription=subscription)
        subscription_refresh_mrr(subscription=second)
        subscription.customer.refresh_from_db()
        assert subscription.customer.mrr_cents == 6000

    def test_monthly_amount_keeps_fractions_until_rounding(self) -> None:
        assert (
            monthly_amount(amount_cents=1000, interval="week", interval_count=1, quantity=1) == Decimal(1000) * 52 / 12
        )


@pytest.mark.django_db
class TestCatalogueConstraints:
    def test_plan_amount_cannot_be_negative(self, product: Product) -> None:
        with pytest.raises(IntegrityError), transaction.atomic():
            Plan.objects.create(product=product, name="x", amount_cents=-1)

    def test_interval_count_at_least_one(self, product: Product) -> None:
        with pytest.raises(IntegrityError), transaction.atomic():
            Plan.objects.create(product=product, name="x", interval_count=0)

    def test_trial_cannot_end_before_it_starts(self, product: Product) -> None:
        now = timezone.now()
        with pytest.raises(IntegrityError), transaction.atomic():
            make_subscription(product, trial_start=now, trial_end=now - timedelta(days=1))

    def test_discount_percent_within_0_to_100(self, product: Product) -> None:
        with pytest.raises(IntegrityError), transaction.atomic():
            make_subscription(product, discount_percent=Decimal("120"))

    def test_stripe_subscription_id_is_unique(self, product: Product) -> None:
        make_subscription(product, stripe_subscription_id="sub_1")
        with pytest.raises(IntegrityError), transaction.atomic():
            make_subscription(product, stripe_subscription_id="sub_1")


# amount, interval, count, quantity, status, usage, percent_off, amount_off, duration, expected MRR (cents)
MRR_TABLE = [
    (4900, "month", 1, 1, "active", "licensed", None, None, "", 4900),
    (4900, "month", 1, 3, "active", "licensed", None, None, "", 14700),
    (4900, "month", 3, 1, "active", "licensed", None, None, "", 1633),
    (58800, "year", 1, 1, "active", "licensed", None, None, "", 4900),
    (58800, "year", 1, 2, "past_due", "licensed", None, None, "", 9800),
    (117600, "year", 2, 1, "active", "licensed", None, None, "", 4900),
    (1000, "week", 1, 1, "active", "licensed", None, None, "", 4333),
    (1000, "week", 2, 1, "active", "licensed", None, None, "", 2167),
    (100, "day", 1, 1, "active", "licensed", None, None, "", 3042),
    (100, "day", 7, 1, "active", "licensed", None, None, "", 435),
    (4900, "month", 1, 1, "trialing", "licensed", None, None, "", 0),
    (4900, "month", 1, 1, "canceled", "licensed", None, None, "", 0),
    (4900, "month", 1, 1, "unpaid", "licensed", None, None, "", 0),
    (4900, "month", 1, 1, "active", "metered", None, None, "", 0),
    (0, "month", 1, 5, "active", "licensed", None, None, "", 0),
    (4900, "month", 1, 1, "active", "licensed", "20", None, "forever", 3920),
    (4900, "month", 1, 1, "active", "licensed", "20", None, "once", 4900),
    (4900, "month", 1, 1, "active", "licensed", "20", None, "repeating", 4900),
    (4900, "month", 1, 1, "active", "licensed", "100", None, "forever", 0),
    (4900, "month", 1, 2, "active", "licensed", None, 1000, "forever", 8800),
    (58800, "year", 1, 1, "active", "licensed", None, 12000, "forever", 3900),
    (4900, "month", 1, 1, "active", "licensed", None, 10000, "forever", 0),
    (4900, "month", 1, 1, "active", "licensed", None, 1000, "once", 4900),
]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("amount", "interval", "count", "quantity", "status", "usage", "percent", "amount_off", "duration", "expected"),
    MRR_TABLE,
)
def test_mrr_table(
    product: Product,
    amount: int,
    interval: str,
    count: int,
    quantity: int,
    status: str,
    usage: str,
    percent: str | None,
    amount_off: int | None,
    duration: str,
    expected: int,
) -> None:
    subscription = make_subscription(
        product,
        amount=amount,
        interval=interval,
        count=count,
        quantity=quantity,
        status=status,
        discount_percent=Decimal(percent) if percent else None,
        discount_amount_cents=amount_off,
        discount_duration=duration,
    )
    subscription.plan.usage_type = usage
    assert subscription_mrr_cents(subscription) == expected
