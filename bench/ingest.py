"""Ingestion throughput: real HTTP `/v1/batch` requests against gunicorn on PostgreSQL, beside a raw COPY.

The project: a fresh PostgreSQL database, migrated; the app served by gunicorn; a load generator in this process
(one thread per connection, payloads prepared up front so the generator costs little CPU) sends batches of 100
realistic calls (track, page, identify, group across a few thousand users). The baseline: the same calls COPY'd
into a bare table shaped like the events table (jsonb properties, unique message id, the customer/name/time
index). The two take turns over a few rounds, so that drifts in the machine's speed hit both alike. Printed side
by side with the ratio, and written to bench/results/ingest.json.
"""

from __future__ import annotations

import http.client
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from base64 import b64encode
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import psycopg
import redis
from psycopg import sql

from bench.report import report

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/trialloop_bench")
# The database the run drops and creates is the one BENCH_DATABASE_URL names, never a fixed one another run uses.
DB_NAME = urlsplit(DATABASE_URL).path.lstrip("/")
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")
PORT = int(os.environ.get("BENCH_PORT", "8799"))
BATCHES = int(os.environ.get("BENCH_BATCHES", "3000"))
BATCH_SIZE = 100
SENDERS = int(os.environ.get("BENCH_SENDERS", "6"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "3"))
WORKER_CLASS = os.environ.get("BENCH_WORKER_CLASS", "sync")
THREADS = int(os.environ.get("BENCH_THREADS", "1"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
USERS = 5000
EVENTS = ["Project Created", "Report Generated", "Teammate Invited", "Dashboard Viewed", "Integration Connected"]


def realistic_message(rng: random.Random, sent_at: datetime) -> dict[str, Any]:
    """One call as analytics.js or a server library would send it (about 600–900 bytes)."""
    user = rng.randrange(USERS)
    kind = rng.choices(["track", "page", "identify", "group"], weights=[70, 15, 10, 5])[0]
    message: dict[str, Any] = {
        "type": kind,
        "messageId": str(uuid.UUID(int=rng.getrandbits(128))),
        "userId": f"usr_{user}",
        "anonymousId": f"anon_{user}",
        "timestamp": (sent_at - timedelta(seconds=rng.random() * 5)).isoformat(),
        "context": {
            "library": {"name": "analytics.js", "version": "5.2.0"},
            "ip": f"10.0.{user % 250}.{user % 200}",
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36",
            "page": {"path": "/app/projects", "url": "https://app.example.com/app/projects", "title": "Projects"},
            "locale": "en-US",
        },
    }
    if kind == "track":
        message["event"] = rng.choice(EVENTS)
        message["properties"] = {"project_id": rng.randrange(10**6), "plan": "team", "seats": rng.randrange(1, 20)}
    elif kind == "page":
        message["name"] = "Projects"
        message["properties"] = {"path": "/app/projects", "referrer": "https://www.example.com/"}
    elif kind == "identify":
        message["traits"] = {"email": f"user{user}@example.com", "first_name": "User", "last_name": str(user)}
    else:
        message["groupId"] = f"grp_{user // 5}"
        message["traits"] = {"name": f"Company {user // 5}", "employees": 5 + user % 300}
    return message


def prepare_payloads() -> tuple[list[bytes], list[dict[str, Any]]]:
    rng = random.Random(7)
    now = datetime.now(UTC)
    payloads, messages = [], []
    for _ in range(BATCHES):
        batch = [realistic_message(rng, now) for _ in range(BATCH_SIZE)]
        messages.extend(batch)
        payloads.append(orjson.dumps({"batch": batch, "sentAt": now.isoformat()}))
    return payloads, messages


def manage(*args: str) -> str:
    env = {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        "DEBUG": "false",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def fresh_broker() -> None:
    """The profile tasks the API queues are not consumed here; start each run with an empty queue."""
    redis.Redis.from_url(BROKER_URL).flushdb()


def fresh_database() -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))
    manage("migrate", "--no-input")


def start_server() -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        "DEBUG": "false",
    }
    env["LOG_LEVEL"] = "WARNING"
    # The profile tasks go to the Redis database emptied by fresh_broker, as with a production broker.
    env["CELERY_BROKER_URL"] = BROKER_URL
    command = [str(Path(sys.executable).parent / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{PORT}"]
    command += ["--workers", str(WORKERS), "--worker-class", WORKER_CLASS, "--threads", str(THREADS)]
    command += ["--log-level", "warning"]
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    for _ in range(100):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=1)
            connection.request("GET", "/login/")
            connection.getresponse().read()
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("gunicorn did not start")


def post(head: bytes, body: bytes) -> tuple[int, bytes]:
    """One HTTP/1.1 request on its own connection (gunicorn's sync workers close each one after answering),
    read to the end; returns the status and the body. Plain sockets: http.client parses headers through the
    email package, which would make the generator, on the same two cores, take CPU from the server it measures."""
    with socket.create_connection(("127.0.0.1", PORT), timeout=60) as sock:
        sock.sendmsg([head, body])
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    headers, _, content = response.partition(b"\r\n\r\n")
    return int(headers[9:12]), content


def load(payloads: list[bytes], write_key: str) -> tuple[float, list[float], int]:
    """Send every payload from SENDERS threads; returns wall seconds, latencies (ms), failed requests."""
    auth = b64encode(f"{write_key}:".encode()).decode()
    head = (
        f"POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\nContent-Type: application/json\r\n"
        f"Authorization: Basic {auth}\r\nConnection: close\r\nContent-Length: {{length}}\r\n\r\n"
    )
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    next_index = iter(range(len(payloads)))

    def sender() -> None:
        nonlocal failures
        while True:
            with lock:
                index = next(next_index, None)
            if index is None:
                return
            payload = payloads[index]
            started = time.perf_counter()
            status, body = post(head.format(length=len(payload)).encode(), payload)
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                if status != 200 or orjson.loads(body)["stored"] != BATCH_SIZE:
                    failures += 1

    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies, failures


class CopyBaseline:
    """COPY calls into a bare table shaped like the events table (jsonb properties and context, unique message id,
    the customer/name/time index), round by round, beside the API's rounds."""

    def __init__(self) -> None:
        self.connection = psycopg.connect(DATABASE_URL.replace("postgres://", "postgresql://", 1))
        self.connection.execute("DROP TABLE IF EXISTS bench_raw_events")
        self.connection.execute(
            f"CREATE {'UNLOGGED ' if os.environ.get('BENCH_UNLOGGED') else ''}TABLE bench_raw_events"
            " (id bigserial PRIMARY KEY, message_id varchar(100) UNIQUE, customer_id bigint, type varchar(10),"
            " name varchar(200), properties jsonb, context jsonb, timestamp timestamptz)"
        )
        self.connection.execute("CREATE INDEX ON bench_raw_events (customer_id, name, timestamp)")
        self.connection.commit()

    def copy(self, messages: list[dict[str, Any]]) -> float:
        """COPY these calls in one transaction; returns the seconds it took (rows prepared beforehand)."""
        rows = [
            (
                m["messageId"],
                int(m["userId"].removeprefix("usr_")),
                m["type"],
                m.get("event") or m.get("name") or "",
                orjson.dumps(m.get("properties") or m.get("traits") or {}).decode(),
                orjson.dumps(m["context"]).decode(),
                m["timestamp"],
            )
            for m in messages
        ]
        columns = "message_id, customer_id, type, name, properties, context, timestamp"
        # Not timed: what the API's round left to write goes to disk first, so the baseline runs undisturbed (the
        # conservative choice: a faster baseline is a harder target).
        self.connection.execute("CHECKPOINT")
        started = time.perf_counter()
        with (
            self.connection.cursor() as cursor,
            cursor.copy(f"COPY bench_raw_events ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        self.connection.commit()
        return time.perf_counter() - started

    def close(self) -> None:
        self.connection.execute("DROP TABLE bench_raw_events")
        self.connection.commit()
        self.connection.close()


def stored_events() -> int:
    url = DATABASE_URL.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT count(*) FROM audiences_event").fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    print(
        f"ingest: {BATCHES} batches of {BATCH_SIZE} over {SENDERS} connections, gunicorn --workers {WORKERS},"
        f" {ROUNDS} rounds of COPY then API"
    )
    payloads, messages = prepare_payloads()
    fresh_database()
    fresh_broker()
    write_key = manage("create_source", "Benchmark").splitlines()[0]  # then the secret key, unused here
    server = start_server()
    baseline = CopyBaseline()
    copy_seconds = api_seconds = 0.0
    latencies: list[float] = []
    failures = 0
    # The machine's speed drifts over a run (other guests on the host): the baseline and the API take turns, each
    # round a share of the same calls, so that both see the same stretches of the run.
    try:
        per_round = -(-BATCHES // ROUNDS)
        for start in range(0, BATCHES, per_round):
            chunk = slice(start * BATCH_SIZE, (start + per_round) * BATCH_SIZE)
            copy_seconds += baseline.copy(messages[chunk])
            seconds, round_latencies, round_failures = load(payloads[start : start + per_round], write_key)
            api_seconds += seconds
            latencies += round_latencies
            failures += round_failures
    finally:
        server.terminate()
        server.wait(timeout=30)
        baseline.close()
    sent = len(messages)
    stored = stored_events()
    events_per_s = sent / api_seconds
    copy_per_s = sent / copy_seconds
    quantiles = statistics.quantiles(latencies, n=100)
    result = {
        "events_per_s": round(events_per_s),
        "copy_events_per_s": round(copy_per_s),
        "ratio": round(events_per_s / copy_per_s, 3),
        "p50_ms": round(quantiles[49], 1),
        "p99_ms": round(quantiles[98], 1),
        "sent": sent,
        "stored": stored,
        "failed_requests": failures,
    }
    rows = [
        ("API /v1/batch (gunicorn, PostgreSQL)", f"{result['events_per_s']:,} events/s"),
        ("raw COPY into a bare table (baseline)", f"{result['copy_events_per_s']:,} events/s"),
        ("ratio API / COPY", f"{result['ratio']:.1%}  (target ≥ 20%)"),
        ("batch latency p50 / p99", f"{result['p50_ms']} ms / {result['p99_ms']} ms  (target p99 < 250 ms)"),
        ("events sent / stored", f"{sent:,} / {stored:,}"),
        ("failed requests", str(failures)),
    ]
    report("ingest", rows, result)


if __name__ == "__main__":
    main()
