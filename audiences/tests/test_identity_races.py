"""Issue 18: concurrent batches that join the same ids end as the batches would one after the other — one profile.

Real threads, each with its own database connection, on PostgreSQL (SQLite's IMMEDIATE transactions run one batch
at a time, so there is no race to lose there). Each race is repeated: a lost race shows within a few rounds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection, connections
from django.db.models import Q
from django.utils import timezone

from audiences.ingestion import IncomingMessage, messages_ingest
from audiences.models import Customer, Source

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite serialises write transactions"),
    pytest.mark.django_db(transaction=True),
]
ROUNDS = 25


def call(
    kind: str, *, user_id: str | None = None, anonymous_id: str | None = None, previous_id: str | None = None
) -> IncomingMessage:
    now = timezone.now()
    return IncomingMessage(
        type=kind,
        message_id=f"{kind}-{user_id}-{anonymous_id}-{previous_id}",
        user_id=user_id,
        anonymous_id=anonymous_id,
        previous_id=previous_id,
        name="Opened" if kind == "track" else "",
        properties={},
        context={},
        timestamp=now,
        received_at=now,
    )


def race(source: Source, *batches: list[IncomingMessage]) -> None:
    """Store each batch from its own thread, all released at the same moment; fail on any error."""
    start = threading.Barrier(len(batches))
    errors: list[BaseException] = []

    def send(batch: list[IncomingMessage]) -> None:
        try:
            start.wait()
            messages_ingest(source=source, messages=batch)
        except BaseException as error:  # reported by the assertion below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors


def profiles_of(*ids: str) -> int:
    found = Customer.objects.filter(Q(user_id__in=ids) | Q(anonymous_ids__anonymous_id__in=ids))
    return found.distinct().count()


def repeat(source: Source, batches_for: Callable[[str, str], tuple[list[IncomingMessage], ...]]) -> list[int]:
    outcomes = []
    for round_number in range(ROUNDS):
        first, second = f"a-{round_number}", f"b-{round_number}"
        race(source, *batches_for(first, second))
        outcomes.append(profiles_of(first, second))
    return outcomes


def test_two_new_ids_aliased_to_each_other_at_once_end_as_one_profile(source: Source) -> None:
    outcomes = repeat(
        source,
        lambda a, b: (
            [call("alias", previous_id=a, user_id=b)],
            [call("alias", previous_id=b, user_id=a)],
        ),
    )
    assert outcomes == [1] * ROUNDS


def test_a_sign_in_racing_the_first_anonymous_call_of_its_device_ends_as_one_profile(source: Source) -> None:
    outcomes = repeat(
        source,
        lambda device, user: (
            [call("identify", user_id=user, anonymous_id=device)],
            [call("track", anonymous_id=device)],
        ),
    )
    assert outcomes == [1] * ROUNDS
    assert Customer.objects.filter(user_id__isnull=True).count() == 0


def test_one_device_signing_in_as_two_users_at_once_keeps_both_user_ids(source: Source) -> None:
    # An anonymous profile both batches find: one signs it in, the other must see that and make its own profile,
    # never overwrite the first user id.
    for round_number in range(ROUNDS):
        device = f"device-{round_number}"
        messages_ingest(source=source, messages=[call("track", anonymous_id=device)])
        first, second = f"first-{round_number}", f"second-{round_number}"
        race(
            source,
            [call("identify", user_id=first, anonymous_id=device)],
            [call("identify", user_id=second, anonymous_id=device)],
        )
        assert Customer.objects.filter(user_id__in=[first, second]).count() == 2
