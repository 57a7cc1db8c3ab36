"""How computed traits read the trial loop, which sits above them: "since the trial started" windows and "trial
days remaining" need the customer's current trial. The trials app registers its reader from TrialsConfig.ready()
(trials.loop.conditions), so this package never imports it; without one, nobody is in a trial."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from django.db.models import Q, QuerySet

from audiences.models import Customer


class TrialReader(Protocol):
    """The trial facts computed traits read."""

    def events_in_current_trial(self) -> Q:
        """A filter on Event: the event happened during its customer's current trial (at or after its start)."""
        ...

    def current_trial_customers(self, customer_ids: Sequence[int]) -> QuerySet[Any]:
        """Those of the customers with a current trial, as a subquery of `customer_id` values."""
        ...

    def running_trial_ends(self, customer_ids: Sequence[int] | None, now: datetime) -> QuerySet[Any]:
        """(customer_id, ends_at) of the current trials still in trial at `now` (of these customers, or all)."""
        ...


class _NoTrials:
    """The reader without a trial loop: nobody is in a trial."""

    def events_in_current_trial(self) -> Q:
        return Q(pk__in=[])

    def current_trial_customers(self, customer_ids: Sequence[int]) -> QuerySet[Any]:
        return Customer.objects.none().values("pk")

    def running_trial_ends(self, customer_ids: Sequence[int] | None, now: datetime) -> QuerySet[Any]:
        return Customer.objects.none().values_list("pk", "first_seen_at")


_reader: list[TrialReader] = []


def register_trial_reader(reader: TrialReader) -> None:
    """Set the trial loop's reader (from its AppConfig.ready())."""
    _reader[:] = [reader]


def trial_reader() -> TrialReader:
    """The registered reader, or one that knows no trials."""
    return _reader[0] if _reader else _NoTrials()
