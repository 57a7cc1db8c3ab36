"""Fact webhooks end to end against a real HTTP receiver on 127.0.0.1: Standard Webhooks signing (checked
with the function docs/destinations.md gives receivers, which calls the scheme's official library), retries with backoff, permanent failures, pause and resume, replay,
consent, idempotency, the Stripe hook, and the cost of emitting many messages."""

from __future__ import annotations

import math
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audiences.models import AnonymousId, Customer
from config.facts import Fact, FactKind
from config.locks import task_lock
from integrations.destinations import sending
from integrations.destinations.emit import outbound_emit
from integrations.destinations.models import Destination, DestinationDelivery, signing_secret_generate
from integrations.destinations.payloads import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, webhook_signature
from integrations.destinations.sending import FlushResult, delivery_backoff, destination_flush
from integrations.destinations.services import (
    ReplayRefused,
    destination_create,
    destination_delivery_replay,
    destination_pause,
    destination_resume,
    destination_rotate_secret,
)
from integrations.destinations.tasks import deliveries_dispatch
from integrations.stripe.apply import stripe_event_apply
from integrations.tests import stripe_payloads as sp
from integrations.tests.receiver import Receiver

DOCS = Path(__file__).resolve().parents[2] / "docs" / "destinations.md"
Status = DestinationDelivery.Status


def _documented_verifier() -> Any:
    """The receiver-side check exactly as docs/destinations.md prints it."""
    text = DOCS.read_text()
    code = next(block for block in re.findall(r"```python\n(.*?)```", text, re.S) if "def verify_trialloop" in block)
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOCS), "exec"), namespace)
    return namespace["verify_trialloop_webhook"]


verify = _documented_verifier()


@pytest.fixture(autouse=True)
def allow_local_receiver(settings: Any) -> None:
    settings.DESTINATIONS_ALLOW_PRIVATE_URLS = True


@pytest.fixture
def ada(db: Any) -> Customer:
    return Customer.objects.create(user_id="usr_ada", email="ada@acme.test", name="Ada")


@pytest.fixture
def hook(receiver: Receiver) -> Destination:
    return destination_create(
        name="CRM webhook",
        kind=Destination.Kind.WEBHOOK,
        url=receiver.url,
        kinds=[FactKind.AUDIENCE_ENTERED, FactKind.AUDIENCE_EXITED, FactKind.BILLING_EVENT],
    )


def entered(customer: Customer, audience_id: int = 12, *, key: str | None = None) -> Fact:
    return Fact(
        kind=FactKind.AUDIENCE_ENTERED,
        customer_id=customer.pk,
        idempotency_key=key or f"audience:{audience_id}:entered:{customer.pk}",
        occurred_at=datetime(2026, 11, 24, 9, 30, tzinfo=UTC),
        data={"audience": {"id": audience_id, "key": "power_users", "name": "Power users"}},
    )


def emit(capture: Any, *messages: Fact) -> int:
    """Emit inside a transaction and run what it queued on commit (the flush, eagerly)."""
    with capture(execute=True):
        return outbound_emit(list(messages))


def make_due() -> None:
    DestinationDelivery.objects.filter(status=Status.PENDING).update(next_attempt_at=timezone.now())


@pytest.mark.django_db
class TestSigning:
    def test_the_receiver_verifies_the_signature_and_reads_the_message(
        self, hook: Destination, receiver: Receiver, ada: Customer, django_capture_on_commit_callbacks: Any
    ) -> None:
        assert emit(django_capture_on_commit_callbacks, entered(ada)) == 1

        [request] = receiver.requests
        assert request.path == "/hooks/trialloop"
        assert verify(hook.signing_secret, request.body, request.headers) == request.json()
        assert request.headers[ID_HEADER] == f"audience:12:entered:{ada.pk}"
        assert request.json() == {
            "version": 1,
            "kind": "audience_entered",
            "idempotency_key": f"audience:12:entered:{ada.pk}",
            "occurred_at": "2026-11-24T09:30:00Z",
            "customer": {"id": ada.pk, "user_id": "usr_ada", "email": "ada@acme.test"},
            "data": {"audience": {"id": 12, "key": "power_users", "name": "Power users"}},
        }
        delivery = DestinationDelivery.objects.get()
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (Status.DELIVERED, 1, 200)
        assert delivery.delivered_at is not None

    def test_a_changed_body_id_or_secret_and_an_old_timestamp_fail_verification(
        self, hook: Destination, receiver: Receiver, ada: Customer, django_capture_on_commit_callbacks: Any
    ) -> None:
        emit(django_capture_on_commit_callbacks, entered(ada))
        [request] = receiver.requests
        headers = request.headers
        assert verify(hook.signing_secret, request.body, headers) is not None
        assert verify(hook.signing_secret, request.body.replace(b"power_users", b"lurkers"), headers) is None
        assert verify(hook.signing_secret, request.body, {**headers, ID_HEADER: "audience:13:entered:1"}) is None
        assert verify(signing_secret_generate(), request.body, headers) is None
        six_minutes_ago = timezone.now() - timedelta(minutes=6)
        replayed = {
            **headers,
            TIMESTAMP_HEADER: str(int(six_minutes_ago.timestamp())),
            SIGNATURE_HEADER: webhook_signature(
                [hook.signing_secret], headers[ID_HEADER], request.body, six_minutes_ago
            ),
        }
        assert verify(hook.signing_secret, request.body, replayed) is None

    def test_after_a_rotation_both_secrets_sign_for_a_day(
        self, hook: Destination, receiver: Receiver, ada: Customer, django_capture_on_commit_callbacks: Any
    ) -> None:
        old = hook.signing_secret
        new = destination_rotate_secret(destination=hook)
        assert new != old and new.startswith("whsec_")
        emit(django_capture_on_commit_callbacks, entered(ada))
        request = receiver.requests[-1]
        assert request.headers[SIGNATURE_HEADER].count("v1,") == 2
        assert verify(new, request.body, request.headers) is not None
        assert verify(old, request.body, request.headers) is not None

        Destination.objects.filter(pk=hook.pk).update(secret_rotated_at=timezone.now() - timedelta(hours=25))
        emit(django_capture_on_commit_callbacks, entered(ada, audience_id=13))
        request = receiver.requests[-1]
        assert request.headers[SIGNATURE_HEADER].count("v1,") == 1
        assert verify(new, request.body, request.headers) is not None
        assert verify(old, request.body, request.headers) is None


@pytest.mark.django_db
class TestRetries:
    def test_500s_are_retried_with_backoff_until_the_receiver_accepts(
        self, hook: Destination, receiver: Receiver, ada: Customer, django_capture_on_commit_callbacks: Any
    ) -> None:
        receiver.answer(500, 503)
        before = timezone.now()
        emit(django_capture_on_commit_callbacks, entered(ada))
        delivery = DestinationDelivery.objects.get()
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (Status.PENDING, 1, 500)
        assert "HTTP 500" in delivery.last_error
        assert delivery.next_attempt_at is not None
        assert timedelta(seconds=23) < delivery.next_attempt_at - before < timedelta(seconds=37)

        assert deliveries_dispatch() == []  # not due yet: the sweep leaves it alone
        assert len(receiver.requests) == 1

        make_due()
        assert deliveries_dispatch() == [hook.pk]
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (Status.PENDING, 2, 503)
        assert delivery.next_attempt_at - timezone.now() > timedelta(seconds=90)  # 2 min ± 20 %

        make_due()
        deliveries_dispatch()
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (Status.DELIVERED, 3, 200)
        assert delivery.last_error == ""
        assert [r.headers["Trialloop-Attempt"] for r in receiver.requests] == ["1", "2", "3"]
        assert {r.headers[ID_HEADER] for r in receiver.requests} == {delivery.idempotency_key}
        assert len({r.body for r in receiver.requests}) == 1

    @pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
    def test_a_4xx_fails_for_good_without_a_retry(
        self,
        hook: Destination,
        receiver: Receiver,
        ada: Customer,
        django_capture_on_commit_callbacks: Any,
        status: int,
    ) -> None:
        receiver.answer(status)
        emit(django_capture_on_commit_callbacks, entered(ada))
        delivery = DestinationDelivery.objects.get()
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (Status.FAILED, 1, status)
        assert delivery.next_attempt_at is None
        assert "scripted failure" in delivery.last_error
        deliveries_dispatch()
        assert len(receiver.requests) == 1

    @pytest.mark.parametrize("status", [408, 429, 301, 502])
    def test_timeouts_throttling_redirects_and_5xx_are_retried(
        self,
        hook: Destination,
        receiver: Receiver,
        ada: Customer,
        django_capture_on_commit_callbacks: Any,
        status: int,
    ) -> None:
        receiver.answer(status)
        emit(django_capture_on_commit_callbacks, entered(ada))
        delivery = DestinationDelivery.objects.get()
        assert (delivery.status, delivery.last_status_code) == (Status.PENDING, status)
        if status == 301:
            assert "redirects are not followed" in delivery.last_error

    def test_the_eighth_failed_try_is_the_last(
        self, hook: Destination, receiver: Receiver, ada: Customer, django_capture_on_commit_callbacks: Any
    ) -> None:
        receiver.answer(*[500] * 8)
        emit(django_capture_on_commit_callbacks, entered(ada))
        for _ in range(7):
            make_due()
            deliveries_dispatch()
        delivery = DestinationDelivery.objects.get()
        assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == (Status.FAILED, 8, None)
        assert len(receiver.requests) == 8

    def test_a_receiver_that_is_down_is_retried_and_stops_the_run(
        self, ada: Customer, django_capture_on_commit_callbacks: Any
    ) -> None:
        import socket

        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        down = destination_create(
            name="Down", kind="webhook", url=f"http://127.0.0.1:{port}/", kinds=["audience_entered"]
        )
        emit(django_capture_on_commit_callbacks, entered(ada, 1), entered(ada, 2), entered(ada, 3))
        tried = DestinationDelivery.objects.filter(destination=down).exclude(last_attempt_at=None)
        assert tried.count() == 1  # one probe, not one connection per waiting message
        assert "Cannot connect" in tried.get().last_error
        assert DestinationDelivery.objects.filter(destination=down, status=Status.PENDING).count() == 3

    def test_a_run_out_of_time_hands_over_to_the_next_one(
        self,
        hook: Destination,
        receiver: Receiver,
        ada: Customer,
        django_capture_on_commit_callbacks: Any,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(sending, "FLUSH_BUDGET_SECONDS", 0.0)
        assert destination_flush(destination_id=hook.pk) == FlushResult()
        destination_pause(destination=hook)
        emit(django_capture_on_commit_callbacks, entered(ada, 1), entered(ada, 2), entered(ada, 3))
        Destination.objects.filter(pk=hook.pk).update(is_paused=False)

        first = destination_flush(destination_id=hook.pk)
        assert (first.delivered, first.more) == (1, True)  # one send, then the time was up
        with django_capture_on_commit_callbacks(execute=True):
            destination_resume(destination=hook)  # the task queues itself again until nothing is due
        assert len(receiver.requests) == 3
        assert set(DestinationDelivery.objects.values_list("status", flat=True)) == {Status.DELIVERED}

    def test_only_one_flush_per_destination_runs_at_a_time(
        self, hook: Destination, receiver: Receiver, ada: Customer, django_capture_on_commit_callbacks: Any
    ) -> None:
        destination_pause(destination=hook)
        emit(django_capture_on_commit_callbacks, entered(ada))
        Destination.objects.filter(pk=hook.pk).update(is_paused=False)
        with task_lock(f"destination flush {hook.pk}") as held:
            assert held
            assert destination_flush(destination_id=hook.pk) == FlushResult()
        assert receiver.requests == []
        assert destination_flush(destination_id=hook.pk).delivered == 1

    def test_backoff_grows_fourfold_to_a_cap_with_jitter(self) -> None:
        nominal = [30, 120, 480, 1920, 7680, 30720, 43200, 43200]
        rng = random.Random(7)
        for attempts, seconds in enumerate(nominal, start=1):
            waits = [delivery_backoff(attempts, rng=rng).total_seconds() for _ in range(50)]
            assert all(0.8 * seconds <= wait <= 1.2 * seconds for wait in waits), attempts
            assert max(waits) - min(waits) > 0.1 * seconds  # jittered, not all the same
        total = sum(nominal[:7])
        assert 20 * 3600 < total < 26 * 3600  # eight tries spread over about a day


@pytest.mark.django_db
class TestPauseAndReplay:
    def test_a_paused_destination_collects_deliveries_and_sends_them_on_resume(
        self, hook: Destination, receiver: Receiver, ada: Customer, django_capture_on_commit_callbacks: Any
    ) -> None:
        destination_pause(destination=hook)
        assert emit(django_capture_on_commit_callbacks, entered(ada, 1), entered(ada, 2)) == 2
        assert deliveries_dispatch() == []
        assert receiver.requests == []
        assert set(DestinationDelivery.objects.values_list("status", flat=True)) == {Status.PENDING}

        with django_capture_on_commit_callbacks(execute=True):
            destination_resume(destination=hook)
        assert [r.json()["idempotency_key"] for r in receiver.requests] == [
            f"audience:1:entered:{ada.pk}",
            f"audience:2:entered:{ada.pk}",
        ]
        assert set(DestinationDelivery.objects.values_list("status", flat=True)) == {Status.DELIVERED}

    def test_replay_sends_the_same_message_again_with_the_same_key(
        self, hook: Destination, receiver: Receiver, ada: Customer, django_capture_on_commit_callbacks: Any
    ) -> None:
        receiver.answer(400)
        emit(django_capture_on_commit_callbacks, entered(ada))
        delivery = DestinationDelivery.objects.get()
        assert delivery.status == Status.FAILED

        with django_capture_on_commit_callbacks(execute=True):
            destination_delivery_replay(delivery=delivery)
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == (Status.DELIVERED, 1)
        with django_capture_on_commit_callbacks(execute=True):
            destination_delivery_replay(delivery=delivery)  # a delivered one may be sent again too
        first, second, third = receiver.requests
        assert first.body == second.body == third.body
        assert first.headers[ID_HEADER] == third.headers[ID_HEADER] == delivery.idempotency_key

    def test_pending_and_skipped_deliveries_are_not_replayed(
        self, hook: Destination, ada: Customer, django_capture_on_commit_callbacks: Any
    ) -> None:
        destination_pause(destination=hook)
        emit(django_capture_on_commit_callbacks, entered(ada))
        pending = DestinationDelivery.objects.get()
        with pytest.raises(ReplayRefused, match="this one is pending"):
            destination_delivery_replay(delivery=pending)
        DestinationDelivery.objects.update(status=Status.SKIPPED)
        with pytest.raises(ReplayRefused, match="skipped"):
            destination_delivery_replay(delivery=pending)


@pytest.mark.django_db
class TestConsentAndIdempotency:
    def test_a_customer_who_withdrew_consent_is_skipped_with_the_reason(
        self, hook: Destination, receiver: Receiver, ada: Customer, django_capture_on_commit_callbacks: Any
    ) -> None:
        other_category = destination_create(
            name="Analytics", kind="webhook", url=receiver.url, kinds=["audience_entered"], consent_category="analytics"
        )
        ada.consent = {"destinations": False, "email": True}
        ada.save()
        assert emit(django_capture_on_commit_callbacks, entered(ada)) == 2

        skipped = DestinationDelivery.objects.get(destination=hook)
        assert (skipped.status, skipped.attempts) == (Status.SKIPPED, 0)
        assert "withdrew consent for “destinations”" in skipped.last_error
        assert DestinationDelivery.objects.get(destination=other_category).status == Status.DELIVERED
        assert [r.headers["Content-Type"] for r in receiver.requests] == ["application/json"]

    def test_consent_withdrawn_while_a_delivery_waits_is_respected_at_send_time(
        self, hook: Destination, receiver: Receiver, ada: Customer, django_capture_on_commit_callbacks: Any
    ) -> None:
        destination_pause(destination=hook)
        emit(django_capture_on_commit_callbacks, entered(ada))
        Customer.objects.filter(pk=ada.pk).update(consent={"destinations": False})
        with django_capture_on_commit_callbacks(execute=True):
            destination_resume(destination=hook)
        delivery = DestinationDelivery.objects.get()
        assert delivery.status == Status.SKIPPED
        assert "before it was sent" in delivery.last_error
        assert receiver.requests == []

    def test_emitting_the_same_message_twice_creates_one_delivery(
        self, hook: Destination, receiver: Receiver, ada: Customer, django_capture_on_commit_callbacks: Any
    ) -> None:
        assert emit(django_capture_on_commit_callbacks, entered(ada), entered(ada)) == 1
        assert emit(django_capture_on_commit_callbacks, entered(ada)) == 0
        assert DestinationDelivery.objects.count() == 1
        assert len(receiver.requests) == 1

    def test_only_destinations_subscribed_to_the_kind_get_it(
        self, hook: Destination, receiver: Receiver, ada: Customer, django_capture_on_commit_callbacks: Any
    ) -> None:
        changed = Fact(
            kind=FactKind.TRAIT_CHANGED,
            customer_id=ada.pk,
            idempotency_key="trait:plan_tier:1",
            occurred_at=timezone.now(),
            data={"trait": {"key": "plan_tier", "name": "Plan tier"}, "old": "free", "new": "pro"},
        )
        assert emit(django_capture_on_commit_callbacks, changed) == 0
        assert receiver.requests == []

    def test_a_customer_that_no_longer_exists_is_skipped(
        self, hook: Destination, receiver: Receiver, ada: Customer, django_capture_on_commit_callbacks: Any
    ) -> None:
        gone = Fact(
            kind=FactKind.AUDIENCE_EXITED,
            customer_id=ada.pk + 1000,
            idempotency_key="audience:12:exited:gone",
            occurred_at=timezone.now(),
            data={"audience": {"id": 12, "key": "power_users", "name": "Power users"}},
        )
        emit(django_capture_on_commit_callbacks, gone)
        delivery = DestinationDelivery.objects.get()
        assert (delivery.status, delivery.customer_id) == (Status.SKIPPED, None)
        assert "no longer exists" in delivery.last_error

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"kind": "coupon_used"}, "Unknown outbound kind"),
            ({"idempotency_key": ""}, "idempotency key"),
            ({"idempotency_key": "k" * 91}, "idempotency key"),
            ({"occurred_at": datetime(2026, 11, 24, 9, 30)}, "timezone-aware"),
        ],
    )
    def test_malformed_messages_are_refused(
        self, hook: Destination, ada: Customer, change: dict[str, Any], message: str
    ) -> None:
        good = entered(ada)
        with pytest.raises(ValueError, match=message):
            outbound_emit([Fact(**{**good.__dict__, **change})])
        assert not DestinationDelivery.objects.exists()


@pytest.mark.django_db
def test_emitting_costs_the_same_few_queries_for_5_or_300_messages(
    receiver: Receiver, django_assert_max_num_queries: Any
) -> None:
    destination_create(name="Hook", kind="webhook", url=receiver.url, kinds=["audience_entered", "trait_changed"])
    destination_create(name="Segment", kind="segment", url=receiver.url, kinds=["audience_entered"], write_key="wk")
    destination_create(name="Billing only", kind="webhook", url=receiver.url, kinds=["billing_event"])
    people = [Customer.objects.create(user_id=f"usr_{n}" if n % 2 else None) for n in range(30)]
    for person in people[::2]:
        AnonymousId.objects.create(anonymous_id=f"anon-{person.pk}", customer=person)

    def inserts_allowed(rows: int) -> int:
        """One INSERT on PostgreSQL; SQLite's 999-variable limit makes Django split it into chunks."""
        if connection.vendor == "postgresql":
            return 1
        columns = [f for f in DestinationDelivery._meta.concrete_fields if not f.primary_key]
        return math.ceil(rows / connection.ops.bulk_batch_size(columns, [None] * rows))

    reads = []
    for count, offset in [(5, 0), (300, 1000)]:
        messages = [entered(people[n % 30], audience_id=offset + n) for n in range(count)]
        with (
            CaptureQueriesContext(connection) as queries,
            django_assert_max_num_queries(4 + inserts_allowed(2 * count)),
        ):
            assert outbound_emit(messages) == 2 * count
        reads.append([q["sql"] for q in queries if not q["sql"].startswith("INSERT")])
    assert len(reads[0]) == len(reads[1]) == 4  # destinations, customers, anonymous ids, known keys
    assert DestinationDelivery.objects.count() == 610
    assert not DestinationDelivery.objects.filter(status=Status.SKIPPED).exists()


@pytest.mark.django_db
def test_stripe_lifecycle_events_go_out_as_billing_events(
    hook: Destination, receiver: Receiver, ada: Customer, django_capture_on_commit_callbacks: Any
) -> None:
    sp.reset_ids()
    t0 = 1_790_000_000
    price = sp.price("price_starter_m", product="prod_starter", unit_amount=2900, nickname="Starter monthly")
    trialing = sp.subscription(
        "sub_1", customer="cus_ada", items=[(price, 1)], status="trialing", created=t0, item_ids=["si_1"]
    )
    created = sp.event("customer.subscription.created", trialing, created=t0 + 60, id="evt_sub_created")
    with django_capture_on_commit_callbacks(execute=True):
        stripe_event_apply(sp.event("customer.created", sp.customer("cus_ada", email="ada@acme.test"), created=t0))
        stripe_event_apply(sp.event("product.created", sp.product("prod_starter", name="Starter"), created=t0))
        stripe_event_apply(sp.event("price.created", price, created=t0))
        stripe_event_apply(created)
        stripe_event_apply(created)  # a redelivered event tells nothing twice

    delivery = DestinationDelivery.objects.get(idempotency_key="billing:evt_sub_created:0")
    assert (delivery.kind, delivery.customer_id, delivery.status) == ("billing_event", ada.pk, Status.DELIVERED)
    sent = receiver.requests[-1].json()
    assert sent["kind"] == "billing_event"
    assert sent["data"]["event"] == "Trial Started"
    assert sent["data"]["properties"]["stripe_event_id"] == "evt_sub_created"
    assert sent["customer"] == {"id": ada.pk, "user_id": "usr_ada", "email": "ada@acme.test"}
    assert DestinationDelivery.objects.filter(kind="billing_event").count() == len(receiver.requests)
