"""Writes on sources and profiles. Views, API, commands and tasks all come through here."""

from __future__ import annotations

import hashlib
import secrets

from django.db import transaction
from django.utils import timezone

from audiences.models import Source

WRITE_KEY_BYTES = 24
# Marks a write key wherever it leaks (a log line, a paste, a repository), so redaction and secret scanners
# recognise it; keys made before the prefix existed keep working.
WRITE_KEY_PREFIX = "tlwk_"
# How much of a key the lists show to tell keys apart: the prefix and 7 random characters.
WRITE_KEY_SHOWN = len(WRITE_KEY_PREFIX) + 7


def write_key_digest(write_key: str) -> str:
    """SHA-256 of a write key: what is stored and looked up (keys are random, so no salt is needed)."""
    return hashlib.sha256(write_key.encode()).hexdigest()


def _new_write_key() -> str:
    return WRITE_KEY_PREFIX + secrets.token_urlsafe(WRITE_KEY_BYTES)


@transaction.atomic
def source_create(*, name: str, kind: str = Source.Kind.TRACKING_API) -> tuple[Source, str]:
    """Create a source and return it with its write key — the only time the key is available in clear."""
    write_key = _new_write_key()
    source = Source.objects.create(
        name=name.strip(),
        kind=kind,
        write_key_hash=write_key_digest(write_key),
        write_key_prefix=write_key[:WRITE_KEY_SHOWN],
    )
    return source, write_key


@transaction.atomic
def source_rotate_key(*, source: Source) -> str:
    """Replace a source's write key; the old key stops working at once. Returns the new key."""
    write_key = _new_write_key()
    source.write_key_hash = write_key_digest(write_key)
    source.write_key_prefix = write_key[:WRITE_KEY_SHOWN]
    source.key_rotated_at = timezone.now()
    source.save(update_fields=["write_key_hash", "write_key_prefix", "key_rotated_at", "updated_at"])
    return write_key
