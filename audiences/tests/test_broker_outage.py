"""A broker outage while events arrive: the tracking API still answers 200 and stores them, and their profile work
catches up when the broker is back.

The outage is real: Celery publishes to a Redis URL on a port nothing listens on (it is not eager for the
request), so the publish fails the way it does when Redis is stopped.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import OperationalError
from django.test import Client

from audiences.models import Customer, Event, Source, UnqueuedEventBatch
from audiences.services import source_create
from audiences.tasks import apply_events_to_profiles, requeue_unqueued_batches
from config.celery import app

EMAIL = "ada.outage@example.com"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _fresh_pools() -> None:
    """Forget the app's pools so the next publish takes kombu's pools for the configured broker URL."""
    app._pool = None  # type: ignore[attr-defined]
    app.amqp._producer_pool = None  # type: ignore[attr-defined]


@pytest.fixture
def broker_down() -> Iterator[None]:
    """Celery publishes for real, to a broker that refuses connections."""
    previous = {
        "broker_url": app.conf.broker_url,
        "broker_write_url": app.conf.get("broker_write_url"),
        "task_always_eager": app.conf.task_always_eager,
    }
    # The write URL too: Celery prefers a CELERY_BROKER_URL environment variable (CI sets one) to broker_url.
    closed = f"redis://127.0.0.1:{closed_port()}/0"
    app.conf.update(broker_url=closed, broker_write_url=closed, task_always_eager=False)
    _fresh_pools()
    try:
        yield
    finally:
        app.conf.update(previous)
        _fresh_pools()


def post_batch(client: Client, write_key: str, batch: list[dict[str, Any]]) -> Any:
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    body = json.dumps({"batch": batch})
    return client.post("/v1/batch", body, content_type="application/json", HTTP_AUTHORIZATION=auth)


def calls(user: str, n: int) -> list[dict[str, Any]]:
    identify = {"type": "identify", "userId": user, "messageId": f"{user}-0", "traits": {"email": EMAIL}}
    tracks = [{"type": "track", "userId": user, "messageId": f"{user}-{i}", "event": "Report Run"} for i in range(1, n)]
    return [identify, *tracks]


@pytest.mark.django_db(transaction=True)
def test_events_are_stored_and_answered_200_while_the_broker_is_down(
    broker_down: None, caplog: pytest.LogCaptureFixture
) -> None:
    source, write_key = source_create(name="Web")
    with caplog.at_level(logging.WARNING, logger="audiences.ingestion"):
        response = post_batch(Client(), write_key, calls("usr_ada", 3))

    assert response.status_code == 200
    assert response.json()["stored"] == 3
    stored = sorted(Event.objects.filter(source=source).values_list("pk", flat=True))
    assert len(stored) == 3
    # The profile work did not run, and the batch waits for the requeue instead of being forgotten
    ada = Customer.objects.get(user_id="usr_ada")
    assert ada.email == "" and ada.last_seen_at is None
    kept = UnqueuedEventBatch.objects.get()
    assert (kept.first_event_id, sorted(kept.event_ids)) == (stored[0], stored)
    # The warning says what happened without the personal data of the batch
    assert "broker unreachable" in caplog.text
    assert EMAIL not in caplog.text and "usr_ada" not in caplog.text


@pytest.mark.django_db(transaction=True)
def test_the_requeue_catches_up_once_the_broker_is_back(broker_down: None) -> None:
    source, write_key = source_create(name="Web")
    client = Client()
    assert post_batch(client, write_key, calls("usr_ada", 2)).status_code == 200
    assert post_batch(client, write_key, calls("usr_bob", 2)).status_code == 200
    assert UnqueuedEventBatch.objects.count() == 2

    # While the broker is still down the requeue keeps every batch
    assert requeue_unqueued_batches.run() == 0
    assert UnqueuedEventBatch.objects.count() == 2

    # The broker is back (tasks run eagerly here): the requeue queues both batches and they are applied
    app.conf.task_always_eager = True
    assert requeue_unqueued_batches.run() == 2
    assert not UnqueuedEventBatch.objects.exists()
    profiles = dict(Customer.objects.values_list("user_id", "email"))
    assert profiles == {"usr_ada": EMAIL, "usr_bob": EMAIL}
    assert not Customer.objects.filter(last_seen_at__isnull=True).exists()
    assert Event.objects.filter(source=source).count() == 4


@pytest.mark.django_db
def test_a_batch_is_applied_without_the_requeue_when_the_broker_is_up(
    source: Source, django_capture_on_commit_callbacks: Any
) -> None:
    # Tests run tasks eagerly: the publish succeeds and nothing is kept
    _, write_key = source_create(name="Mobile")
    with django_capture_on_commit_callbacks(execute=True):
        assert post_batch(Client(), write_key, calls("usr_ada", 2)).status_code == 200
    assert not UnqueuedEventBatch.objects.exists()
    assert Customer.objects.get(user_id="usr_ada").email == EMAIL


def test_the_profile_task_retries_on_a_database_outage_instead_of_dropping_the_batch() -> None:
    # A restarting database raises OperationalError: the task is retried (with backoff), not acknowledged as failed
    task: Any = apply_events_to_profiles
    assert OperationalError in task.autoretry_for
    assert task.max_retries and task.retry_backoff
