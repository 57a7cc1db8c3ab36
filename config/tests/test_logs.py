"""No personal data or secret in the logs: the flows that touch them are run with logging at DEBUG into the
project's own console handler, and its output is searched for the emails and keys they handled."""

from __future__ import annotations

import base64
import io
import json
import logging
import smtplib
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audiences.models import Customer
from audiences.services import source_create, source_rotate_secret
from config.log_redaction import RedactingFilter, redact
from integrations.stripe.models import Plan, Product, Subscription
from offers.models import CancellationFlow, FlowRule, SessionToken

EMAIL = "ada.private@example.com"
LEGACY_KEY = "Zm9vYmFyYmF6cXV4cXV1eDEyMzQ1Njc4"  # a write key from before keys had a prefix: random text
SIGNATURE = "t=1700000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"


@pytest.fixture
def console_output() -> Iterator[io.StringIO]:
    """Everything the project's console handler writes while the test runs, with every logger at DEBUG."""
    root = logging.getLogger()
    handler = next(h for h in root.handlers if h.get_name() == "console")
    assert isinstance(handler, logging.StreamHandler)
    assert any(isinstance(f, RedactingFilter) for f in handler.filters), "the console handler redacts"
    buffer = io.StringIO()
    previous_stream, previous_level = handler.setStream(buffer), root.level
    root.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        handler.setStream(previous_stream)
        root.setLevel(previous_level)


@pytest.mark.django_db
def test_tracking_sign_in_and_failures_leave_no_email_or_key_in_the_logs(console_output: io.StringIO) -> None:
    _, write_key = source_create(name="Web")
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    client = Client()
    batch = [
        {"type": "identify", "userId": "usr_ada", "traits": {"email": EMAIL, "name": "Ada Private"}},
        {"type": "track", "userId": "usr_ada", "event": "x" * 300, "properties": {"email": EMAIL}},
    ]
    client.post("/v1/batch", json.dumps({"batch": batch}), content_type="application/json", HTTP_AUTHORIZATION=auth)
    client.post("/v1/batch", "{not json " + EMAIL, content_type="application/json", HTTP_AUTHORIZATION=auth)
    # analytics.js also puts the write key in the body and the query string.
    client.post(f"/v1/track?writeKey={write_key}", json.dumps({"writeKey": write_key}), content_type="text/plain")
    client.post(reverse("login"), {"username": EMAIL, "password": "wrong-" + write_key})
    client.get(f"/cancel/{write_key}/")

    # An exception whose text we do not control: an SMTP server refusing the recipient.
    try:
        raise smtplib.SMTPRecipientsRefused({EMAIL: (550, b"5.1.1 unknown user")})
    except smtplib.SMTPRecipientsRefused:
        logging.getLogger("trials.messaging.delivery").exception("lifecycle email 7 attempt 1 failed")
    logging.getLogger("integrations").warning("signing with %s for %s", "tlsec_" + "A" * 40, EMAIL)
    # What a library may log about a request it made or received: the URL, the headers, the body.
    logging.getLogger("urllib3.connectionpool").debug('"POST /v1/batch?write_key=%s HTTP/1.1" 200', LEGACY_KEY)
    logging.getLogger("stripe").info("headers %s", {"Authorization": auth, "Stripe-Signature": SIGNATURE})
    logging.getLogger("offers").info("session body %s", json.dumps({"secret_key": "tlsk_" + "B" * 30}))

    output = console_output.getvalue()
    assert "lifecycle email 7 attempt 1 failed" in output, "the flows did log"
    assert EMAIL not in output
    assert write_key not in output and LEGACY_KEY not in output and auth.split()[1] not in output
    assert "tlsec_AAAA" not in output and "tlsk_BBBB" not in output and SIGNATURE.split("v1=")[1] not in output
    assert "[email]" in output and "[secret]" in output


@pytest.mark.django_db
def test_cancellation_session_proof_leaves_no_secret_key_or_session_token_in_the_logs(
    console_output: io.StringIO,
) -> None:
    source, write_key = source_create(name="Web")
    secret_key = source.secret_key
    customer = Customer.objects.create(user_id="usr_ada", email=EMAIL, is_test=True)
    plan = Plan.objects.create(product=Product.objects.create(name="Team"), name="Team monthly", amount_cents=4900)
    Subscription.objects.create(customer=customer, plan=plan, status="active", started_at=timezone.now())
    flow = CancellationFlow.objects.create(name="Standard", is_draft=False)
    FlowRule.objects.create(flow=flow, position=1, is_draft=False)
    sessions = "/api/v1/cancellation-sessions/"
    client = Client()

    started = client.post(
        sessions, {"user_id": "usr_ada"}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret_key}"
    ).json()
    token, hosted = started["session_token"], urlsplit(started["hosted_url"]).path
    basic = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    wrong = client.post(
        sessions,
        {"user_id": "usr_ada", "auth_hash": "0" * 64},
        content_type="application/json",
        HTTP_AUTHORIZATION=basic,
    )
    assert wrong.status_code == 403
    assert client.get(hosted.replace(token, token[:-4] + "AAAA")).status_code == 404  # logged "Not Found: <path>"
    SessionToken.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    assert client.get(hosted).status_code == 403  # logged "Forbidden: <path>"
    assert client.get(f"{sessions}{started['token']}/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    rotated = source_rotate_secret(source=source)
    logging.getLogger("offers").warning("a key went astray: %s %s %s", secret_key, rotated, token)

    output = console_output.getvalue()
    assert "Forbidden" in output and "Not Found" in output, "the refusals were logged"
    for secret in (secret_key, rotated, token, token[:-4] + "AAAA"):
        assert secret not in output
    assert "/cancel/[secret]/" in output and "a key went astray: [secret] [secret] [secret]" in output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("refused ada@example.com and b.o+b@mail.example.co.uk", "refused [email] and [email]"),
        ("key sk_test_51Habcdefghij and whsec_abcdefghij1234", "key [secret] and [secret]"),
        ("signing with whsec_ab+cdef/ghij1234+klm/nop== now", "signing with [secret] now"),
        ("secret tlsk_Ab-c_d3fGhIjK and GET /cancel/tlst_Zy-x_w9vUtSr/", "secret [secret] and GET /cancel/[secret]/"),
        ("customer 42 entered audience power_users", "customer 42 entered audience power_users"),
        ("new keys tlwk_abcdefghijk and tlsk_abcdefghijk", "new keys [secret] and [secret]"),
        ("POST /v1/t?writeKey=abc123&sentAt=1 HTTP/1.1", "POST /v1/t?writeKey=[secret]&sentAt=1 HTTP/1.1"),
        (
            "/x?write_key=a;key=b&token=c&session_token=d&authHash=e",
            "/x?write_key=[secret];key=[secret]&token=[secret]&session_token=[secret]&authHash=[secret]",
        ),
        ("monkey=banana&page=2&next=/customers/", "monkey=banana&page=2&next=/customers/"),
        ('{"writeKey": "abc", "event": "Signed Up"}', '{"writeKey": "[secret]", "event": "Signed Up"}'),
        ("{'Authorization': 'Token 0123456789abcdef0123'}", "{'Authorization': '[secret]'}"),
        ("sent Authorization: Basic Zm9vYmFyOmJheg== ok", "sent Authorization: Basic [secret] ok"),
        ("Stripe-Signature: t=1700000000,v1=5257a869e7ecebeda32a", "Stripe-Signature: t=1700000000,v1=[secret]"),
        ("Not Found: /cancel/Ijk5Ig:1vAbCd:xyz/", "Not Found: /cancel/[secret]/"),
        (
            "GET /emails/unsubscribe/MTIz:1abc:def/ and /api/v1/cancellation-sessions/AbCdEf0123456789/reason/",
            "GET /emails/unsubscribe/[secret]/ and /api/v1/cancellation-sessions/[secret]/reason/",
        ),
    ],
)
def test_redaction(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_a_malformed_log_call_passes_the_filter_unchanged() -> None:
    # logging's handlers report a format/argument mismatch themselves; the filter must not raise it into the
    # request or task that logged.
    record = logging.LogRecord("trialloop.test", logging.WARNING, __file__, 1, "two values %s %s", ("one",), None)
    assert RedactingFilter().filter(record) is True
    assert (record.msg, record.args) == ("two values %s %s", ("one",))
