"""The project's one retry policy for work recorded in the database and tried again later.

Stripe events that failed to apply and durable timers whose handler raised are both retried after this wait:
30 s, doubling, at most 6 h — quick enough for a database blip, patient enough for a bug fixed in a deploy.
"""

from __future__ import annotations

from datetime import timedelta

RETRY_BASE_SECONDS = 30
RETRY_CAP_SECONDS = 6 * 3600


def retry_backoff(attempts: int) -> timedelta:
    """Wait before try number `attempts + 1`: 30 s, doubling, at most 6 h."""
    return timedelta(seconds=min(RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), RETRY_CAP_SECONDS))
