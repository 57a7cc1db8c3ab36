"""What a destination is sent: the signed webhook body and its Standard Webhooks headers, or the identify/track
calls a Segment-compatible API takes (and the batch endpoint they go to). Pure functions of a fact."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from standardwebhooks.webhooks import Webhook

from audiences.models import Customer
from config.facts import Fact, FactKind
from integrations.destinations.models import Destination

# Standard Webhooks (https://www.standardwebhooks.com): the message id (our idempotency key, the same on every
# retry), the Unix time of this attempt, and one `v1,<base64 HMAC-SHA256>` per signing secret.
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
USER_AGENT = "Trialloop-Destinations/1"
PAYLOAD_VERSION = 1
# After a rotation, webhooks carry a signature with the previous secret too, for this long.
PREVIOUS_SECRET_VALID_FOR = timedelta(hours=24)

# Segment's HTTP API limits: 32 KB per call, 500 KB per batch request; we send at most 100 calls per batch.
SEGMENT_BATCH_CALLS = 100
SEGMENT_BATCH_BYTES = 500 * 1000
SEGMENT_CALL_BYTES = 32 * 1024
SEGMENT_LIBRARY = {"name": "trialloop", "version": "1"}
SEGMENT_KINDS = frozenset(
    {
        FactKind.AUDIENCE_ENTERED,
        FactKind.AUDIENCE_EXITED,
        FactKind.TRAIT_CHANGED,
        FactKind.BILLING_EVENT,
    }
)


def webhook_signature(secrets: Sequence[str], message_id: str, body: bytes, moment: datetime) -> str:
    """The `webhook-signature` header: `v1,<signature>` per secret (two after a rotation), space-separated."""
    return " ".join(Webhook(secret).sign(message_id, moment, body.decode()) for secret in secrets)


def signing_secrets(destination: Destination, now: datetime) -> list[str]:
    secrets = [destination.signing_secret]
    rotated = destination.secret_rotated_at
    if destination.previous_signing_secret and rotated and now - rotated < PREVIOUS_SECRET_VALID_FOR:
        secrets.append(destination.previous_signing_secret)
    return secrets


def _jsonable(value: Any) -> Any:
    """Plain JSON types only (datetimes as ISO 8601, decimals as strings), as the JSON column will hold them."""
    return orjson.loads(orjson.dumps(value, default=str))


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _customer_summary(customer_id: int, customer: Customer | None) -> dict[str, Any]:
    return {
        "id": customer_id,
        "user_id": customer.user_id if customer else None,
        "email": (customer.email or None) if customer else None,
    }


def webhook_payload(message: Fact, customer: Customer | None) -> dict[str, Any]:
    """The JSON body of a webhook: what happened, to whom, when, and the kind-specific data."""
    return {
        "version": PAYLOAD_VERSION,
        "kind": message.kind,
        "idempotency_key": message.idempotency_key,
        "occurred_at": _iso(message.occurred_at),
        "customer": _customer_summary(message.customer_id, customer),
        "data": _jsonable(message.data),
    }


def _field(data: dict[str, Any], *path: str) -> Any:
    value: Any = data
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise ValueError(f"Fact data lacks {'.'.join(path)}: {data!r}")
        value = value[key]
    return value


def segment_calls(message: Fact, ids: dict[str, str]) -> list[dict[str, Any]]:
    """The identify/track calls Segment Engage would send for this message.

    Audience entered/exited: identify `{audience_key: true|false}` and track "Audience Entered"/"Audience
    Exited" with `{audience_key, audience_name}`; trait changed: identify `{trait_key: new}`; billing event:
    track with its name and properties. The track (or the only call) has the idempotency key as messageId;
    the identify accompanying an audience track has the key plus ":identify", so the receiver keeps both.
    """
    common = {**ids, "timestamp": _iso(message.occurred_at), "context": {"library": SEGMENT_LIBRARY}}
    key = message.idempotency_key
    if message.kind in (FactKind.AUDIENCE_ENTERED, FactKind.AUDIENCE_EXITED):
        audience_key = str(_field(message.data, "audience", "key"))
        entered = message.kind == FactKind.AUDIENCE_ENTERED
        context = {
            "library": SEGMENT_LIBRARY,
            "personas": {
                "computation_class": "audience",
                "computation_key": audience_key,
                "computation_id": str(_field(message.data, "audience", "id")),
            },
        }
        return [
            {**common, "context": context, "type": "identify", "messageId": f"{key}:identify",
             "traits": {audience_key: entered}},
            {**common, "context": context, "type": "track", "messageId": key,
             "event": "Audience Entered" if entered else "Audience Exited",
             "properties": {"audience_key": audience_key,
                            "audience_name": str(_field(message.data, "audience", "name"))}},
        ]  # fmt: skip
    if message.kind == FactKind.TRAIT_CHANGED:
        trait_key = str(_field(message.data, "trait", "key"))
        new = _jsonable(message.data.get("new"))
        return [{**common, "type": "identify", "messageId": key, "traits": {trait_key: new}}]
    if message.kind == FactKind.BILLING_EVENT:
        properties = _jsonable(message.data.get("properties") or {})
        return [{**common, "type": "track", "messageId": key, "event": str(_field(message.data, "event")),
                 "properties": properties}]  # fmt: skip
    raise ValueError(f"Segment destinations do not forward {message.kind!r} messages.")


def segment_batch_url(url: str) -> str:
    """The `/v1/batch` endpoint of a Segment-compatible API, from its base URL (or the endpoint itself)."""
    base = url.strip().rstrip("/")
    return base if base.endswith("/v1/batch") else f"{base}/v1/batch"
