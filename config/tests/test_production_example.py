"""The production example (docs/examples/Procfile.production) works as documented: started by honcho with the
production settings and split queues, gunicorn serves pages with the security headers and hashed static files,
and a worker pool consumes each queue."""

from __future__ import annotations

import http.client
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from config.celery import app
from config.queues import SPLIT_QUEUES, task_routes
from config.tasks import housekeeping
from conftest import ROOT, database_url_of_test_database, free_port

PROCFILE = ROOT / "docs" / "examples" / "Procfile.production"


def _get(port: int, path: str, *, https: bool = True) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Host": "127.0.0.1", **({"X-Forwarded-Proto": "https"} if https else {})}
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    response.read()
    return response


class TestQueueRouting:
    def test_single_mode_routes_nothing(self) -> None:
        assert task_routes("single") == {}

    def test_split_mode_routes_each_kind_to_its_queue(self) -> None:
        routes = task_routes("split")
        assert routes["audiences.tasks.apply_events_to_profiles"] == {"queue": "ingest"}
        assert routes["segments.tasks.evaluate_segments"] == {"queue": "evaluate"}
        assert routes["trials.tasks.deliver_message"] == {"queue": "email"}
        assert routes["integrations.tasks.flush_destination"] == {"queue": "webhooks"}
        assert "config.tasks.housekeeping" not in routes  # the default queue
        assert SPLIT_QUEUES == ["default", "email", "evaluate", "ingest", "webhooks"]

    def test_an_unknown_mode_is_refused(self) -> None:
        with pytest.raises(ValueError, match="'single' or 'split'"):
            task_routes("sharded")

    def test_every_task_is_routed_or_meant_for_the_default_queue(self) -> None:
        app.loader.import_default_modules()
        ours = {
            name
            for name in app.tasks
            if name.split(".")[0] in {"audiences", "segments", "trials", "offers", "integrations"}
        }
        unrouted = ours - set(task_routes("split"))
        assert unrouted <= {"offers.tasks.expire_sessions"}, f"route these tasks in config/queues.py: {unrouted}"


class Production:
    """The example Procfile under honcho, on the test database and broker, with production settings; its output
    is collected line by line as it runs."""

    def __init__(self, port: int, env: dict[str, str]) -> None:
        self.port = port
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "honcho"),
                "start",
                "-f",
                str(PROCFILE),
                "-d",
                str(ROOT),
                "-p",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def stop(self) -> str:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.reader.join(timeout=10)
        return "\n".join(self.lines)


@pytest.fixture
def production(transactional_db: None) -> Iterator[Production]:
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "DJANGO_SETTINGS_MODULE": "config.settings.prod",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": database_url_of_test_database(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "TRIALLOOP_TASK_QUEUES": "split",
        "TRIALLOOP_VAR_DIR": str(settings.VAR_DIR),
        "WEB_WORKERS": "1",
        "INGEST_CONCURRENCY": "1",
        "EVALUATE_CONCURRENCY": "1",
        "WEBHOOKS_CONCURRENCY": "1",
    }
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert collected.returncode == 0, collected.stderr
    running = Production(free_port(), env)
    try:
        yield running
    finally:
        output = running.stop()
        print(output)  # shown by pytest when the test fails  # noqa: T201
        assert "Traceback" not in output


def _wait_for_web(port: int, deadline: float) -> http.client.HTTPResponse:
    while True:
        try:
            return _get(port, "/login/")
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
def test_the_example_serves_securely_and_runs_a_pool_per_queue(production: Production) -> None:
    deadline = time.monotonic() + 120
    port = production.port
    login = _wait_for_web(port, deadline)

    assert login.status == 200
    assert login.getheader("Strict-Transport-Security") == "max-age=31536000; includeSubDomains; preload"
    assert login.getheader("X-Frame-Options") == "DENY"
    assert login.getheader("X-Content-Type-Options") == "nosniff"
    assert login.getheader("Referrer-Policy") == "same-origin"
    csrf_cookie = next(value for key, value in login.getheaders() if key == "Set-Cookie" and "csrftoken" in value)
    assert "Secure" in csrf_cookie
    assert _get(port, "/login/", https=False).status == 301  # plain HTTP is redirected to HTTPS

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/login/", headers={"Host": "127.0.0.1", "X-Forwarded-Proto": "https"})
    page = connection.getresponse().read().decode()
    stylesheet = re.search(r'href="(/static/css/trialloop\.[0-9a-f]{12}\.css)"', page)
    assert stylesheet, "the page links the hashed stylesheet collectstatic wrote"
    assert _get(port, stylesheet.group(1)).status == 200

    # send_task goes through the broker even though tests run tasks eagerly
    sent = {queue: app.send_task(housekeeping.name, queue=queue).id for queue in SPLIT_QUEUES}
    pending = dict(sent)
    while pending:
        assert time.monotonic() < deadline, f"no worker pool ran the task sent to {sorted(pending)}"
        for queue, task_id in list(pending.items()):
            done = rf"^\S+ (\w+)\.1\s+\|.*Task config\.tasks\.housekeeping\[{task_id}\] succeeded"
            for line in list(production.lines):
                match = re.search(done, line)
                if match:
                    assert match.group(1) == queue, f"the {queue} task ran in the {match.group(1)} pool"
                    del pending[queue]
                    break
        time.sleep(0.5)
