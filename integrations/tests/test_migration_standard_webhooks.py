"""Migration integrations.0011 on a populated database: each destination's signing secret (and the previous one
still signing after a rotation) becomes its Standard Webhooks form with the same key bytes, so a receiver that
kept the old secret computes the new form itself; going back restores the old text."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from config.tests.migrating import migrate_to

BEFORE = [("integrations", "0010_stripe_delivery_signature_not_stored")]
AFTER = [("integrations", "0011_standard_webhooks_secrets")]
OLD, PREVIOUS = "tlsec_" + "k" * 43, "tlsec_" + "p" * 43


def _old_scheme_key_signs_like(secret: str, text_key: str) -> bool:
    """The new secret's Standard Webhooks signature is the HMAC keyed with the old secret's text."""
    moment, body = datetime(2026, 12, 1, tzinfo=UTC), '{"kind": "audience_entered"}'
    signed = f"audience:1:entered:2.{int(moment.timestamp())}.{body}".encode()
    expected = base64.b64encode(hmac.new(text_key.encode(), signed, hashlib.sha256).digest()).decode()
    return Webhook(secret).sign("audience:1:entered:2", moment, body) == f"v1,{expected}"


@pytest.mark.django_db(transaction=True)
def test_existing_secrets_become_whsec_with_the_same_key_bytes_and_back() -> None:
    Destination = migrate_to(BEFORE).get_model("integrations", "Destination")
    rotated = Destination.objects.create(
        name="Rotated",
        kind="webhook",
        url="https://hooks.example.com/a",
        kinds=[],
        signing_secret=OLD,
        previous_signing_secret=PREVIOUS,
    )
    # Made by today's default: already in the Standard Webhooks form.
    fresh = Destination.objects.create(name="Fresh", kind="webhook", url="https://hooks.example.com/b", kinds=[])

    Destination = migrate_to(AFTER).get_model("integrations", "Destination")
    after = Destination.objects.get(pk=rotated.pk)
    assert after.signing_secret == "whsec_" + base64.b64encode(OLD.encode()).decode()
    assert _old_scheme_key_signs_like(after.signing_secret, OLD)
    assert _old_scheme_key_signs_like(after.previous_signing_secret, PREVIOUS)
    fresh_after = Destination.objects.get(pk=fresh.pk)
    assert (fresh_after.signing_secret, fresh_after.previous_signing_secret) == (fresh.signing_secret, "")

    Destination = migrate_to(BEFORE).get_model("integrations", "Destination")
    assert Destination.objects.get(pk=rotated.pk).signing_secret == OLD
    assert Destination.objects.get(pk=rotated.pk).previous_signing_secret == PREVIOUS
    assert Destination.objects.get(pk=fresh.pk).signing_secret == fresh.signing_secret
    migrate_to()
