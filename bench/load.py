"""Mixed load for ten minutes: the product's tracking traffic, staff browsing the UI and reps working the alert
queue, all at once against gunicorn + a Celery worker on PostgreSQL and Redis.

What it proves: under a realistic mix the three kinds of users get answers without errors at usable latencies,
and the web and worker processes do not grow (a leak shows as resident memory still climbing after warm-up). The
demo data set gives the pages something to show and the plays alerts to work. Printed as a table per scenario
(requests, throughput, p50/p95, errors) plus the processes' memory after warm-up and at the end; figures go to
bench/results/load.json. Exits non-zero on any error or on memory growth beyond MEMORY_GROWTH_LIMIT.

Settings: LOAD_SECONDS (default 600), LOAD_EVENTS_PER_S (tracking rate, default 200), BENCH_LOAD_DATABASE_URL.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from base64 import b64encode
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
import redis

from bench.report import report

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_NAME = "trialloop_bench_load"
DATABASE_URL = os.environ.get("BENCH_LOAD_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{DB_NAME}")
BROKER_URL = os.environ.get("BENCH_LOAD_BROKER_URL", "redis://127.0.0.1:6379/11")
PORT = int(os.environ.get("BENCH_LOAD_PORT", "8797"))
SECONDS = int(os.environ.get("LOAD_SECONDS", "600"))
EVENTS_PER_S = int(os.environ.get("LOAD_EVENTS_PER_S", "200"))
BATCH = 50
BROWSERS = 2
MEMORY_GROWTH_LIMIT = 0.15  # resident memory at the end vs after warm-up (a quarter of the run)
PAGES = [
    "/",
    "/customers/",
    "/segments/",
    "/trials/",
    "/trials/loop/",
    "/computed-traits/",
    "/offers/reports/",
    "/measurement/cohorts/",
    "/measurement/uplift/",
    "/trials/emails/",
    "/alerts/team/",
    "/api/v1/customers/",
]
VAR_DIR = ROOT / "var" / "bench-load"


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "CELERY_BROKER_URL": BROKER_URL,
        "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "TRIALLOOP_VAR_DIR": str(VAR_DIR),
    }


def manage(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=_env(), capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


_SETUP = """
import json
from audiences.services import source_create
from config.roles import Role
from config.services import user_create_with_role
from rest_framework.authtoken.models import Token
_, key = source_create(name="Load")
growth = user_create_with_role(username="load_growth", password="{password}", role=Role.GROWTH)
rep = user_create_with_role(username="load_rep", password="{password}", role=Role.SALES_REP)
print(json.dumps({{"write_key": key, "token": Token.objects.create(user=rep).key}}))
"""


def prepare() -> dict[str, str]:
    """A fresh database with the demo data set, a tracking source, a Growth user and a rep with an API token."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB_NAME}")
    redis.Redis.from_url(BROKER_URL).flushdb()
    manage("migrate", "--no-input")
    manage("seed_demo", "--customers", "600", "--effect-trials", "600")
    password = uuid.uuid4().hex
    created = json.loads(manage("shell", "-c", _SETUP.format(password=password)).splitlines()[-1])
    return {**created, "password": password}


def start() -> dict[str, subprocess.Popen[bytes]]:
    env = _env()
    bin_dir = Path(sys.executable).parent
    web = subprocess.Popen(
        [str(bin_dir / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{PORT}", "--workers", "2", "--threads", "4"],
        cwd=ROOT,
        env=env,
    )
    worker = subprocess.Popen(
        [str(bin_dir / "celery"), "-A", "config", "worker", "--concurrency", "2", "--loglevel", "WARNING",
         "--queues", "default,ingest,evaluate,email,webhooks", "--without-gossip", "--without-mingle"],
        cwd=ROOT,
        env=env,
    )  # fmt: skip
    for _ in range(150):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=1)
            connection.request("GET", "/login/")
            connection.getresponse().read()
            return {"web": web, "worker": worker}
        except OSError:
            time.sleep(0.2)
    web.kill()
    worker.kill()
    raise RuntimeError("gunicorn did not start")


def _rss_kb(pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc (no extra dependency)."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        total += int(match.group(1)) if match else 0
        pending += [int(child) for child in children]
    return total


@dataclass
class Stats:
    """Latencies (ms) and errors per scenario, filled by the user threads."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, scenario: str, started: float, ok: bool, what: str) -> None:
        with self.lock:
            self.latencies[scenario].append((time.perf_counter() - started) * 1000)
            if not ok:
                self.errors[scenario].append(what)


class Session:
    """One keep-alive connection with cookies (for the staff UI's session and CSRF)."""

    def __init__(self) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        all_headers = {"Host": "127.0.0.1", **(headers or {})}
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            self.connection.request(method, path, body=body, headers=all_headers)
            response = self.connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
            raise
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        return response.status, data

    def sign_in(self, username: str, password: str) -> None:
        self.request("GET", "/login/")
        form = urlencode({"username": username, "password": password, "csrfmiddlewaretoken": self.cookies["csrftoken"]})
        status, _ = self.request(
            "POST", "/login/", form.encode(), {"Content-Type": "application/x-www-form-urlencoded", "Referer": "http://127.0.0.1/login/"}
        )  # fmt: skip
        if status != 302:
            raise RuntimeError(f"sign-in as {username} answered {status}")


def tracking_user(stats: Stats, write_key: str, stop: float) -> None:
    """The product: batches of 50 realistic calls at LOAD_EVENTS_PER_S, over a few thousand users."""
    rng = random.Random(3)
    auth = {
        "Authorization": "Basic " + b64encode(f"{write_key}:".encode()).decode(),
        "Content-Type": "application/json",
    }
    session = Session()
    interval = BATCH / EVENTS_PER_S
    next_at = time.perf_counter()
    while time.perf_counter() < stop:
        batch = []
        for _ in range(BATCH):
            user = rng.randrange(3000)
            batch.append({"type": "track", "messageId": uuid.uuid4().hex, "userId": f"usr_load_{user}",
                          "event": rng.choice(["Project Created", "Report Generated", "Dashboard Viewed"]),
                          "properties": {"seats": rng.randrange(1, 20)},
                          "timestamp": datetime.now(UTC).isoformat()})  # fmt: skip
        started = time.perf_counter()
        try:
            status, body = session.request("POST", "/v1/batch", json.dumps({"batch": batch}).encode(), auth)
            ok = status == 200 and json.loads(body)["stored"] == BATCH
            stats.record("tracking /v1/batch", started, ok, f"{status}")
        except (OSError, http.client.HTTPException) as error:
            stats.record("tracking /v1/batch", started, False, type(error).__name__)
        next_at += interval
        time.sleep(max(0.0, next_at - time.perf_counter()))


def browsing_user(stats: Stats, credentials: dict[str, str], stop: float, seed: int) -> None:
    """Growth staff clicking through the pages, a second or so apart."""
    rng = random.Random(seed)
    session = Session()
    session.sign_in("load_growth", credentials["password"])
    while time.perf_counter() < stop:
        path = rng.choice(PAGES)
        started = time.perf_counter()
        try:
            status, _ = session.request("GET", path)
            stats.record("UI browsing", started, status == 200, f"{status} {path}")
        except (OSError, http.client.HTTPException) as error:
            stats.record("UI browsing", started, False, f"{type(error).__name__} {path}")
        time.sleep(rng.uniform(0.5, 1.5))


def rep_user(stats: Stats, credentials: dict[str, str], stop: float) -> None:
    """A rep working the queue through the API: list, claim one, release it, now and then the queue page."""
    api = {"Authorization": f"Token {credentials['token']}", "Content-Type": "application/json"}
    session = Session()
    session.sign_in("load_rep", credentials["password"])
    rng = random.Random(5)
    while time.perf_counter() < stop:
        started = time.perf_counter()
        try:
            status, body = session.request("GET", "/api/v1/alerts/", headers=api)
            stats.record("rep queue", started, status == 200, f"{status} list")
            alerts = json.loads(body).get("results", []) if status == 200 else []
            if alerts:
                alert = rng.choice(alerts)
                for action in ("claim", "release"):
                    started = time.perf_counter()
                    status, _ = session.request("POST", f"/api/v1/alerts/{alert['id']}/{action}/", b"{}", api)
                    stats.record("rep queue", started, status in (200, 409), f"{status} {action}")
            started = time.perf_counter()
            status, _ = session.request("GET", "/alerts/")
            stats.record("rep queue", started, status == 200, f"{status} page")
        except (OSError, http.client.HTTPException) as error:
            stats.record("rep queue", started, False, type(error).__name__)
        time.sleep(rng.uniform(1.0, 2.0))


def main() -> None:
    print(f"load: {SECONDS} s of tracking ({EVENTS_PER_S} events/s), {BROWSERS} staff browsing, 1 rep on the queue")
    credentials = prepare()
    processes = start()
    stats = Stats()
    stop = time.perf_counter() + SECONDS
    users = [threading.Thread(target=tracking_user, args=(stats, credentials["write_key"], stop))]
    users += [threading.Thread(target=browsing_user, args=(stats, credentials, stop, n)) for n in range(BROWSERS)]
    users.append(threading.Thread(target=rep_user, args=(stats, credentials, stop)))
    memory: dict[str, list[int]] = {"web": [], "worker": []}
    try:
        for user in users:
            user.start()
        while any(user.is_alive() for user in users):
            for name, process in processes.items():
                memory[name].append(_rss_kb(process.pid))
            time.sleep(min(10.0, max(1.0, SECONDS / 60)))
        for user in users:
            user.join()
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(timeout=60)

    rows: list[tuple[str, str]] = []
    figures: dict[str, Any] = {"seconds": SECONDS, "events_per_s_target": EVENTS_PER_S, "scenarios": {}}
    failed = False
    for scenario, latencies in sorted(stats.latencies.items()):
        q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [latencies[0]] * 99
        errors = stats.errors.get(scenario, [])
        figures["scenarios"][scenario] = {
            "requests": len(latencies),
            "per_s": round(len(latencies) / SECONDS, 1),
            "p50_ms": round(q[49], 1),
            "p95_ms": round(q[94], 1),
            "errors": len(errors),
            "error_samples": errors[:5],
        }
        failed |= bool(errors)
        rows.append((scenario, f"{len(latencies):,} requests, {len(latencies) / SECONDS:.1f}/s, "
                               f"p50 {q[49]:.0f} ms, p95 {q[94]:.0f} ms, {len(errors)} errors"))  # fmt: skip
    events = figures["scenarios"].get("tracking /v1/batch", {}).get("requests", 0) * BATCH
    rows.append(("events stored by the tracking API", f"{events:,} ({events / SECONDS:.0f}/s)"))
    for name, samples in memory.items():
        warm = samples[len(samples) // 4] if samples else 0
        end = samples[-1] if samples else 0
        peak = max(samples) if samples else 0
        growth = (end - warm) / warm if warm else 0.0
        failed |= growth > MEMORY_GROWTH_LIMIT
        figures[f"{name}_rss_mb"] = {"after_warmup": warm // 1024, "end": end // 1024, "peak": peak // 1024}
        rows.append((f"{name} memory (all processes)", f"{warm // 1024} MB after warm-up → {end // 1024} MB at the end "
                     f"(peak {peak // 1024} MB, {growth:+.1%}; limit +{MEMORY_GROWTH_LIMIT:.0%})"))  # fmt: skip
    report("load", rows, figures)
    if failed:
        raise SystemExit("load: errors, or memory kept growing (see above)")
