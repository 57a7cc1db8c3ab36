"""The one throttle (config.throttle): one send per key inside the window, decided under the key's row lock."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from audiences.models import Customer
from config.throttle import (
    throttle_closed,
    throttle_give_back,
    throttle_open,
    throttle_reopens_at,
    throttle_slot,
)
from trials.models import CustomerMessageLock

NOON = datetime(2026, 3, 2, 12, tzinfo=timezone.get_current_timezone())
DAY = timedelta(hours=24)


def test_the_window_arithmetic() -> None:
    assert throttle_open(None, window=DAY, now=NOON)
    assert throttle_open(NOON - DAY, window=DAY, now=NOON)  # exactly one window ago: open again
    assert not throttle_open(NOON - DAY + timedelta(seconds=1), window=DAY, now=NOON)
    assert throttle_reopens_at(None, window=DAY, now=NOON) == NOON
    assert throttle_reopens_at(NOON - timedelta(hours=20), window=DAY, now=NOON) == NOON + timedelta(hours=4)
    assert throttle_reopens_at(NOON - 2 * DAY, window=DAY, now=NOON) == NOON


@pytest.mark.django_db
def test_a_slot_is_taken_once_per_window_and_can_be_given_back() -> None:
    customer = Customer.objects.create(user_id="ada")
    lock: dict[str, Any] = {"field": "last_sent_at", "window": DAY}
    assert not throttle_closed(CustomerMessageLock, customer.pk, now=NOON, **lock)
    with throttle_slot(CustomerMessageLock, customer.pk, now=NOON, **lock) as slot:
        assert slot.open and slot.last_at is None
        assert slot.take() is None
    assert throttle_closed(CustomerMessageLock, customer.pk, now=NOON + timedelta(hours=1), **lock)
    with throttle_slot(CustomerMessageLock, customer.pk, now=NOON + timedelta(hours=1), **lock) as slot:
        assert not slot.open and slot.last_at == NOON
    throttle_give_back(CustomerMessageLock, customer.pk, field="last_sent_at", taken_at=NOON, previous=None)
    assert CustomerMessageLock.objects.get(pk=customer.pk).last_sent_at is None
    with throttle_slot(CustomerMessageLock, customer.pk, now=NOON + DAY, **lock) as slot:
        assert slot.open


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="SQLite serialises whole transactions instead")
@pytest.mark.django_db(transaction=True)
def test_two_workers_deciding_at_once_take_one_slot() -> None:
    customer = Customer.objects.create(user_id="ada")
    CustomerMessageLock.objects.create(customer=customer)
    start = threading.Barrier(2)
    taken: list[bool] = []

    def decide() -> None:
        try:
            start.wait(5)
            with throttle_slot(CustomerMessageLock, customer.pk, field="last_sent_at", window=DAY, now=NOON) as slot:
                opened = slot.open
                if opened:
                    slot.take()
                taken.append(opened)
        finally:
            connection.close()

    workers = [threading.Thread(target=decide) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    assert sorted(taken) == [False, True]
