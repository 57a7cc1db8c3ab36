"""Events carry no database foreign keys (for ingestion speed); integrity is kept by the ORM and by one check
per batch, which these tests pin down."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from audiences import ingestion
from audiences.ingestion import IncomingMessage, messages_ingest
from audiences.models import Customer, Event, Source

pytestmark = pytest.mark.django_db


def track(message_id: str, user_id: str = "usr_ada") -> IncomingMessage:
    now = timezone.now()
    return IncomingMessage(
        type="track",
        message_id=message_id,
        user_id=user_id,
        anonymous_id=None,
        name="Report Run",
        properties={},
        context={},
        timestamp=now,
        received_at=now,
    )


def test_the_batch_check_sees_a_profile_that_is_gone(source: Source) -> None:
    ada = Customer.objects.create(user_id="usr_ada")
    bob = Customer.objects.create(user_id="usr_bob")
    assert ingestion._customers_still_there({ada.pk, bob.pk})
    bob.delete()
    assert not ingestion._customers_still_there({ada.pk, bob.pk})


def test_a_batch_whose_profile_was_merged_away_meanwhile_resolves_again(
    source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the first resolution finds one of its profiles gone (a concurrent merge deleted it)
    checks: list[set[int]] = []
    real_check = ingestion._customers_still_there

    def gone_once(customer_ids: set[int]) -> Any:
        checks.append(customer_ids)
        return False if len(checks) == 1 else real_check(customer_ids)

    monkeypatch.setattr(ingestion, "_customers_still_there", gone_once)
    # When the batch is stored
    result = messages_ingest(source=source, messages=[track("m-1"), track("m-2", "usr_bob")])
    # Then it was resolved again and stored once, pointing at existing profiles only
    assert len(checks) == 2
    assert result.stored == 2
    stored = Event.objects.values_list("customer_id", flat=True)
    assert set(stored) <= set(Customer.objects.values_list("pk", flat=True))


def test_deleting_a_customer_still_deletes_its_events(source: Source) -> None:
    messages_ingest(source=source, messages=[track("m-1"), track("m-2", "usr_bob")])
    Customer.objects.get(user_id="usr_ada").delete()
    assert list(Event.objects.values_list("customer__user_id", flat=True)) == ["usr_bob"]
