"""The Stripe mirror from hand-written, signed webhook payloads: MRR of tiered, package, per-seat and metered prices;
paused collection; discounts valued from mirrored discounts and coupons without an API key, in any order; the
older API shape; events of the same second ordered from the payload; money in many currencies (zero-decimal
amounts, conversion through the admin's rates, never a sum of mixed currencies); accounts mapped by metadata
or email domain; the subscriber "Active coupon ID" segment property."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client, TestCase
from django.urls import reverse
from django.utils import timezone

from audiences.models import Account, Customer, Event
from config.models import AuditEntry
from config.money import convert_to_cents, minor_unit_exponent
from config.roles import Role
from conftest import TEST_PASSWORD
from integrations.stripe.apply import stripe_event_apply
from integrations.stripe.currency import billing_settings
from integrations.stripe.models import BillingSettings, CurrencyRate, Discount, StripeCustomer, Subscription
from integrations.tests import stripe_payloads as sp
from segments.compiler import compile_tree
from segments.conditions import parse_tree
from segments.models import Segment, SegmentMembership
from segments.selectors import explain
from segments.services import segment_save

pytestmark = pytest.mark.django_db

SECRET = "whsec_test_mirror"
T0 = 1_790_000_000


@pytest.fixture(autouse=True)
def webhook_secret(settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRETS = [SECRET]
    settings.STRIPE_API_KEY = ""
    sp.reset_ids()


def deliver(event: dict[str, Any]) -> None:
    """POST one signed event to the webhook endpoint (processing runs eagerly on commit)."""
    body, header = sp.signed(event, SECRET)
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = Client().post(
            "/webhooks/stripe/", data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
        )
    assert response.status_code == 200, response.content


def profile(user_id: str = "usr_ada", email: str = "ada@acme.test", stripe_id: str = "cus_ada") -> Customer:
    """A profile and its Stripe customer, linked by email through a signed customer.created."""
    person = Customer.objects.create(user_id=user_id, email=email)
    deliver(sp.event("customer.created", sp.customer(stripe_id, email=email), created=T0))
    person.refresh_from_db()
    assert person.stripe_customer_id == stripe_id
    return person


def tiered(price_id: str, mode: str, tiers: list[dict[str, Any]] | None) -> dict[str, Any]:
    price = sp.price(price_id, product="prod_seats", unit_amount=None)
    price.update(billing_scheme="tiered", tiers_mode=mode)
    if tiers is not None:
        price["tiers"] = tiers
    return price


TIERS: list[dict[str, Any]] = [
    {
        "up_to": 5,
        "unit_amount": 1000,
        "unit_amount_decimal": "1000",
        "flat_amount": 2000,
        "flat_amount_decimal": "2000",
    },
    {"up_to": None, "unit_amount": 500, "unit_amount_decimal": "500", "flat_amount": None, "flat_amount_decimal": None},
]


def subscribe(price: Mapping[str, Any], quantity: int = 1, **fields: Any) -> dict[str, Any]:
    subscription = sp.subscription("sub_1", customer="cus_ada", items=[(price, quantity)], created=T0, **fields)
    deliver(sp.event("customer.subscription.created", subscription, created=T0 + 60))
    return subscription


def stored() -> Subscription:
    return Subscription.objects.select_related("customer").get(stripe_subscription_id="sub_1")


class TestPricesAndQuantities:
    def test_graduated_tiers_price_each_tier_and_its_flat_fee(self) -> None:
        profile()
        subscribe(tiered("price_grad", "graduated", TIERS), quantity=8)
        # 5 × $10 + $20 flat for the first tier, 3 × $5 for the second.
        assert (stored().mrr_amount, stored().mrr_cents) == (8500, 8500)

    def test_volume_tiers_price_every_unit_at_the_reached_tier(self) -> None:
        profile()
        subscribe(tiered("price_vol", "volume", TIERS), quantity=8)
        assert stored().mrr_amount == 8 * 500

    def test_tiers_not_sent_are_valued_from_the_last_invoice(self) -> None:
        profile()
        price = tiered("price_grad", "graduated", None)  # a webhook's price carries no tiers unless expanded
        subscribe(price, quantity=8)
        assert stored().mrr_amount == 0
        invoice = sp.invoice(
            "in_1", customer="cus_ada", subscription_id="sub_1", amount_due=8500, price_obj=price, quantity=8
        )
        deliver(sp.event("invoice.paid", invoice, created=T0 + 120))
        assert stored().mrr_amount == 8500
        assert stored().customer.mrr_cents == 8500

    def test_a_metered_price_counts_the_usage_its_last_invoice_billed(self) -> None:
        profile()
        metered = sp.price("price_api", product="prod_api", unit_amount=2, usage_type="metered")
        subscribe(metered)
        older = sp.invoice("in_1", customer="cus_ada", subscription_id="sub_1", amount_due=3100, price_obj=metered)
        newer = sp.invoice("in_2", customer="cus_ada", subscription_id="sub_1", amount_due=4200, price_obj=metered)
        newer["created"] = older["created"] + 86_400 * 30
        deliver(sp.event("invoice.paid", newer, created=T0 + 180))
        deliver(sp.event("invoice.paid", older, created=T0 + 120))  # an older invoice arriving late
        assert stored().mrr_amount == 4200

    def test_prorations_are_not_a_run_rate(self) -> None:
        profile()
        metered = sp.price("price_api", product="prod_api", unit_amount=2, usage_type="metered")
        subscribe(metered)
        lines = [
            sp.invoice_line(4200, price_obj=metered, subscription="sub_1"),
            sp.invoice_line(-900, price_obj=metered, subscription="sub_1", proration=True),
        ]
        deliver(sp.event("invoice.paid", sp.invoice("in_1", customer="cus_ada", subscription_id="sub_1", lines=lines)))
        assert stored().mrr_amount == 4200

    def test_zero_seats_is_zero_not_one(self) -> None:
        profile()
        subscribe(sp.price("price_seat", product="prod_seats", unit_amount=1200), quantity=0)
        assert (stored().quantity, stored().mrr_amount) == (0, 0)

    def test_package_pricing_rounds_the_quantity_into_packages(self) -> None:
        profile()
        price = sp.price("price_pack", product="prod_seats", unit_amount=5000)
        price["transform_quantity"] = {"divide_by": 10, "round": "up"}
        subscribe(price, quantity=25)
        assert stored().mrr_amount == 3 * 5000

    def test_paused_collection_is_out_of_mrr_and_back_on_resume(self) -> None:
        profile()
        price = sp.price("price_pro", product="prod_pro", unit_amount=9900)
        active = subscribe(price)
        paused = {**active, "pause_collection": sp.pause_collection("void")}
        deliver(
            sp.event(
                "customer.subscription.updated",
                paused,
                created=T0 + 120,
                previous_attributes={"pause_collection": None},
            )
        )
        assert (stored().status, stored().mrr_amount, stored().customer.mrr_cents) == ("active", 0, 0)
        resumed = {**active, "pause_collection": None}
        deliver(
            sp.event(
                "customer.subscription.updated",
                resumed,
                created=T0 + 180,
                previous_attributes={"pause_collection": paused["pause_collection"]},
            )
        )
        assert stored().mrr_amount == 9900


class TestDiscountsWithoutAnApiKey:
    """A subscription payload names its discounts by id; the discount (customer.discount.*) and its coupon
    (coupon.*) are mirrored and value it, whichever arrives first."""

    def _events(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        price = sp.price("price_pro", product="prod_pro", unit_amount=10000)
        coupon = sp.coupon("FOREVER20", percent_off=20, duration="forever")
        discount = sp.discount("di_1", coupon="FOREVER20", customer="cus_ada", subscription="sub_1")
        discount["source"]["coupon"] = "FOREVER20"
        subscription = sp.subscription(
            "sub_1", customer="cus_ada", items=[(price, 1)], created=T0, discounts=[discount]
        )
        assert subscription["discounts"] == ["di_1"]
        return (
            sp.event("customer.subscription.created", subscription, created=T0 + 60),
            sp.event("customer.discount.created", discount, created=T0 + 60),
            sp.event("coupon.created", coupon, created=T0 + 30),
        )

    @pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0), (0, 2, 1)])
    def test_a_discount_id_is_valued_from_the_mirrored_discount_and_coupon_in_any_order(
        self, order: tuple[int, int, int]
    ) -> None:
        profile()
        events = self._events()
        for index in order:
            deliver(events[index])
        subscription = stored()
        assert subscription.discount_ids == ["di_1"]
        assert (subscription.coupon_id, subscription.discount_percent, subscription.discount_duration) == (
            "FOREVER20",
            Decimal("20.00"),
            "forever",
        )
        assert subscription.mrr_amount == 8000
        assert subscription.customer.traits["mrr"] == 80.0

    @pytest.mark.parametrize(
        ("coupon", "expected"),
        [
            (sp.coupon("AMT", amount_off=1500, currency="usd", duration="forever"), 8500),
            (sp.coupon("AMT", amount_off=1500, currency="eur", duration="forever"), 10000),  # another currency
            (sp.coupon("AMT", percent_off=50, duration="once"), 10000),
            (sp.coupon("AMT", percent_off=50, duration="repeating", duration_in_months=3), 10000),
        ],
        ids=["amount-forever", "amount-other-currency", "once", "repeating"],
    )
    def test_amount_and_temporary_coupons(self, coupon: dict[str, Any], expected: int) -> None:
        profile()
        deliver(sp.event("coupon.created", coupon, created=T0))
        discount = sp.discount("di_2", coupon=coupon, customer="cus_ada", subscription="sub_1")
        deliver(sp.event("customer.discount.created", discount, created=T0))
        subscribe(sp.price("price_pro", product="prod_pro", unit_amount=10000), discounts=["di_2"])
        assert stored().mrr_amount == expected
        assert stored().discount_duration == coupon["duration"]

    def test_an_older_state_without_the_discount_does_not_end_a_newer_discount(self) -> None:
        profile()
        listed, discount_event, coupon_event = self._events()
        subscription = listed["data"]["object"]
        deliver(sp.event("customer.subscription.created", {**subscription, "discounts": []}, created=T0))
        deliver(coupon_event)
        deliver(discount_event)  # at T0 + 60
        older = sp.event(
            "customer.subscription.updated",
            {**subscription, "discounts": [], "metadata": {"note": "x"}},
            created=T0 + 30,
            previous_attributes={"metadata": {}},
        )
        deliver(older)  # newer than the stored state, older than the discount: it must not end the discount
        deliver({**listed, "type": "customer.subscription.updated", "id": "evt_listed"})
        assert stored().discount_ids == ["di_1"] and stored().mrr_amount == 8000

    def test_a_deleted_discount_stops_counting(self) -> None:
        profile()
        for event in self._events():
            deliver(event)
        discount = self._events()[1]["data"]["object"]
        deliver(sp.event("customer.discount.deleted", discount, created=T0 + 120))
        assert stored().mrr_amount == 10000 and stored().coupon_id == ""

    def test_with_a_key_a_known_discount_is_not_fetched_again(self) -> None:
        profile()
        subscription_event, discount_event, coupon_event = self._events()
        deliver(coupon_event)
        deliver(discount_event)
        fetched: list[tuple[str, str]] = []

        def refetch(kind: str, object_id: str) -> Mapping[str, Any] | None:
            fetched.append((kind, object_id))
            return None

        stripe_event_apply(subscription_event, refetch=refetch)
        assert fetched == [] and stored().mrr_amount == 8000

    def test_with_a_key_an_unknown_discount_is_fetched(self) -> None:
        profile()
        subscription_event = self._events()[0]
        fresh: dict[str, Any] = copy.deepcopy(subscription_event["data"]["object"])
        fresh["discounts"] = [
            sp.discount(
                "di_1",
                coupon=sp.coupon("FOREVER20", percent_off=20),
                customer="cus_ada",
                subscription="sub_1",
                expand_coupon=True,
            )
        ]
        fetched: list[str] = []

        def refetch(kind: str, object_id: str) -> Mapping[str, Any] | None:
            fetched.append(object_id)
            return fresh

        stripe_event_apply(subscription_event, refetch=refetch)
        assert fetched == ["sub_1"] and stored().mrr_amount == 8000


class TestOlderApiShape:
    def test_periods_on_the_subscription_and_a_single_discount_object(self) -> None:
        profile()
        price = sp.price("price_pro", product="prod_pro", unit_amount=10000)
        subscription = sp.subscription("sub_1", customer="cus_ada", items=[(price, 1)], created=T0)
        for item in subscription["items"]["data"]:
            del item["current_period_start"], item["current_period_end"]
        subscription.update(current_period_start=T0, current_period_end=T0 + 30 * 86_400)
        del subscription["discounts"]
        subscription["discount"] = {
            "id": "di_old",
            "object": "discount",
            "coupon": sp.coupon("HALF", percent_off=50, duration="forever"),
            "customer": "cus_ada",
            "subscription": "sub_1",
            "start": T0,
            "end": None,
        }
        deliver(sp.event("customer.subscription.created", subscription, created=T0 + 60))
        mirrored = stored()
        assert (
            mirrored.current_period_end is not None and int(mirrored.current_period_end.timestamp()) == T0 + 30 * 86_400
        )
        assert (mirrored.coupon_id, mirrored.mrr_amount) == ("HALF", 5000)

    def test_an_invoice_line_with_a_price_object_values_a_metered_price(self) -> None:
        profile()
        metered = sp.price("price_api", product="prod_api", unit_amount=2, usage_type="metered")
        subscribe(metered)
        invoice = sp.invoice("in_1", customer="cus_ada", subscription_id="sub_1", amount_due=2600)
        line = invoice["lines"]["data"][0]
        line.update(pricing=None, parent=None, price=metered, proration=False, type="subscription")
        deliver(sp.event("invoice.paid", invoice, created=T0 + 120))
        assert stored().mrr_amount == 2600


class TestSameSecond:
    """Stripe may send several events of one subscription within the same second, and deliver them in any order;
    with no API key the payloads alone decide which state is the newer."""

    def _pair(self) -> tuple[dict[str, Any], dict[str, Any]]:
        price = sp.price("price_pro", product="prod_pro", unit_amount=9900)
        trialing = sp.subscription("sub_1", customer="cus_ada", items=[(price, 1)], status="trialing", created=T0)
        active = {**trialing, "status": "active"}
        created = sp.event("customer.subscription.created", trialing, created=T0 + 60)
        updated = sp.event(
            "customer.subscription.updated", active, created=T0 + 60, previous_attributes={"status": "trialing"}
        )
        return created, updated

    @pytest.mark.parametrize("reverse", [False, True], ids=["in-order", "reversed"])
    def test_the_later_state_wins_in_either_delivery_order(self, reverse: bool) -> None:
        profile()
        created, updated = self._pair()
        for event in (updated, created) if reverse else (created, updated):
            deliver(event)
        assert stored().status == "active" and stored().mrr_amount == 9900

    def test_two_updates_of_the_same_second_chain_by_previous_attributes(self) -> None:
        profile()
        created, updated = self._pair()
        deliver(created)
        pro = sp.price("price_max", product="prod_pro", unit_amount=19900)
        upgraded_obj = {
            **updated["data"]["object"],
            "items": sp.subscription("sub_1", customer="cus_ada", items=[(pro, 1)], created=T0)["items"],
        }
        upgraded = sp.event(
            "customer.subscription.updated",
            upgraded_obj,
            created=T0 + 60,
            previous_attributes={"items": updated["data"]["object"]["items"]},
        )
        deliver(upgraded)
        deliver(updated)  # the first update, delivered last: it is what the upgrade changed from
        assert (stored().plan.stripe_price_id, stored().mrr_amount) == ("price_max", 19900)

    def test_a_cancellation_outranks_an_unrelated_update_of_the_same_second(self) -> None:
        profile()
        _, updated = self._pair()
        deliver(updated)
        canceled = sp.event(
            "customer.subscription.deleted",
            {**updated["data"]["object"], "status": "canceled", "canceled_at": T0 + 60, "ended_at": T0 + 60},
            created=T0 + 60,
        )
        deliver(canceled)
        metadata_change = sp.event(
            "customer.subscription.updated",
            {**updated["data"]["object"], "metadata": {"seats_note": "x"}},
            created=T0 + 60,
            previous_attributes={"metadata": {}},
        )
        deliver(metadata_change)
        assert stored().status == "canceled" and stored().mrr_amount == 0


class TestCurrencies:
    def _three_customers(self) -> None:
        for user_id, stripe_id, currency, amount in (
            ("usr_us", "cus_us", "usd", 10000),
            ("usr_eu", "cus_eu", "eur", 10000),
            ("usr_jp", "cus_jp", "jpy", 10000),
        ):
            profile(user_id, f"{user_id}@example.test", stripe_id)
            price = sp.price(f"price_{currency}", product="prod_pro", unit_amount=amount, currency=currency)
            subscription = sp.subscription(f"sub_{currency}", customer=stripe_id, items=[(price, 1)], created=T0)
            deliver(sp.event("customer.subscription.created", subscription, created=T0 + 60))

    def test_zero_and_three_decimal_currencies(self) -> None:
        assert [minor_unit_exponent(c) for c in ("usd", "JPY", "krw", "kwd", "isk", "eur")] == [2, 0, 0, 3, 2, 2]
        rates = {"jpy": Decimal("0.0067"), "kwd": Decimal("3.25")}
        assert convert_to_cents(10000, "jpy", workspace_currency="usd", rates=rates) == 6700
        assert convert_to_cents(5120, "kwd", workspace_currency="usd", rates=rates) == 1664
        assert convert_to_cents(10000, "eur", workspace_currency="usd", rates=rates) is None

    def test_mixed_currencies_are_never_summed_and_yen_has_no_cents(
        self, make_user: Callable[..., AbstractUser]
    ) -> None:
        self._three_customers()
        jpy = Subscription.objects.get(stripe_subscription_id="sub_jpy")
        assert (jpy.currency, jpy.mrr_amount, jpy.mrr_cents) == ("jpy", 10000, None)
        japanese = Customer.objects.get(user_id="usr_jp")
        assert japanese.mrr_cents is None and japanese.traits["mrr"] is None
        assert japanese.traits["billing_currencies"] == ["jpy"]
        client = Client()
        client.login(username=make_user(Role.ADMIN).get_username(), password=TEST_PASSWORD)
        home = client.get("/")
        assert home.context["figures"]["mrr_cents"] == 10000
        page = home.content.decode()
        assert "$100.00" in page and "300.00" not in page
        assert "100.00 EUR" in page and "10,000 JPY" in page

    def test_rates_entered_by_an_admin_convert_every_total(self, make_user: Callable[..., AbstractUser]) -> None:
        self._three_customers()
        admin = Client()
        admin.login(username=make_user(Role.ADMIN).get_username(), password=TEST_PASSWORD)
        url = reverse("billing-settings")
        for currency, rate in (("EUR", "1.10"), ("jpy", "0.0067")):
            response = admin.post(url, {"form": "rate", "currency": currency, "rate": rate})
            assert response.status_code == 302
        assert Customer.objects.get(user_id="usr_jp").mrr_cents == 6700
        assert Customer.objects.get(user_id="usr_jp").traits["mrr"] == 67.0
        assert admin.get("/").context["figures"]["mrr_cents"] == 10000 + 11000 + 6700
        assert set(AuditEntry.objects.filter(model="integrations.CurrencyRate").values_list("action", flat=True)) == {
            "created"
        }
        admin.post(url, {"form": "delete-rate", "currency": "eur"})
        assert Customer.objects.get(user_id="usr_eu").mrr_cents is None
        assert admin.get("/").context["figures"]["mrr_cents"] == 10000 + 6700

    def test_a_rate_re_evaluates_the_live_audiences_of_the_customers_it_re_values(
        self, make_user: Callable[..., AbstractUser]
    ) -> None:
        self._three_customers()
        big = {"type": "condition", "property": "subscriber.mrr", "operator": "gt", "value": 50}
        segment = segment_save(
            name="Over 50 a month", conditions={"type": "group", "operator": "and", "children": [big]}
        )
        Segment.objects.filter(pk=segment.pk).update(is_live=True)
        admin = Client()
        admin.login(username=make_user(Role.ADMIN).get_username(), password=TEST_PASSWORD)
        with TestCase.captureOnCommitCallbacks(execute=True):
            admin.post(reverse("billing-settings"), {"form": "rate", "currency": "jpy", "rate": "0.0067"})
        members = SegmentMembership.objects.filter(segment=segment).values_list("customer__user_id", flat=True)
        assert "usr_jp" in set(members)

    def test_bad_rates_are_form_errors_and_only_admins_may_change_them(
        self, make_user: Callable[..., AbstractUser]
    ) -> None:
        admin = Client()
        admin.login(username=make_user(Role.ADMIN).get_username(), password=TEST_PASSWORD)
        url = reverse("billing-settings")
        for data, message in (
            ({"form": "rate", "currency": "euro", "rate": "1.1"}, "three-letter ISO currency code"),
            ({"form": "rate", "currency": "eur", "rate": "0"}, "greater than or equal to"),
            ({"form": "rate", "currency": "usd", "rate": "1"}, "is the workspace currency"),
        ):
            response = admin.post(url, data)
            assert response.status_code == 400 and message in response.content.decode()
        assert not CurrencyRate.objects.exists()
        growth = Client()
        growth.login(username=make_user(Role.GROWTH).get_username(), password=TEST_PASSWORD)
        assert growth.post(url, {"form": "rate", "currency": "eur", "rate": "1.1"}).status_code == 403

    def test_a_new_workspace_currency_drops_the_rates_and_converts_again(
        self, make_user: Callable[..., AbstractUser]
    ) -> None:
        self._three_customers()
        admin = Client()
        admin.login(username=make_user(Role.ADMIN).get_username(), password=TEST_PASSWORD)
        url = reverse("billing-settings")
        admin.post(url, {"form": "rate", "currency": "eur", "rate": "1.10"})
        response = admin.post(url, {"form": "settings", "currency": "EUR", "account_metadata_key": ""})
        assert response.status_code == 302 and billing_settings().currency == "eur"
        assert not CurrencyRate.objects.exists()
        assert Customer.objects.get(user_id="usr_eu").mrr_cents == 10000
        assert Customer.objects.get(user_id="usr_us").mrr_cents is None

    def test_money_on_timeline_events_respects_zero_decimal_currencies(self) -> None:
        profile()
        charge = sp.charge("ch_1", customer="cus_ada", amount=10000, currency="jpy")
        deliver(sp.event("charge.succeeded", charge, created=T0 + 60))
        completed = Event.objects.get(name="Order Completed")
        assert (completed.properties["total"], completed.properties["currency"]) == (10000.0, "jpy")


class TestAccounts:
    def test_a_metadata_key_maps_the_stripe_customer_and_its_profile_to_an_account(self) -> None:
        BillingSettings.objects.update_or_create(pk=1, defaults={"account_metadata_key": "company_id"})
        person = Customer.objects.create(user_id="usr_ada", email="ada@acme.test")
        customer = sp.customer("cus_ada", email="ada@acme.test", metadata={"company_id": "grp_acme"})
        deliver(sp.event("customer.created", customer, created=T0))
        stripe_customer = StripeCustomer.objects.get(stripe_customer_id="cus_ada")
        assert stripe_customer.account is not None and stripe_customer.account.group_id == "grp_acme"
        person.refresh_from_db()
        assert person.account_id == stripe_customer.account_id

    def test_an_email_domain_maps_to_the_one_account_with_it(self) -> None:
        BillingSettings.objects.update_or_create(pk=1, defaults={"account_by_email_domain": True})
        acme = Account.objects.create(group_id="grp_acme", name="Acme", domain="acme.test")
        profile()
        assert StripeCustomer.objects.get(stripe_customer_id="cus_ada").account_id == acme.pk
        Customer.objects.create(user_id="usr_gmail", email="bo@gmail.com")
        Account.objects.create(group_id="grp_gmail", domain="gmail.com")
        deliver(sp.event("customer.created", sp.customer("cus_bo", email="bo@gmail.com"), created=T0))
        free_mail = StripeCustomer.objects.get(stripe_customer_id="cus_bo")
        assert free_mail.account is None and "free-mail" in free_mail.account_reason

    def test_no_rule_no_account(self) -> None:
        Account.objects.create(group_id="grp_acme", name="Acme", domain="acme.test")
        profile()
        assert StripeCustomer.objects.get(stripe_customer_id="cus_ada").account is None

    def test_changing_the_rule_on_the_page_maps_existing_customers(
        self, make_user: Callable[..., AbstractUser]
    ) -> None:
        acme = Account.objects.create(group_id="grp_acme", name="Acme", domain="acme.test")
        profile()
        admin = Client()
        admin.login(username=make_user(Role.ADMIN).get_username(), password=TEST_PASSWORD)
        response = admin.post(
            reverse("billing-settings"), {"form": "settings", "currency": "usd", "account_by_email_domain": "on"}
        )
        assert response.status_code == 302
        assert StripeCustomer.objects.get(stripe_customer_id="cus_ada").account_id == acme.pk
        assert AuditEntry.objects.filter(model="integrations.BillingSettings").exists()


class TestActiveCouponProperty:
    def _holds(self, condition: dict[str, Any]) -> set[str | None]:
        tree = compile_tree(parse_tree(condition), timezone.now())
        return set(Customer.objects.filter(tree).values_list("user_id", flat=True))

    def test_active_coupon_id_reads_the_running_discounts(self) -> None:
        profile()
        Customer.objects.create(user_id="usr_none")
        deliver(sp.event("coupon.created", sp.coupon("WINBACK", percent_off=30, duration="repeating"), created=T0))
        deliver(
            sp.event(
                "customer.discount.created",
                sp.discount("di_1", coupon="WINBACK", customer="cus_ada", subscription="sub_1"),
                created=T0,
            )
        )
        subscribe(sp.price("price_pro", product="prod_pro", unit_amount=9900), discounts=["di_1"])
        equals = {
            "type": "condition",
            "property": "subscriber.active_coupon_id",
            "operator": "equals",
            "value": "WINBACK",
        }
        assert self._holds(equals) == {"usr_ada"}
        assert self._holds({**equals, "operator": "not_equals"}) == {"usr_none"}
        assert self._holds({**equals, "operator": "is_set", "value": None}) == {"usr_ada"}
        explained = explain(equals, Customer.objects.get(user_id="usr_ada"))
        assert explained["matches"] is True and explained["leaves"][0]["actual"] == ["WINBACK"]
        Discount.objects.filter(stripe_discount_id="di_1").update(end=timezone.now())
        Subscription.objects.filter(stripe_subscription_id="sub_1").update(coupon_id="")
        assert self._holds(equals) == set()
