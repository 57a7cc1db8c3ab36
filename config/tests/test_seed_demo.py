"""The demo data set: complete (every status, teams), truthful (activation drives conversion), reproducible, once."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Count, Sum
from django.utils import timezone

from audiences.models import Account, AnonymousId, ComputedTrait, ComputedTraitValue, Customer, Event, Source
from config.demo.definitions import COMPUTED_TRAITS, LIVE_AUDIENCES, demo_definitions_ensure
from config.demo.effects import PLANTED_EMAIL_DOMAIN
from config.demo.plan import DemoSummary
from config.demo.seed import demo_data_delete, demo_now, demo_seed, trial_behaviour
from config.demo.vocabulary import DEMO_SOURCE_NAME, PAID_STATUSES, USER_ID_PREFIX
from integrations.stripe.models import Plan, Product, Subscription
from integrations.stripe.mrr import subscription_mrr_cents
from segments.models import Segment, SegmentMembership
from trials.loop.models import Trial

SIZE = 300
NOW = datetime(2026, 3, 2, tzinfo=UTC)

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded() -> DemoSummary:
    return demo_seed(customers=SIZE, seed=42, now=NOW)


def _seed_command(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", "--customers", str(SIZE), *args, stdout=out)
    return out.getvalue()


def _snapshot() -> dict[str, object]:
    """Counts and values that must not differ between two runs with the same seed on the same day."""
    return {
        "customers": Customer.objects.count(),
        "accounts": Account.objects.count(),
        "anonymous_ids": AnonymousId.objects.count(),
        "subscriptions": Subscription.objects.count(),
        "events": Event.objects.count(),
        "statuses": dict(Subscription.objects.values_list("status").annotate(n=Count("id")).order_by()),
        "mrr": Customer.objects.aggregate(total=Sum("mrr_cents"))["total"],
        "ltv": Customer.objects.aggregate(total=Sum("ltv_cents"))["total"],
        # The people the generator drew (the planted-effect trials after them are numbered, not drawn).
        "first_emails": list(
            Customer.objects.exclude(email__endswith=PLANTED_EMAIL_DOMAIN)
            .order_by("-id")
            .values_list("email", flat=True)[:25]
        ),
        "first_user_ids": list(Customer.objects.order_by("id").values_list("user_id", flat=True)[:25]),
    }


def test_builds_the_requested_size_with_everything_linked(seeded: DemoSummary) -> None:
    assert seeded.created
    assert Customer.objects.count() == SIZE == seeded.counts["customers"]
    assert Event.objects.count() == seeded.counts["events"]
    assert Source.objects.get(name=DEMO_SOURCE_NAME).kind == Source.Kind.TRACKING_API
    assert Plan.objects.filter(amount_cents=0).exists()
    assert Plan.objects.filter(interval="year").exists()
    assert not Event.objects.filter(timestamp__gte=NOW).exists()
    assert AnonymousId.objects.exists()
    customer = Customer.objects.exclude(stripe_customer_id=None).first()
    assert customer is not None
    assert customer.email == customer.email.lower()
    assert str(customer.user_id).startswith(USER_ID_PREFIX)
    assert {"first_name", "last_name", "title", "use_case", "signup_source"} <= set(customer.traits)
    assert customer.first_seen_at is not None and customer.last_seen_at is not None
    assert customer.first_seen_at <= customer.last_seen_at
    emails = list(Customer.objects.values_list("email", flat=True))
    assert any(email.endswith("@gmail.com") for email in emails)
    assert any(email.endswith(".edu") for email in emails)
    trials = Subscription.objects.exclude(trial_start=None).count()
    assert 20 <= Event.objects.count() / trials <= 70


def test_every_subscription_status_appears(seeded: DemoSummary) -> None:
    stored = set(Subscription.objects.values_list("status", flat=True))
    assert stored == set(Subscription.Status.values)
    assert all(count > 0 for count in seeded.subscriptions_by_status.values())
    assert Subscription.objects.filter(cancel_at_period_end=True).exists()
    assert Subscription.objects.filter(discount_duration="forever", discount_percent__isnull=False).exists()
    assert Subscription.objects.filter(discount_duration="once", discount_amount_cents__isnull=False).exists()
    assert Subscription.objects.filter(add_on_items__isnull=False).exists()
    trialing = Subscription.objects.filter(status=Subscription.Status.TRIALING)
    assert not trialing.filter(trial_end__lte=NOW).exists()


def test_accounts_have_several_seats_and_some_are_solo(seeded: DemoSummary) -> None:
    sizes = Account.objects.annotate(seats=Count("members"))
    assert sizes.filter(seats__gte=3).exists()
    assert sizes.filter(seats=1).exists()
    assert {"industry", "employees", "company_size", "domain"} <= set(Account.objects.first().traits)  # type: ignore[union-attr]


def test_activated_trials_convert_far_more_than_the_others(seeded: DemoSummary) -> None:
    """Measured on the stored rows, the way an analyst would: events for activation, subscriptions for payment."""
    events: dict[int, list[tuple[str, datetime]]] = defaultdict(list)
    for customer_id, name, timestamp in Event.objects.filter(type=Event.Type.TRACK).values_list(
        "customer_id", "name", "timestamp"
    ):
        events[customer_id].append((name, timestamp))
    groups = {True: [0, 0], False: [0, 0]}
    for subscription in Subscription.objects.exclude(trial_start=None).filter(trial_end__lte=NOW):
        start, end = subscription.trial_start, subscription.trial_end
        assert start is not None and end is not None
        activated, _habit = trial_behaviour(events[subscription.customer_id], start, end)
        converted = subscription.status in PAID_STATUSES or (
            subscription.status == Subscription.Status.CANCELED
            and subscription.ended_at is not None
            and subscription.ended_at > end
        )
        groups[activated][0] += 1
        groups[activated][1] += int(converted)
    rate_activated = groups[True][1] / groups[True][0]
    rate_not = groups[False][1] / groups[False][0]
    assert rate_activated > 2 * rate_not
    # The summary the command prints reports exactly what the stored data says.
    assert (seeded.conversion["activated"].trials, seeded.conversion["activated"].converted) == tuple(groups[True])
    assert (seeded.conversion["not activated"].trials, seeded.conversion["not activated"].converted) == tuple(
        groups[False]
    )


def test_customer_mrr_is_the_sum_of_their_subscriptions(seeded: DemoSummary) -> None:
    totals = dict(Subscription.objects.values_list("customer_id").annotate(total=Sum("mrr_cents")).order_by())
    for customer_id, mrr in Customer.objects.values_list("id", "mrr_cents"):
        assert mrr == (totals.get(customer_id) or 0)
    assert sum(totals.values()) > 0
    for subscription in Subscription.objects.prefetch_related("add_on_items__add_on").select_related("plan"):
        assert subscription.mrr_cents == subscription_mrr_cents(subscription)
    paying = Customer.objects.filter(mrr_cents__gt=0)
    assert not paying.exclude(subscriber_status=Customer.SubscriberStatus.ACTIVE).exists()
    assert Customer.objects.filter(ltv_cents__gt=0).exists()


def test_event_message_ids_are_unique(seeded: DemoSummary) -> None:
    total = Event.objects.count()
    assert total > 0
    assert Event.objects.values("source_id", "message_id").distinct().count() == total
    assert not Event.objects.filter(message_id="").exists()


def test_same_seed_gives_the_same_data_set() -> None:
    _seed_command("--seed", "7")
    first = _snapshot()
    output = _seed_command("--seed", "7", "--reset")
    assert "Deleted the previous demo data" in output
    assert _snapshot() == first
    _seed_command("--seed", "8", "--reset")
    assert _snapshot()["first_emails"] != first["first_emails"]


def test_second_run_without_reset_creates_nothing() -> None:
    _seed_command()
    before = _snapshot()
    output = _seed_command()
    assert "already exists" in output
    assert _snapshot() == before
    assert Source.objects.filter(name=DEMO_SOURCE_NAME).count() == 1


def test_command_prints_a_summary_but_never_the_write_key_or_secret_key() -> None:
    output = _seed_command()
    source = Source.objects.get(name=DEMO_SOURCE_NAME)
    assert source.write_key_prefix not in output
    assert source.secret_key.startswith("tlsk_") and source.secret_key_prefix not in output
    for expected in ("customers", "events", "past_due", "incomplete_expired", "activated", "Done in"):
        assert expected in output


def test_reset_removes_only_demo_data() -> None:
    product = Product.objects.create(name="Real product", stripe_product_id="prod_real")
    plan = Plan.objects.create(name="Real plan", product=product, amount_cents=1000, stripe_price_id="price_real")
    customer = Customer.objects.create(user_id="usr_real_1", email="real@customer.example")
    Subscription.objects.create(customer=customer, plan=plan, status="active", started_at=NOW)
    demo_seed(customers=SIZE, seed=1, now=NOW)
    deleted = demo_data_delete()
    assert deleted["Customer"] == SIZE
    assert list(Customer.objects.values_list("user_id", flat=True)) == ["usr_real_1"]
    assert list(Plan.objects.values_list("name", flat=True)) == ["Real plan"]
    assert Subscription.objects.count() == 1
    assert not Event.objects.exists() and not Account.objects.exists()
    assert not Source.objects.filter(name=DEMO_SOURCE_NAME).exists()


def test_rejects_a_size_too_small_to_cover_every_status() -> None:
    with pytest.raises(CommandError):
        call_command("seed_demo", "--customers", "5", stdout=StringIO())
    assert not Customer.objects.exists()


def test_starter_definitions_are_computed_over_the_demo_and_created_once() -> None:
    now = demo_now()
    demo_seed(customers=SIZE, seed=42, now=now)
    assert demo_definitions_ensure() == {"computed_traits": len(COMPUTED_TRAITS), "live_audiences": len(LIVE_AUDIENCES)}
    assert demo_definitions_ensure() == {"computed_traits": 0, "live_audiences": 0}
    assert set(ComputedTrait.objects.values_list("backfill_status", flat=True)) == {"done"}
    # The power users are exactly those with three or more reports in the last 7 days
    recent = Event.objects.filter(name="Report Generated", timestamp__gte=timezone.now() - timedelta(days=7))
    expected = {c for c, n in recent.values_list("customer_id").annotate(n=Count("id")).order_by() if n >= 3}
    power = Segment.objects.get(name="Power users this week")
    assert power.is_live
    assert set(SegmentMembership.objects.filter(segment=power).values_list("customer_id", flat=True)) == expected
    assert expected, "the demo should have some power users"
    counted = ComputedTraitValue.objects.filter(trait__key="projects_created", number_value__gt=0).count()
    assert counted == Event.objects.filter(name="Project Created").values("customer_id").distinct().count()


def test_the_command_derives_the_demo_trials() -> None:
    output = _seed_command()
    assert "Trials derived" in output
    assert Trial.objects.count() > 0
    assert set(Trial.objects.values_list("stage", flat=True)) >= {"trigger", "convert"}
