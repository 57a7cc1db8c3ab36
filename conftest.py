"""Fixtures shared by every app's tests: staff users per role, API clients and a small customer graph."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import connection, connections
from django.test.testcases import LiveServerThread, _StaticFilesHandler
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from audiences.models import Account, Customer, Event, Source
from audiences.services import source_create
from config.roles import Role
from config.services import user_create_with_role
from integrations.stripe.models import Plan, Product, Subscription

TEST_PASSWORD = "correct-horse-battery-staple"
ROOT = Path(__file__).resolve().parent


@pytest.fixture
def make_user(db: Any) -> Callable[..., AbstractUser]:
    def make(role: Role, username: str | None = None) -> AbstractUser:
        name = username or role.value.lower().replace(" ", "_")
        return user_create_with_role(username=name, password=TEST_PASSWORD, role=role)

    return make


@pytest.fixture
def admin_user(make_user: Callable[..., AbstractUser]) -> AbstractUser:
    return make_user(Role.ADMIN)


@pytest.fixture
def rep_user(make_user: Callable[..., AbstractUser]) -> AbstractUser:
    return make_user(Role.SALES_REP)


@pytest.fixture
def api_client_for() -> Callable[[AbstractUser], APIClient]:
    def client_for(user: AbstractUser) -> APIClient:
        client = APIClient()
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return client_for


@pytest.fixture
def source(db: Any) -> Source:
    created, _ = source_create(name="Web app")
    return created


@pytest.fixture
def plan(db: Any) -> Plan:
    product = Product.objects.create(name="Team", stripe_product_id="prod_team")
    return Plan.objects.create(product=product, name="Team monthly", stripe_price_id="price_team_m", amount_cents=4900)


@pytest.fixture
def customer(db: Any, source: Source, plan: Plan) -> Customer:
    """Ada at Acme: identified, on a trial of the Team plan, with three events."""
    now = timezone.now()
    account = Account.objects.create(group_id="grp_acme", name="Acme", domain="acme.test", traits={"employees": 40})
    ada = Customer.objects.create(
        user_id="usr_ada",
        email="ada@acme.test",
        name="Ada Lovelace",
        account=account,
        traits={"title": "CTO", "use_case": "analytics"},
        first_seen_at=now - timedelta(days=3),
        last_seen_at=now,
    )
    Subscription.objects.create(
        customer=ada,
        plan=plan,
        status=Subscription.Status.TRIALING,
        started_at=now - timedelta(days=3),
        trial_start=now - timedelta(days=3),
        trial_end=now + timedelta(days=11),
    )
    for index, name in enumerate(["Signed Up", "Project Created", "Teammate Invited"]):
        Event.objects.create(
            source=source,
            message_id=f"msg-{index}",
            customer=ada,
            type=Event.Type.TRACK,
            name=name,
            user_id="usr_ada",
            properties={"step": index},
            timestamp=now - timedelta(days=3 - index),
            received_at=now,
        )
    return ada


@pytest.fixture
def live_url(transactional_db: None) -> Iterator[str]:
    """A live server for this test alone; stopping it closes its database connections before teardown."""
    server = LiveServerThread("127.0.0.1", _StaticFilesHandler, port=0)
    server.daemon = True
    server.start()
    server.is_ready.wait()
    if server.error:
        raise server.error
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.terminate()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def page() -> Iterator[Any]:
    if CHROMIUM is None:
        if settings.TEST_REQUIRE_BROWSER:
            pytest.fail("TEST_REQUIRE_BROWSER is set but no chromium is installed")
        pytest.skip("no chromium installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls made by the test are still sync.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 900})
        finally:
            browser.close()
            # Connections opened while Playwright's loop ran live in its context: close them here, or the
            # test database cannot be dropped at the end of the session.
            connections.close_all()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def csp_violations(page: Any) -> list[str]:
    """Start recording what the page's Content-Security-Policy blocks (Chromium reports each block on the
    console); the returned list fills as the page runs."""
    found: list[str] = []

    def console(message: Any) -> None:
        if "Content Security Policy" in message.text:
            found.append(f"{page.url}: {message.text}")

    page.on("console", console)
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a server a test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def database_url_of_test_database() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker_queue() -> Iterator[str]:
    """A real Celery worker process on the configured broker and the test database, consuming a queue of its own
    (so no other worker, say a running `make run`, takes the test's tasks); its log is printed on failure."""
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
