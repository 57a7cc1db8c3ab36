"""The project's one retry policy: how long to wait before trying failed work again.

Failed work is tried again in one of two places, and both read their waits from a `RetryPolicy`:

* **Through the broker**, for a task whose whole run failed (an email the mail server refused for now, a
  database that failed over): Celery's own `autoretry_for` / `retry_backoff` re-queue it with a countdown.
  `RetryPolicy.task_options()` gives a task those options, and Celery's backoff (base × 2^retries, capped) is
  exactly `RetryPolicy.wait` for a doubling policy without jitter (a test holds the two together).
* **Through the database**, for work recorded in rows that a beat sweep picks up again (Stripe events, durable
  timers, destination deliveries): the row stores `now + policy.wait(attempts)` as its next attempt, which
  survives a worker restart and shows in the admin. Celery cannot schedule these (they are not one task run),
  and a sleeping retry loop in process (tenacity, backoff) would hold a worker and die with it, so neither
  library fits this half; tenacity is not a dependency either, and Celery already is.

`DEFAULT_RETRY` — 30 s, doubling, at most 6 h — is quick enough for a database blip, patient enough for a bug
fixed in a deploy; a caller with other needs declares its own policy here in its module (destinations wait 4×
longer each time with jitter, so receivers that failed together are not hit together when they return).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import TypedDict

_rng = random.Random()


class CeleryRetryOptions(TypedDict):
    """The `@shared_task` options that make Celery retry a task with a policy's waits."""

    autoretry_for: tuple[type[BaseException], ...]
    retry_backoff: int
    retry_backoff_max: int
    retry_jitter: bool
    max_retries: int


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: `first` seconds before the 2nd try, × `growth` each time, at most `cap` seconds,
    ± `jitter` (a fraction) at random, or anywhere between 0 and that with `full_jitter` (Celery's default for
    tasks that many workers retry at once); `attempts` tries in all (None: the caller decides when to stop)."""

    first: int
    growth: int = 2
    cap: int = 6 * 3600
    jitter: float = 0.0
    full_jitter: bool = False
    attempts: int | None = None

    def wait(self, attempts: int, *, rng: random.Random | None = None) -> timedelta:
        """Wait after `attempts` failed tries, before try number `attempts + 1`."""
        nominal = min(self.first * self.growth ** max(attempts - 1, 0), self.cap)
        if self.full_jitter:
            return timedelta(seconds=(rng or _rng).randrange(int(nominal) + 1))
        if self.jitter:
            nominal *= (rng or _rng).uniform(1 - self.jitter, 1 + self.jitter)
        return timedelta(seconds=nominal)

    def task_options(self, *errors: type[BaseException]) -> CeleryRetryOptions:
        """Options for `@shared_task` so Celery retries the task on `errors` with this policy's waits."""
        if self.growth != 2 or self.jitter or self.attempts is None:
            raise ValueError("Celery's retry_backoff doubles without partial jitter, and needs a number of tries")
        return {
            "autoretry_for": errors,
            "retry_backoff": self.first,
            "retry_backoff_max": self.cap,
            "retry_jitter": self.full_jitter,
            "max_retries": self.attempts - 1,
        }


DEFAULT_RETRY = RetryPolicy(first=30, growth=2, cap=6 * 3600)


def retry_backoff(attempts: int) -> timedelta:
    """Wait before try number `attempts + 1` under the default policy: 30 s, doubling, at most 6 h."""
    return DEFAULT_RETRY.wait(attempts)
