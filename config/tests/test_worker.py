"""A real Celery worker process picks a task off the configured broker and writes its result to the database.

Runs on whatever the settings name: the file-system broker and SQLite by default, Redis and PostgreSQL in
CI's second pass. The task goes to a queue of its own so no other worker (say, a running `make run`) takes it.
"""

from __future__ import annotations

import time

import pytest

from config.celery import app
from config.models import TaskRun
from config.tasks import housekeeping


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_a_queued_task(worker_queue: str) -> None:
    app.conf.task_always_eager = False
    try:
        housekeeping.apply_async(queue=worker_queue)
    finally:
        app.conf.task_always_eager = True
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        run = TaskRun.objects.filter(name="housekeeping").exclude(outcome=TaskRun.Outcome.RUNNING).first()
        if run is not None:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the worker did not complete the task within 90 s")
    assert run.outcome == TaskRun.Outcome.SUCCEEDED
    assert set(run.detail) == {
        "expired_sessions",
        "expired_locks",
        "old_task_runs",
        "old_applied_batches",
        "old_sign_in_failures",
        "old_fired_timers",
    }
