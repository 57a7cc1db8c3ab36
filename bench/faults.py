"""Faults: what is sent, stored, retried and lost when a worker, Redis, PostgreSQL or a destination fails.

Everything runs on servers of its own, never the machine's shared ones: a PostgreSQL cluster `faults` on port
5440 (created if missing; the only cluster this script restarts), a Redis on port 6390 with an append-only file
(so a restart keeps the queue, as a production broker does), gunicorn, a real Celery worker (prefork, acks_late,
a 10 s visibility timeout so an unacknowledged task comes back quickly) and a webhook receiver in this process.

Four scenarios, one row each:
a) worker SIGKILLed mid-task — the worker is blocked inside a batch's transaction (the bench holds its customers'
   row locks), killed, a new worker starts: the task is re-delivered and its effect (a count computed trait) is
   counted once; then the same task is delivered again after it committed (a lost ack) and changes nothing.
b) Redis stopped while events arrive — the API keeps answering 200 and storing; batches whose task could not be
   queued are kept (UnqueuedEventBatch) and requeued by the periodic task once Redis is back.
c) PostgreSQL restarted during ingestion — clients retry non-200 answers and connection errors with the same
   message ids; in the end stored == distinct sent, nothing twice.
d) a destination down "for an hour" — deliveries fail and back off; the clock is moved an hour on, the receiver
   is back, and every delivery arrives exactly once; order per customer is measured.

Lost must be 0 in every row. Written to bench/results/faults.json.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from base64 import b64encode
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import psycopg

from bench.report import report

ROOT = Path(__file__).resolve().parent.parent
PG_PORT = int(os.environ.get("FAULTS_PG_PORT", "5440"))
REDIS_PORT = int(os.environ.get("FAULTS_REDIS_PORT", "6390"))
WEB_PORT = int(os.environ.get("FAULTS_WEB_PORT", "8791"))
RECEIVER_PORT = int(os.environ.get("FAULTS_RECEIVER_PORT", "8792"))
CLUSTER = "faults"
DB_NAME = "trialloop_faults"
ADMIN_URL = f"postgresql://postgres@127.0.0.1:{PG_PORT}/postgres"
DB_URL = f"postgresql://postgres@127.0.0.1:{PG_PORT}/{DB_NAME}"
BROKER_URL = f"redis://127.0.0.1:{REDIS_PORT}/0"
VAR_DIR = Path(os.environ.get("FAULTS_VAR_DIR", "/tmp/faults_var"))
VISIBILITY_TIMEOUT = 10
TRAIT_EVENT = "Feature Used"

# A worker with a short visibility timeout: the Redis transport hands an unacknowledged task to another worker
# only after it, and the project's default (one hour) would make scenario (a) wait an hour.
WORKER = f"""
import django
django.setup()
from config.celery import app
app.conf.broker_transport_options = {{
    "visibility_timeout": {VISIBILITY_TIMEOUT}, "unacked_restore_interval": 2, "unacked_restore_throttle": 1,
}}
app.worker_main(["worker", "--pool", "prefork", "--concurrency", "2", "--without-gossip", "--without-mingle",
                 "--without-heartbeat", "--loglevel", "WARNING"])
"""

SETUP = f"""
from segments.traits.services import computed_trait_save
from audiences.services import source_create
from integrations.destinations.services import destination_create
computed_trait_save(key="features_used", name="Features used", kind="count", event="{TRAIT_EVENT}")
destination_create(name="Fault receiver", kind="webhook", url="http://127.0.0.1:{RECEIVER_PORT}/hook",
                   kinds=["trait_changed"])
print(source_create(name="Faults")[1])
"""


def environment(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": DB_URL.replace("postgresql://", "postgres://", 1),
        "CELERY_BROKER_URL": BROKER_URL,
        "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        "DEBUG": "false",
        "DESTINATIONS_ALLOW_PRIVATE_URLS": "true",
        "LOG_LEVEL": "ERROR",
        "TRIALLOOP_VAR_DIR": str(VAR_DIR),
        **extra,
    }


def run(command: list[str], **extra: str) -> str:
    done = subprocess.run(command, cwd=ROOT, env=environment(**extra), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    return done.stdout.strip()


def django_shell(code: str, **extra: str) -> str:
    return run([sys.executable, "manage.py", "shell", "-c", code], **extra)


# --- servers of our own -------------------------------------------------------------------------------------


def pg_version() -> str:
    return sorted(os.listdir("/etc/postgresql"), key=int)[-1]


def postgres_start() -> bool:
    """Create the `faults` cluster (trust auth on loopback) if missing, and start it; True if this started it."""
    version = pg_version()
    clusters = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True).stdout
    if not any(line.split()[:2] == [version, CLUSTER] for line in clusters.splitlines()):
        subprocess.run(
            ["pg_createcluster", version, CLUSTER, "-p", str(PG_PORT), "--", "--auth-host=trust", "--auth-local=trust"],
            check=True,
            capture_output=True,
        )
    if f"{PG_PORT} online" in subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout:
        return False
    subprocess.run(["pg_ctlcluster", version, CLUSTER, "start"], check=True)
    return True


def postgres_restart() -> float:
    """Restart the `faults` cluster (fast shutdown: open connections are cut); returns seconds it took."""
    started = time.perf_counter()
    subprocess.run(["pg_ctlcluster", pg_version(), CLUSTER, "restart"], check=True)
    return time.perf_counter() - started


def redis_start() -> None:
    for folder in ("redis", "staticfiles"):
        (VAR_DIR / folder).mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["redis-server", "--port", str(REDIS_PORT), "--daemonize", "yes", "--save", "", "--appendonly", "yes",
         "--dir", str(VAR_DIR / "redis"), "--bind", "127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    for _ in range(50):
        if subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "ping"], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError("redis did not start")


def redis_stop() -> None:
    subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "shutdown", "nosave"], capture_output=True)
    for _ in range(50):
        if subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "ping"], capture_output=True).returncode != 0:
            return
        time.sleep(0.1)


def fresh_database() -> str:
    """A migrated database with a source, a count computed trait and a webhook destination; the write key."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB_NAME}")
    run([sys.executable, "manage.py", "migrate", "--no-input"])
    # Eager, so the trait's (empty) backfill is done before any event arrives.
    return django_shell(SETUP, CELERY_TASK_ALWAYS_EAGER="true").splitlines()[-1]


def start_web() -> subprocess.Popen[bytes]:
    command = [str(Path(sys.executable).parent / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{WEB_PORT}"]
    command += ["--workers", "2", "--log-level", "error"]
    log = (VAR_DIR / "gunicorn.log").open("ab")
    server = subprocess.Popen(command, cwd=ROOT, env=environment(), start_new_session=True, stdout=log, stderr=log)
    for _ in range(150):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", WEB_PORT, timeout=1)
            connection.request("GET", "/login/")
            connection.getresponse().read()
            return server
        except OSError:
            time.sleep(0.2)
    stop(server)
    raise RuntimeError("gunicorn did not start")


def start_worker() -> subprocess.Popen[bytes]:
    log = (VAR_DIR / "worker.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-c", WORKER], cwd=ROOT, env=environment(), start_new_session=True, stdout=log, stderr=log
    )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal the process group this script started (the worker's pool children or gunicorn's workers too)."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# --- clients --------------------------------------------------------------------------------------------------


class Client:
    """Sends batches the way Segment's libraries do: a non-200 answer or a broken connection is retried with the
    same body (the same message ids) after a short backoff."""

    def __init__(self, write_key: str) -> None:
        auth = "Basic " + b64encode(f"{write_key}:".encode()).decode()
        self.headers = {"Content-Type": "application/json", "Authorization": auth}
        self.statuses: Counter[str] = Counter()
        self.retries = 0
        self.lock = threading.Lock()

    def send(self, batch: list[dict[str, Any]], *, attempts: int = 60) -> None:
        body = orjson.dumps({"batch": batch, "sentAt": datetime.now(UTC).isoformat()})
        for attempt in range(attempts):
            outcome = self._post(body)
            with self.lock:
                self.statuses[outcome] += 1
                if outcome != "200":
                    self.retries += 1
            if outcome == "200":
                return
            time.sleep(min(0.1 * 2**attempt, 1.0))
        raise RuntimeError(f"a batch was refused {attempts} times")

    def _post(self, body: bytes) -> str:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", WEB_PORT, timeout=30)
            connection.request("POST", "/v1/batch", body=body, headers=self.headers)
            response = connection.getresponse()
            response.read()
            connection.close()
            return str(response.status)
        except OSError as error:
            return f"connection error ({type(error).__name__})"


def calls(user: str, *, tracks: int, identify: bool = True) -> list[dict[str, Any]]:
    """An identify (with an email, so the profile work is visible) and `tracks` trait events of one user."""
    now = datetime.now(UTC).isoformat()
    messages: list[dict[str, Any]] = [
        {"type": "track", "userId": user, "event": TRAIT_EVENT, "timestamp": now} for _ in range(tracks)
    ]
    if identify:
        traits = {"email": f"{user}@example.com"}
        messages.insert(0, {"type": "identify", "userId": user, "traits": traits, "timestamp": now})
    for message in messages:
        message["messageId"] = str(uuid.uuid4())
    return messages


def scalar(sql: str, params: tuple[Any, ...] = ()) -> Any:
    with psycopg.connect(DB_URL, autocommit=True) as connection:
        row = connection.execute(sql, params).fetchone()
    return row[0] if row else None


def wait_until(check: Callable[[], bool], seconds: float, what: str) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        try:
            if check():
                return time.perf_counter() - started
        except psycopg.OperationalError:
            pass  # the database restarting
        time.sleep(0.25)
    raise RuntimeError(f"timed out after {seconds} s waiting for {what}")


def profiles_pending(prefix: str) -> int:
    """Stored events of these users whose customer never had its profile work (no email, never seen)."""
    return int(
        scalar(
            "SELECT count(*) FROM audiences_event e JOIN audiences_customer c ON c.id = e.customer_id"
            " WHERE e.user_id LIKE %s AND (c.last_seen_at IS NULL OR c.email = '')",
            (prefix + "%",),
        )
    )


def stored(prefix: str) -> tuple[int, int]:
    """Events stored for these users, and how many of them repeat a (source, message id)."""
    row = None
    with psycopg.connect(DB_URL, autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*), count(*) - count(DISTINCT (source_id, message_id)) FROM audiences_event"
            " WHERE user_id LIKE %s",
            (prefix + "%",),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def trait_total(prefix: str) -> int:
    """Sum of the count trait over these users: each stored trait event must be counted exactly once."""
    return int(
        scalar(
            "SELECT coalesce(sum(v.number_value), 0) FROM audiences_computedtraitvalue v"
            " JOIN audiences_customer c ON c.id = v.customer_id WHERE c.user_id LIKE %s",
            (prefix + "%",),
        )
    )


def trait_events(prefix: str) -> int:
    return int(
        scalar("SELECT count(*) FROM audiences_event WHERE name = %s AND user_id LIKE %s", (TRAIT_EVENT, prefix + "%"))
    )


Row = dict[str, Any]


# --- (a) a worker killed mid-task -----------------------------------------------------------------------------


def worker_killed(client: Client, processes: dict[str, subprocess.Popen[bytes]]) -> Row:
    users = [f"a_{i}" for i in range(20)]
    for user in users:  # the customers exist and are idle before the fault
        client.send(calls(user, tracks=0))
    wait_until(lambda: profiles_pending("a_") == 0, 60, "the warm-up profiles")
    batch = [m for user in users for m in calls(user, tracks=5, identify=False)]
    with psycopg.connect(DB_URL) as blocker:
        # Hold the customers' rows the way a long-running batch would: the worker's task waits inside its
        # transaction, before anything commits.
        blocker.execute("SELECT id FROM audiences_customer WHERE user_id LIKE 'a\\_%' FOR NO KEY UPDATE").fetchall()
        client.send(batch)
        wait_until(
            lambda: (
                scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'", (DB_NAME,)
                )
                > 0
            ),
            60,
            "the worker to be inside the batch's task",
        )
        stop(processes["worker"], signal.SIGKILL)
        unacknowledged = redis_count("hlen", "unacked")  # the task waits in Redis for its re-delivery
        blocker.rollback()
    killed_at = time.perf_counter()
    processes["worker"] = start_worker()
    expected = trait_events("a_")
    wait_until(lambda: trait_total("a_") >= expected, 120, "the re-delivered task")
    redelivered_after = time.perf_counter() - killed_at
    after_kill = trait_total("a_")
    # A second delivery after the effect committed — what a worker lost between commit and ack causes.
    with psycopg.connect(DB_URL, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT id FROM audiences_event WHERE name = %s AND user_id LIKE 'a\\_%%' ORDER BY id", (TRAIT_EVENT,)
        ).fetchall()
    ids = [int(row[0]) for row in rows]
    applied_before = int(scalar("SELECT count(*) FROM audiences_appliedeventbatch"))
    django_shell(f"from audiences.tasks import apply_events_to_profiles\napply_events_to_profiles.delay({ids})")
    wait_until(lambda: redis_queue_empty(), 60, "the duplicate delivery")
    time.sleep(2)
    total = trait_total("a_")
    ledger = int(scalar("SELECT count(*) FROM audiences_appliedeventbatch")) - applied_before
    sent = len(batch)
    count, duplicates = stored("a_")
    lost = max(0, expected - total) + (sent + len(users) - count)
    return {
        "scenario": "a) worker SIGKILLed mid-task",
        "sent": sent,
        "stored": expected,
        "retried": unacknowledged + 1,  # the re-delivery after the kill and the duplicate delivery
        "lost": lost,
        "notes": f"{unacknowledged} unacknowledged task in Redis after the kill, re-delivered "
        f"{redelivered_after:.0f} s after it (visibility timeout {VISIBILITY_TIMEOUT} s); "
        f"count trait {after_kill} after re-run, {total} after a duplicate delivery, expected {expected} "
        f"({'once' if total == expected else 'COUNTED TWICE'}); ledger rows added by the duplicate: {ledger}; "
        f"duplicate events: {duplicates}",
        "counted_once": total == expected,
        "broken": total != expected or duplicates > 0,
    }


def redis_count(command: str, key: str) -> int:
    """LLEN of a queue or HLEN of the unacknowledged-message hash on our Redis."""
    out = subprocess.run(
        ["redis-cli", "-p", str(REDIS_PORT), command, key], capture_output=True, text=True, check=True
    ).stdout.strip()
    return int(out)


def redis_queue_empty() -> bool:
    return redis_count("llen", "celery") + redis_count("hlen", "unacked") == 0


# --- (b) Redis stopped while events arrive --------------------------------------------------------------------


def send_rounds(
    client: Client,
    prefix: str,
    rounds: int,
    fault_at: int,
    fault: Callable[[], None],
    tracks: int = 9,
    recover_at: int | None = None,
    recover: Callable[[], None] | None = None,
) -> int:
    """Two senders, one batch per user; the fault (and recovery) fire from the driver at the given batch counts.
    Returns how many calls were sent."""
    done = Counter[str]()
    lock = threading.Lock()
    batches = [calls(f"{prefix}{i}", tracks=tracks) for i in range(rounds)]

    def sender(offset: int) -> None:
        for index in range(offset, rounds, 2):
            client.send(batches[index])
            with lock:
                done["batches"] += 1
            time.sleep(0.05)

    threads = [threading.Thread(target=sender, args=(offset,)) for offset in range(2)]
    for thread in threads:
        thread.start()
    wait_until(lambda: done["batches"] >= fault_at, 120, "the batches before the fault")
    fault()
    if recover is not None and recover_at is not None:
        wait_until(lambda: done["batches"] >= recover_at, 120, "the batches during the fault")
        recover()
    for thread in threads:
        thread.join()
    return sum(len(batch) for batch in batches)


def redis_stopped(client: Client) -> Row:
    before = Counter(client.statuses)
    outage: dict[str, float] = {}

    def down() -> None:
        outage["start"] = time.perf_counter()
        redis_stop()

    def up() -> None:
        redis_start()
        outage["seconds"] = time.perf_counter() - outage["start"]

    sent = send_rounds(client, "b_", 60, 15, down, recover_at=45, recover=up)
    kept = int(scalar("SELECT count(*) FROM audiences_unqueuedeventbatch"))
    # What beat does every minute, sent through the broker like beat would.
    django_shell("from audiences.tasks import requeue_unqueued_batches\nrequeue_unqueued_batches.delay()")
    caught_up = wait_until(lambda: profiles_pending("b_") == 0, 180, "the requeued profile work")
    count, duplicates = stored("b_")
    answers = Counter(client.statuses) - before
    return {
        "scenario": "b) Redis stopped while events arrive",
        "sent": sent,
        "stored": count,
        "retried": kept,
        "lost": (sent - count) + profiles_pending("b_"),
        "notes": f"Redis down {outage['seconds']:.1f} s; answers {dict(answers)}; {kept} batches kept while the broker "
        f"was down and requeued, profiles caught up {caught_up:.1f} s after the requeue; duplicate events: "
        f"{duplicates}",
        "answers": dict(answers),
        "broken": set(answers) != {"200"} or duplicates > 0,
    }


# --- (c) PostgreSQL restarted during ingestion ----------------------------------------------------------------


RETRYABLE = {"500", "502", "503", "504"}


def postgres_restarted(client: Client) -> Row:
    before = Counter(client.statuses)
    retries_before = client.retries
    took: dict[str, float] = {}

    def restart() -> None:
        took["seconds"] = postgres_restart()

    sent = send_rounds(client, "c_", 80, 20, restart)
    caught_up = wait_until(lambda: profiles_pending("c_") == 0, 180, "the profile work after the restart")
    count, duplicates = stored("c_")
    answers = Counter(client.statuses) - before
    refused = {k: v for k, v in answers.items() if k != "200" and k not in RETRYABLE and not k.startswith("connection")}
    return {
        "scenario": "c) PostgreSQL restarted during ingestion",
        "sent": sent,
        "stored": count,
        "retried": client.retries - retries_before,
        "lost": (sent - count) + profiles_pending("c_"),
        "notes": f"restart took {took['seconds']:.1f} s; answers {dict(answers)}; non-retryable answers: "
        f"{refused or 'none'}; duplicate events: {duplicates}; profiles done {caught_up:.1f} s after the last batch",
        "answers": dict(answers),
        "non_retryable": refused,
        "broken": bool(refused) or duplicates > 0,
    }


# --- (d) a destination down for an hour -----------------------------------------------------------------------


class Receiver(ThreadingHTTPServer):
    """The destination: answers 503 while `down`, else 204 and notes each delivery in arrival order."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", RECEIVER_PORT), _Hook)
        self.down = False
        self.refused = 0
        self.arrivals: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        server = self.server
        assert isinstance(server, Receiver)
        with server.lock:
            if server.down:
                server.refused += 1
                self.send_response(503)
            else:
                server.arrivals.append((self.headers.get("webhook-id", ""), json.loads(body)))
                self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


def deliveries(prefix: str, where: str = "") -> int:
    return int(
        scalar(
            "SELECT count(*) FROM integrations_destinationdelivery d JOIN audiences_customer c ON c.id = d.customer_id"
            f" WHERE c.user_id LIKE %s {where}",
            (prefix + "%",),
        )
    )


CLOCK = """
from datetime import timedelta
from django.db.models import F
from integrations.destinations.sending import destination_flush
from integrations.destinations.models import Destination, DestinationDelivery
pending = DestinationDelivery.objects.filter(status="pending")
destinations = list(Destination.objects.values_list("pk", flat=True))
minute = 0
while minute < {minutes} and not ({until_done} and not pending.exists()):
    pending.update(next_attempt_at=F("next_attempt_at") - timedelta(minutes=1))
    for destination_id in destinations:
        destination_flush(destination_id=destination_id)
    minute += 1
print(minute)
"""


def destination_down(client: Client, receiver: Receiver) -> Row:
    users = [f"d_{i}" for i in range(10)]
    receiver.down = True
    receiver.refused = 0
    rounds = 3
    for round_ in range(rounds):  # each round's batch is applied before the next: trait values 1, 2, 3 in order
        for user in users:
            client.send(calls(user, tracks=1, identify=round_ == 0))
        target = len(users) * (round_ + 1)
        wait_until(lambda: trait_total("d_") >= target, 60, "the round's trait changes")  # noqa: B023
    created = deliveries("d_")
    # An hour of outage, then the catch-up, a minute at a time: each simulated minute moves every pending
    # delivery's due time a minute closer and runs what the beat sweep starts (a flush of the destination).
    # Job locks are PostgreSQL advisory locks (config.locks): a flush cut off by scenario (c)'s restart lost its
    # session and its lock with it, so no lease is left to age (the notes show the advisory locks held when the
    # outage starts: only a flush running at that moment, never one of a session that died).
    held = int(scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"))
    outage = django_shell(CLOCK.format(minutes=60, until_done=False))
    receiver.down = False
    minutes = int(django_shell(CLOCK.format(minutes=24 * 60, until_done=True)).splitlines()[-1])
    wait_until(lambda: deliveries("d_", "AND d.status = 'delivered'") == created, 60, "the catch-up")
    ours = [(key, body) for key, body in receiver.arrivals if body["customer"]["user_id"].startswith("d_")]
    distinct = {key for key, _ in ours}
    first: dict[str, dict[str, Any]] = {}
    for key, body in ours:
        first.setdefault(key, body)
    by_customer: dict[str, list[Any]] = {}
    for body in first.values():
        by_customer.setdefault(body["customer"]["user_id"], []).append(body["data"]["new"])
    out_of_order = sum(1 for values in by_customer.values() if values != sorted(values))
    return {
        "scenario": "d) destination down for an hour",
        "sent": created,
        "stored": len(distinct),
        "retried": receiver.refused,
        "lost": created - len(distinct),
        "notes": f"{receiver.refused} attempts refused with 503 in {outage.splitlines()[-1]} simulated minutes; "
        f"all delivered {minutes} simulated minutes after the receiver returned; "
        f"advisory job locks held when the outage started: {held}; "
        f"delivered twice: {len(ours) - len(distinct)}; customers whose changes arrived out of order: "
        f"{out_of_order} of {len(by_customer)} (order is not guaranteed after retries; see docs/destinations.md)",
        "out_of_order_customers": out_of_order,
        "broken": len(ours) != len(distinct),
    }


def main() -> None:
    print("faults: worker kill, Redis stop, PostgreSQL restart, destination outage (own PostgreSQL :5440, Redis :6390)")
    started_postgres = postgres_start()
    redis_start()
    subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "flushall"], capture_output=True, check=True)
    write_key = fresh_database()
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    processes = {"web": start_web(), "worker": start_worker()}
    client = Client(write_key)
    results: list[Row] = []
    try:
        results.append(worker_killed(client, processes))
        results.append(redis_stopped(client))
        results.append(postgres_restarted(client))
        results.append(destination_down(client, receiver))
    finally:
        for process in processes.values():
            stop(process)
        receiver.shutdown()
        redis_stop()
        if started_postgres:
            subprocess.run(["pg_ctlcluster", pg_version(), CLUSTER, "stop"], check=True)
    header = f"{'sent':>6} {'stored':>6} {'retried':>7} {'lost':>4}  notes"
    rows = [("scenario", header)]
    for r in results:
        rows.append((r["scenario"], f"{r['sent']:>6} {r['stored']:>6} {r['retried']:>7} {r['lost']:>4}  {r['notes']}"))
    report("faults", rows, {"scenarios": results, "lost": sum(r["lost"] for r in results)})
    broken = [r["scenario"] for r in results if r["lost"] or r.get("broken")]
    if broken:
        raise SystemExit(f"faults: a promise was broken in {', '.join(broken)}")


if __name__ == "__main__":
    main()
