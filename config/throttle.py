"""The one throttle: at most one of something per key inside a time window, decided under a row lock.

Lifecycle emails, win-back emails and in-app prompts share one rule: a customer gets at most one message
inside the throttle window, whichever path sends it. The window is kept as the time of the last send on one row
per key (for customers: `CustomerMessageLock.last_sent_at`, a model of the messaging app — the kernel knows only
"a model, a key, a timestamp field"). Deciding takes the row with SELECT … FOR UPDATE, so two workers deciding
for the same key serialise: the check of the last send and the taking of the slot are one step, and two sends
never land inside one window. A send that did not happen after all gives its slot back.

    with throttle_slot(CustomerMessageLock, customer.pk, field="last_sent_at", window=window, now=now) as slot:
        if not slot.open:
            return "throttled"
        slot.take()
        ...  # record the send in the same transaction
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import models, transaction


def throttle_open(last_at: datetime | None, *, window: timedelta, now: datetime) -> bool:
    """Whether a send at `now` is allowed after one at `last_at` (None: never sent)."""
    return last_at is None or last_at <= now - window


def throttle_reopens_at(last_at: datetime | None, *, window: timedelta, now: datetime) -> datetime:
    """The first moment from `now` on when the window after `last_at` allows a send."""
    return max(now, last_at + window) if last_at is not None else now


def throttle_closed(model: type[models.Model], key: Any, *, field: str, window: timedelta, now: datetime) -> bool:
    """A look without the lock (one query): whether the key's window is closed now. Use it to skip work early;
    decide with `throttle_slot`, since a concurrent send may take the slot after this look."""
    return model._default_manager.filter(pk=key, **{f"{field}__gt": now - window}).exists()


@dataclass
class ThrottleSlot:
    """The key's throttle row, locked for the duration of the `throttle_slot` block."""

    row: models.Model
    field: str
    window: timedelta
    now: datetime

    @property
    def last_at(self) -> datetime | None:
        """When the key last took a slot (None: never)."""
        value: datetime | None = getattr(self.row, self.field)
        return value

    @property
    def open(self) -> bool:
        """Whether the window allows a send now."""
        return throttle_open(self.last_at, window=self.window, now=self.now)

    def take(self) -> datetime | None:
        """Take the slot (the window starts now); returns the previous time, for `throttle_give_back`."""
        previous = self.last_at
        setattr(self.row, self.field, self.now)
        self.row.save(update_fields=[self.field])
        return previous


@contextmanager
def throttle_slot(
    model: type[models.Model], key: Any, *, field: str, window: timedelta, now: datetime
) -> Iterator[ThrottleSlot]:
    """Lock the key's throttle row (created on first use) in a transaction for the block; the block decides with
    `slot.open` and takes the slot with `slot.take()`, committed with whatever else it writes."""
    model._default_manager.get_or_create(pk=key)
    with transaction.atomic():
        row = model._default_manager.select_for_update().get(pk=key)
        yield ThrottleSlot(row=row, field=field, window=window, now=now)


def throttle_give_back(
    model: type[models.Model], key: Any, *, field: str, taken_at: datetime, previous: datetime | None
) -> None:
    """Undo a `take()` whose send did not happen (the mail server said "try later"), unless a later send took
    the slot since."""
    model._default_manager.filter(pk=key, **{field: taken_at}).update(**{field: previous})
