"""A real Celery worker process picks a task off the configured broker and writes its result to the database.

Runs on whatever the settings name: the file-system broker and SQLite by default, Redis and PostgreSQL in
CI's second pass. The task goes to a queue of its own so no other worker (say, a running `make run`) takes it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from config.celery import app
from config.models import TaskRun
from config.tasks import housekeeping

ROOT = Path(__file__).resolve().parents[2]


def database_url_of_test_database() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker_queue() -> Iterator[str]:
    queue = f"test-{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url_of_test_database(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    }
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--queues", queue]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"]
    worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield queue
    finally:
        worker.terminate()
        try:
            output, _ = worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            output, _ = worker.communicate()
        print(output)  # shown by pytest when the test fails  # noqa: T201


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
    assert set(run.detail) == {"expired_sessions", "expired_locks", "old_task_runs"}
