"""Writes on destinations themselves: create and edit (settings checked, the URL for safety), rotate the signing
secret, pause and resume, and replay a delivery. What they send is built by integrations.destinations.emit."""

from __future__ import annotations

from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.facts import FactKind
from integrations.destinations.emit import flush_on_commit
from integrations.destinations.models import (
    Destination,
    DestinationDelivery,
    consent_category_validator,
    signing_secret_generate,
)
from integrations.destinations.outbound_http import UnsafeUrl, url_check
from integrations.destinations.payloads import SEGMENT_KINDS


class DestinationInvalid(ValueError):
    """A destination's settings cannot be saved; `field` names the setting at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


class ReplayRefused(ValueError):
    """Only delivered or failed deliveries are replayed (pending ones are on their way; skipped ones were
    withheld on purpose)."""


def kinds_check(*, kind: str, kinds: Sequence[str]) -> list[str]:
    """The subscribed kinds, de-duplicated, or DestinationInvalid naming what is wrong with them."""
    chosen = list(dict.fromkeys(kinds))
    unknown = [value for value in chosen if value not in FactKind.values]
    if unknown:
        raise DestinationInvalid("kinds", f"Unknown kinds: {', '.join(map(str, unknown))}.")
    if not chosen:
        raise DestinationInvalid("kinds", "Choose at least one kind of message.")
    if kind == Destination.Kind.SEGMENT:
        unmapped = [FactKind(value).label for value in chosen if value not in SEGMENT_KINDS]
        if unmapped:
            raise DestinationInvalid(
                "kinds",
                f"A Segment destination receives audience, trait and billing messages only, not {', '.join(unmapped)}.",
            )
    return chosen


def _settings_checked(*, kind: str, url: str, kinds: Sequence[str], consent_category: str, write_key: str) -> list[str]:
    if kind not in Destination.Kind.values:
        raise DestinationInvalid("kind", f"Unknown destination kind {kind!r}.")
    try:
        url_check(url)
    except UnsafeUrl as unsafe:
        raise DestinationInvalid("url", str(unsafe)) from unsafe
    try:
        consent_category_validator(consent_category)
    except ValidationError as invalid:
        raise DestinationInvalid("consent_category", " ".join(invalid.messages)) from invalid
    if kind == Destination.Kind.SEGMENT and not write_key:
        raise DestinationInvalid("write_key", "A Segment destination needs the write key of the receiving source.")
    return kinds_check(kind=kind, kinds=kinds)


def destination_create(
    *,
    name: str,
    kind: str,
    url: str,
    kinds: Sequence[str],
    consent_category: str = Destination.DEFAULT_CONSENT_CATEGORY,
    write_key: str = "",
) -> Destination:
    """Create a destination with a fresh signing secret, after checking its URL is safe to send to."""
    chosen = _settings_checked(kind=kind, url=url, kinds=kinds, consent_category=consent_category, write_key=write_key)
    try:
        with transaction.atomic():
            return Destination.objects.create(
                name=name.strip(),
                kind=kind,
                url=url.strip(),
                kinds=chosen,
                consent_category=consent_category,
                write_key=write_key if kind == Destination.Kind.SEGMENT else "",
            )
    except IntegrityError as taken:
        raise DestinationInvalid("name", "A destination with this name already exists.") from taken


def destination_update(
    *,
    destination: Destination,
    name: str,
    url: str,
    kinds: Sequence[str],
    consent_category: str,
    write_key: str = "",
) -> Destination:
    """Change a destination's settings; its kind stays (pending payloads are built for it). An empty
    `write_key` keeps the stored one. Deliveries already created keep the payload they were created with."""
    new_key = write_key or destination.write_key
    chosen = _settings_checked(
        kind=destination.kind, url=url, kinds=kinds, consent_category=consent_category, write_key=new_key
    )
    destination.name, destination.url, destination.kinds = name.strip(), url.strip(), chosen
    destination.consent_category = consent_category
    destination.write_key = new_key if destination.kind == Destination.Kind.SEGMENT else ""
    try:
        with transaction.atomic():
            destination.save()
    except IntegrityError as taken:
        raise DestinationInvalid("name", "A destination with this name already exists.") from taken
    return destination


def destination_rotate_secret(*, destination: Destination) -> str:
    """Replace the signing secret; the previous one keeps signing alongside for a while
    (integrations.destinations.payloads.PREVIOUS_SECRET_VALID_FOR)."""
    destination.previous_signing_secret = destination.signing_secret
    destination.signing_secret = signing_secret_generate()
    destination.secret_rotated_at = timezone.now()
    destination.save(update_fields=["signing_secret", "previous_signing_secret", "secret_rotated_at", "updated_at"])
    return destination.signing_secret


def destination_pause(*, destination: Destination) -> None:
    """Stop sending; deliveries keep being created and wait, pending, for the resume. Saved, not updated in bulk,
    so the audit log records who paused it."""
    destination.is_paused = True
    destination.save(update_fields=["is_paused", "updated_at"])


def destination_resume(*, destination: Destination) -> None:
    """Send again, starting with what waited while paused (after this transaction commits); audited like a pause."""
    destination.is_paused = False
    destination.save(update_fields=["is_paused", "updated_at"])
    flush_on_commit([destination.pk])


def destination_delivery_replay(*, delivery: DestinationDelivery) -> None:
    """Send a delivered or failed delivery again, with its original payload and idempotency key."""
    replayed = DestinationDelivery.objects.filter(
        pk=delivery.pk, status__in=[DestinationDelivery.Status.DELIVERED, DestinationDelivery.Status.FAILED]
    ).update(status=DestinationDelivery.Status.PENDING, attempts=0, next_attempt_at=timezone.now())
    if not replayed:
        status = DestinationDelivery.objects.filter(pk=delivery.pk).values_list("status", flat=True).first()
        now_is = DestinationDelivery.Status(status).label.lower() if status else "gone"
        raise ReplayRefused(f"Only delivered or failed deliveries can be replayed; this one is {now_is}.")
    flush_on_commit([delivery.destination_id])
