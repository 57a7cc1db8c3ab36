"""Writes on sources and profiles. Views, API, commands and tasks all come through here."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audiences.models import Customer, Source
from config.audit import audit_record
from config.models import AuditEntry

WRITE_KEY_BYTES = 24
# Marks a write key wherever it leaks (a log line, a paste, a repository), so redaction and secret scanners
# recognise it; keys made before the prefix existed keep working.
WRITE_KEY_PREFIX = "tlwk_"
# How much of a key the lists show to tell keys apart: the prefix and 7 random characters.
WRITE_KEY_SHOWN = len(WRITE_KEY_PREFIX) + 7
SECRET_KEY_BYTES = 32
SECRET_KEY_PREFIX = "tlsk_"
"""Secret keys start with this, so they are recognisable in a config file, and the log filter redacts them."""

SECRET_KEY_OVERLAP = timedelta(hours=24)
"""After a rotation the previous secret key keeps working this long (as destinations' signing secrets do), so the
product can deploy the new key without refused calls."""

MAX_FRAME_ANCESTORS = 20
_HOST = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def key_digest(key: str) -> str:
    """SHA-256 of a write key or secret key: what is stored and looked up (keys are random, so no salt is
    needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def _new_write_key() -> str:
    return WRITE_KEY_PREFIX + secrets.token_urlsafe(WRITE_KEY_BYTES)


def _new_secret_key() -> str:
    return SECRET_KEY_PREFIX + secrets.token_urlsafe(SECRET_KEY_BYTES)


def auth_hash(secret_key: str, user_id: str) -> str:
    """HMAC-SHA256 of a customer's user id under a source's secret key, as lower-case hex: what the product's
    server computes to let the customer's browser start a cancellation session (docs/offers.md)."""
    return hmac.new(secret_key.encode(), user_id.encode(), hashlib.sha256).hexdigest()


INTERNAL_SOURCE_NAME = "Trialloop"


def internal_source() -> Source:
    """The built-in source Trialloop's own timeline events are recorded under (its key is never used): audience
    entries and exits, offers' and in-app prompts' events — whichever layer records them, the source is a profile's."""
    source = Source.objects.filter(kind=Source.Kind.TRIALLOOP).order_by("pk").only("pk").first()
    if source is None:
        taken = Source.objects.filter(name=INTERNAL_SOURCE_NAME).exists()
        name = f"{INTERNAL_SOURCE_NAME} (internal)" if taken else INTERNAL_SOURCE_NAME
        source, _ = source_create(name=name, kind=Source.Kind.TRIALLOOP)
    return source


@transaction.atomic
def source_create(*, name: str, kind: str = Source.Kind.TRACKING_API) -> tuple[Source, str]:
    """Create a source and return it with its write key — the only time the key is available in clear.

    The source gets its secret key too (`source.secret_key`): the caller shows it once, like the write key.
    """
    write_key = _new_write_key()
    secret_key = _new_secret_key()
    source = Source.objects.create(
        name=name.strip(),
        kind=kind,
        write_key_hash=key_digest(write_key),
        write_key_prefix=write_key[:WRITE_KEY_SHOWN],
        secret_key=secret_key,
        secret_key_digest=key_digest(secret_key),
        secret_key_prefix=secret_key[:10],
    )
    return source, write_key


@transaction.atomic
def source_rotate_key(*, source: Source) -> str:
    """Replace a source's write key; the old key stops working at once. Returns the new key."""
    write_key = _new_write_key()
    source.write_key_hash = key_digest(write_key)
    source.write_key_prefix = write_key[:WRITE_KEY_SHOWN]
    source.key_rotated_at = timezone.now()
    source.save(update_fields=["write_key_hash", "write_key_prefix", "key_rotated_at", "updated_at"])
    return write_key


@transaction.atomic
def source_rotate_secret(*, source: Source, now: datetime | None = None) -> str:
    """Replace a source's secret key → the new key. The previous one keeps working for SECRET_KEY_OVERLAP (a
    second rotation within that window retires the first key at once: only one previous key is kept)."""
    secret_key = _new_secret_key()
    source.previous_secret_key, source.previous_secret_key_digest = source.secret_key, source.secret_key_digest
    source.secret_key, source.secret_key_digest = secret_key, key_digest(secret_key)
    source.secret_key_prefix = secret_key[:10]
    source.secret_rotated_at = now or timezone.now()
    source.save(
        update_fields=[
            "secret_key",
            "secret_key_digest",
            "secret_key_prefix",
            "previous_secret_key",
            "previous_secret_key_digest",
            "secret_rotated_at",
            "updated_at",
        ]
    )
    return secret_key


def frame_ancestors_clean(values: Iterable[str]) -> list[str]:
    """The origins allowed to embed the hosted cancellation page, checked and normalised: each is `'self'` or
    an https origin (`https://host` or `https://host:port`: no path, query, credentials or wildcard), lower-case,
    without duplicates, at most MAX_FRAME_ANCESTORS. Raises ValidationError naming the first bad entry."""
    cleaned: list[str] = []
    for raw in values:
        value = str(raw).strip()
        if not value:
            continue
        origin = "'self'" if value.lower() in ("'self'", "self") else _https_origin(value)
        if origin not in cleaned:
            cleaned.append(origin)
    if len(cleaned) > MAX_FRAME_ANCESTORS:
        raise ValidationError(f"At most {MAX_FRAME_ANCESTORS} origins.")
    return cleaned


def _https_origin(value: str) -> str:
    problem = f"“{value[:100]}” is not an https origin (https://app.example.com) or 'self'."
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as bad:
        raise ValidationError(problem) from bad
    host = parts.hostname or ""
    if (
        parts.scheme.lower() != "https"
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
        or not _HOST.match(host)
    ):
        raise ValidationError(problem)
    return f"https://{host}" + (f":{port}" if port is not None else "")


@transaction.atomic
def source_cancel_page_frame_ancestors_set(*, source: Source, origins: Iterable[str]) -> Source:
    """Set who may embed the hosted cancellation page of the sessions this source starts (checked by
    frame_ancestors_clean; ValidationError when an origin is not acceptable, nothing saved)."""
    source.cancel_page_frame_ancestors = frame_ancestors_clean(origins)
    source.save(update_fields=["cancel_page_frame_ancestors", "updated_at"])
    return source


def customer_test_flag_set(*, customer: Customer, is_test: bool) -> bool:
    """Mark a customer as a test customer or a real one (the customer page's switch). A test customer's
    cancellation flow runs in test mode — segment drafts apply, offers are simulated, nothing reaches Stripe — and
    its sessions are left out of the reports, so who flipped the flag goes into the audit log (customers are not
    configuration, which the signal-driven log records by itself). Returns whether anything changed."""
    if customer.is_test == is_test:
        return False
    was = customer.is_test
    customer.is_test = is_test
    customer.save(update_fields=["is_test", "updated_at"])
    audit_record(
        model=Customer._meta.label,
        object_id=str(customer.pk),
        object_repr=str(customer)[:200],
        action=AuditEntry.Action.CHANGED,
        changes={"is_test": [was, is_test]},
    )
    return True
