"""Migrations integrations.0012, offers.0006 and trials.0016 on a populated database: the Stripe mirror moves from
the trials app to integrations with its tables, so every mirrored row is found by the new models, the foreign keys
of the apps above still reach their subscription, a group granted "view subscription" under trials keeps the grant
under integrations, and the audit log's billing entries carry the new label. Going back undoes the labels."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType

from config.models import AuditEntry
from config.tests.migrating import migrate_to
from integrations.stripe.event_models import StripeEvent
from integrations.stripe.models import (
    AddOn,
    BillingSettings,
    Charge,
    Coupon,
    CurrencyRate,
    Discount,
    Invoice,
    Plan,
    Product,
    StripeCustomer,
    Subscription,
    SubscriptionAddOn,
)
from offers.models import WinBackEmail
from trials.models import Trial

BEFORE = [
    ("trials", "0015_message_send_at_local_time"),
    ("offers", "0005_session_mrr_in_workspace_currency"),
    ("integrations", "0011_standard_webhooks_secrets"),
]
AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def latest_schema_after() -> Iterator[None]:
    """Migrations run back to an older state here; the tests after this one need every table of the latest."""
    yield
    migrate_to()
    ContentType.objects.clear_cache()


@pytest.mark.django_db(transaction=True)
def test_the_mirror_moves_to_integrations_with_its_rows_grants_and_audit_labels() -> None:
    old = migrate_to(BEFORE)
    model = old.get_model
    # Content types, permissions, groups and the audit log are not moved back (their apps' migrations stay).
    ContentType.objects.clear_cache()
    # A content type some run of the new code already made: the old one is then left alone, not merged.
    ContentType.objects.get_or_create(app_label="trials", model="coupon")
    ContentType.objects.get_or_create(app_label="integrations", model="coupon")
    subscription_type, _ = ContentType.objects.get_or_create(app_label="trials", model="subscription")
    view_subscription, _ = Permission.objects.get_or_create(
        content_type=subscription_type, codename="view_subscription", defaults={"name": "Can view subscription"}
    )
    group = Group.objects.create(name="Billing readers")
    group.permissions.add(view_subscription)
    User.objects.create(username="reader").groups.add(group)

    customer = model("audiences", "Customer").objects.create(user_id="u1", email="u1@example.com")
    product = model("trials", "Product").objects.create(name="Pro", stripe_product_id="prod_1")
    plan = model("trials", "Plan").objects.create(product=product, name="Monthly", stripe_price_id="price_1")
    add_on = model("trials", "AddOn").objects.create(product=product, name="Seats", stripe_price_id="price_2")
    subscription = model("trials", "Subscription").objects.create(
        customer=customer, plan=plan, status="active", started_at=AT, stripe_subscription_id="sub_1", mrr_cents=900
    )
    model("trials", "SubscriptionAddOn").objects.create(subscription=subscription, add_on=add_on, quantity=3)
    model("trials", "StripeCustomer").objects.create(stripe_customer_id="cus_1", customer=customer)
    model("trials", "Coupon").objects.create(stripe_coupon_id="co_1", percent_off=Decimal(10))
    model("trials", "Discount").objects.create(stripe_discount_id="di_1", coupon_id="co_1")
    model("trials", "Charge").objects.create(
        stripe_charge_id="ch_1", customer=customer, amount_cents=900, currency="usd", status="succeeded", charged_at=AT
    )
    model("trials", "Invoice").objects.create(
        stripe_invoice_id="in_1",
        customer=customer,
        subscription=subscription,
        status="paid",
        currency="usd",
        created_at_stripe=AT,
    )
    model("trials", "BillingSettings").objects.create(pk=1, currency="eur")
    model("trials", "CurrencyRate").objects.create(currency="usd", rate=Decimal("0.9"))
    model("integrations", "StripeEvent").objects.create(
        event_id="evt_1", type="charge.succeeded", created=AT, payload={}
    )
    model("trials", "Trial").objects.create(
        customer=customer, subscription=subscription, started_at=AT, ends_at=AT, stage_changed_at=AT
    )
    model("offers", "WinBackEmail").objects.create(
        subscription=subscription, customer=customer, status="sent", created_at=AT
    )
    AuditEntry.objects.create(
        at=AT, via="system", model="trials.CurrencyRate", object_id="1", object_repr="1 USD = 0.9", action="created"
    )

    migrate_to()
    ContentType.objects.clear_cache()

    moved = Subscription.objects.get(stripe_subscription_id="sub_1")
    assert (moved.plan.name, moved.plan.product.name, moved.customer.user_id) == ("Monthly", "Pro", "u1")
    assert SubscriptionAddOn.objects.get(subscription=moved).add_on == AddOn.objects.get(stripe_price_id="price_2")
    assert list(moved.add_ons.values_list("name", flat=True)) == ["Seats"]
    assert Invoice.objects.get(stripe_invoice_id="in_1").subscription == moved
    assert Trial.objects.get(customer__user_id="u1").subscription == moved
    assert WinBackEmail.objects.get(customer__user_id="u1").subscription == moved
    assert StripeCustomer.objects.get(stripe_customer_id="cus_1").customer == moved.customer
    assert Charge.objects.filter(stripe_charge_id="ch_1").exists() and Plan.objects.filter(pk=plan.pk).exists()
    assert Coupon.objects.get(stripe_coupon_id="co_1").percent_off == 10
    assert Discount.objects.get(stripe_discount_id="di_1").coupon_id == "co_1"
    assert Product.objects.get(pk=product.pk).name == "Pro"
    assert BillingSettings.objects.get(pk=1).currency == "eur"
    assert CurrencyRate.objects.get(currency="usd").rate == Decimal("0.9")
    assert StripeEvent.objects.filter(event_id="evt_1").exists()

    assert ContentType.objects.get_for_model(Subscription).pk == subscription_type.pk
    assert "integrations.view_subscription" in User.objects.get(username="reader").get_all_permissions()
    assert Group.objects.get(name="Billing readers").permissions.get().content_type.app_label == "integrations"
    assert ContentType.objects.filter(app_label="trials", model="coupon").exists()
    assert ContentType.objects.filter(app_label="integrations", model="coupon").exists()
    assert set(AuditEntry.objects.values_list("model", flat=True)) >= {"integrations.CurrencyRate"}
    assert not AuditEntry.objects.filter(model__in=["trials.CurrencyRate", "trials.BillingSettings"]).exists()

    back = migrate_to(BEFORE)
    assert back.get_model("trials", "Subscription").objects.get(pk=moved.pk).customer_id == moved.customer_id
    assert ContentType.objects.filter(pk=subscription_type.pk, app_label="trials").exists()
    assert AuditEntry.objects.filter(model="trials.CurrencyRate").exists()
