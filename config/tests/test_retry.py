"""The one retry policy (config.retry): the waits Celery computes for broker retries are the policy's own."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from celery.utils.time import get_exponential_backoff_interval

from audiences.tasks import apply_events_to_profiles
from config.retry import DEFAULT_RETRY, RetryPolicy, retry_backoff
from trials.messaging.delivery import EMAIL_DELIVERY_RETRY, DeliveryError, deliver_message


def test_the_default_policy_doubles_from_30_seconds_to_6_hours() -> None:
    assert [retry_backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert retry_backoff(20) == timedelta(hours=6) == DEFAULT_RETRY.wait(30)


def test_celerys_backoff_is_the_policys_wait_for_a_doubling_policy() -> None:
    policy = RetryPolicy(first=60, growth=2, cap=3600, attempts=6)
    options = policy.task_options(ConnectionError)
    assert options["autoretry_for"] == (ConnectionError,) and options["max_retries"] == 5
    for retries in range(options["max_retries"] + 3):
        celery = get_exponential_backoff_interval(
            factor=options["retry_backoff"],
            retries=retries,
            maximum=options["retry_backoff_max"],
            full_jitter=options["retry_jitter"],
        )
        assert celery == policy.wait(retries + 1).total_seconds()


def test_with_full_jitter_celery_draws_below_the_policys_wait() -> None:
    policy = RetryPolicy(first=2, growth=2, cap=300, full_jitter=True, attempts=9)
    options = policy.task_options(ConnectionError)
    assert options["retry_jitter"] is True and options["max_retries"] == 8
    rng = random.Random(5)
    for retries in range(10):
        ceiling = get_exponential_backoff_interval(options["retry_backoff"], retries, options["retry_backoff_max"])
        assert ceiling == min(2 * 2**retries, 300)
        assert all(0 <= policy.wait(retries + 1, rng=rng).total_seconds() <= ceiling for _ in range(20))


def test_policies_celery_cannot_follow_are_refused_for_tasks() -> None:
    for policy in (
        RetryPolicy(first=30, growth=4, attempts=3),
        RetryPolicy(first=30, jitter=0.2, attempts=3),
        RetryPolicy(first=30),
    ):
        with pytest.raises(ValueError):
            policy.task_options(ConnectionError)


def test_jitter_stays_within_its_fraction() -> None:
    policy = RetryPolicy(first=100, growth=3, cap=10_000, jitter=0.25)
    rng = random.Random(3)
    waits = [policy.wait(2, rng=rng).total_seconds() for _ in range(200)]
    assert all(225 <= wait <= 375 for wait in waits)
    assert max(waits) - min(waits) > 50


def test_the_email_delivery_task_retries_through_celery_with_the_policy() -> None:
    task: Any = deliver_message
    assert DeliveryError in task.autoretry_for
    assert task.max_retries == 5 and task.retry_backoff == 60 and task.retry_jitter is False
    assert EMAIL_DELIVERY_RETRY.wait(5) == timedelta(minutes=16)  # the wait before the last try, as before


def test_the_profile_task_retries_a_database_outage_as_before() -> None:
    task: Any = apply_events_to_profiles
    assert (task.retry_backoff, task.retry_backoff_max, task.max_retries, task.retry_jitter) == (2, 300, 8, True)
