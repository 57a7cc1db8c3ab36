"""Hypothesis against the Stripe webhook (`POST /webhooks/stripe/`, docs/billing.md).

Correctly signed events with random types, missing or wrong-typed fields and unknown objects are stored and
processed (200), accepted and ignored when their type is not handled (200, nothing stored), or refused with a
documented 400, never a 500, and a good event delivered after each one is still processed. Unsigned, badly
signed, stale and future-dated deliveries are refused with 400 and store nothing. `FUZZ_EXAMPLES`
raises the number of examples (see docs/security.md).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import orjson
import pytest
from django.test import Client, TestCase
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.stripe.apply import HANDLED_TYPES
from integrations.stripe.event_models import StripeEvent, StripeWebhookDelivery
from integrations.stripe.models import Product
from integrations.tests import stripe_payloads as sp
from integrations.tests.test_fuzz_tracking import HANG_SECONDS, answered_within

pytestmark = pytest.mark.django_db

SECRET = "whsec_fuzz"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
FUZZ = settings(
    max_examples=EXAMPLES * 8,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
OBJECT_KINDS = ["customer", "subscription", "invoice", "charge", "product", "price", "coupon", "dispute", "plan"]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=10,
)
ids = st.text(max_size=300) | st.from_regex(r"\A(cus|sub|in|ch|prod|price|evt)_[A-Za-z0-9]{1,20}\Z") | json_values
stripe_objects = st.fixed_dictionaries(
    {"object": st.sampled_from(OBJECT_KINDS) | json_values},
    optional={
        "id": ids,
        "customer": ids | st.fixed_dictionaries({"id": ids}),
        "email": st.emails() | json_values,
        "name": json_values,
        "status": st.sampled_from(["trialing", "active", "past_due", "canceled", "paid", "succeeded"]) | json_values,
        "created": st.integers(min_value=-(2**40), max_value=2**40) | json_values,
        "items": st.fixed_dictionaries({"data": st.lists(json_values, max_size=2)}) | json_values,
        "amount": json_values,
        "currency": json_values,
        "metadata": json_values,
        "product": ids,
        "subscription": ids,
        "lines": json_values,
        "trial_end": json_values,
        "current_period_end": json_values,
        "deleted": json_values,
    },
)
events = st.fixed_dictionaries(
    {},
    optional={
        "object": st.just("event") | json_values,
        "id": ids,
        "type": st.sampled_from(sorted(HANDLED_TYPES)) | st.text(max_size=40) | json_values,
        "created": st.integers(min_value=-(2**63), max_value=2**63) | st.floats() | st.text(max_size=12) | json_values,
        "data": st.fixed_dictionaries({"object": stripe_objects}, optional={"previous_attributes": json_values})
        | json_values,
        "livemode": json_values,
    },
)
# Most examples should reach storage and processing, so most carry the keys the endpoint checks first.
likely_events = events.map(lambda event: {"object": "event", **event}) | events


def deliver(body: bytes, header: str | None) -> Any:
    extra = {"HTTP_STRIPE_SIGNATURE": header} if header is not None else {}
    with answered_within(HANG_SECONDS), TestCase.captureOnCommitCallbacks(execute=True):
        return Client().post("/webhooks/stripe/", data=body, content_type="application/json", **extra)  # type: ignore[arg-type]


def assert_documented(response: Any) -> dict[str, Any]:
    """docs/billing.md: 200 `{"received", "event", "duplicate", "ignored"}` (+ `reason` when ignored), else 400
    `{"error"}`."""
    assert response.status_code in (200, 400), (response.status_code, response.content[:300])
    answer: dict[str, Any] = orjson.loads(response.content)
    if response.status_code == 200:
        assert answer["received"] is True
        assert answer["ignored"] is ("reason" in answer)
    else:
        assert isinstance(answer["error"], str) and answer["error"]
    return answer


def good_event_is_processed() -> None:
    """A well-formed catalogue event right after a fuzzed one is still applied."""
    product_id = f"prod_{uuid.uuid4().hex[:12]}"
    event = sp.event("product.created", sp.product(product_id, name="Fuzz plan"), created=int(time.time()))
    response = deliver(*sp.signed(event, SECRET))
    assert response.status_code == 200, response.content
    assert StripeEvent.objects.get(event_id=event["id"]).status == StripeEvent.Status.PROCESSED
    assert Product.objects.filter(stripe_product_id=product_id).exists()


@pytest.fixture(autouse=True)
def webhook_settings(settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRETS = [SECRET]
    settings.STRIPE_API_KEY = ""
    # A crash surfaces as the exception with its traceback rather than as a bare 500.
    settings.DEBUG_PROPAGATE_EXCEPTIONS = True
    sp.reset_ids()


def test_signed_malformed_events_never_break_the_endpoint_or_later_events() -> None:
    @FUZZ
    @given(event=likely_events | json_values)
    def accepted_or_refused(event: Any) -> None:
        body = json.dumps(event).encode()
        response = deliver(*sp.signed(body, SECRET))
        answer = assert_documented(response)
        if response.status_code == 200 and answer["ignored"]:
            assert event["type"] not in HANDLED_TYPES
            assert not StripeEvent.objects.filter(event_id=answer["event"]).exists()
        elif response.status_code == 200:
            stored = StripeEvent.objects.get(event_id=answer["event"])
            assert stored.status in {
                StripeEvent.Status.PROCESSED,
                StripeEvent.Status.IGNORED,
                StripeEvent.Status.WAITING,
                StripeEvent.Status.FAILED,
            }
        good_event_is_processed()

    accepted_or_refused()


def test_unsigned_or_badly_signed_deliveries_store_nothing() -> None:
    @FUZZ
    @given(
        event=likely_events,
        signature=st.sampled_from(["missing", "wrong-secret", "stale", "future", "garbage", "tampered"]),
        garbage=st.text(max_size=80),
    )
    def refused(event: dict[str, Any], signature: str, garbage: str) -> None:
        body = json.dumps(event).encode()
        header: str | None
        if signature == "missing":
            header = None
        elif signature == "wrong-secret":
            header = sp.sign(body, "whsec_other")
        elif signature == "stale":
            header = sp.sign(body, SECRET, int(time.time()) - 3600)
        elif signature == "future":
            header = sp.sign(body, SECRET, int(time.time()) + 3600)
        elif signature == "garbage":
            header = garbage.replace("\n", " ").replace("\r", " ")
        else:
            header = sp.sign(body + b" ", SECRET)
        events_before = StripeEvent.objects.count()
        response = deliver(body, header)
        assert response.status_code == 400, response.content
        assert_documented(response)
        assert StripeEvent.objects.count() == events_before
        assert StripeWebhookDelivery.objects.order_by("-pk").values_list("signature_valid", flat=True)[0] is False

    refused()
