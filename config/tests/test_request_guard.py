"""Input no endpoint can use, and a database that is down or slow, get a clear 4xx/503 — never a 500 — in the
caller's format: JSON on the REST API, the tracking API and the Stripe webhook, an HTML page for people
(config/request_guard.py, config/json_input.py, config/statement_timeout.py; docs/api.md)."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.db import OperationalError, connection
from django.test import Client
from rest_framework.authtoken.models import Token

from audiences.api import CustomerViewSet
from audiences.services import source_create
from audiences.views import CustomerListView
from config.json_input import MAX_JSON_DEPTH, JSONRejected, json_load
from config.request_guard import RETRY_AFTER_SECONDS
from config.statement_timeout import statement_timeout_for_this_process, statement_timeout_set
from conftest import ROOT, database_url_of_test_database
from integrations.stripe.models import StripeCustomer
from integrations.tests import stripe_payloads as sp

OVER_LIMIT = b'{"name": "' + b"x" * (2_621_440 + 1) + b'"}'
ON_POSTGRES = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="a PostgreSQL feature")
WEBHOOK_SECRET = "whsec_guard"


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def assert_json_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body: dict[str, Any] = response.json()
    assert isinstance(body["error"], str) and body["error"]
    return body


def assert_html_page(response: Any, status: int, text: str) -> None:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("text/html")
    assert text in response.content.decode()


@pytest.fixture
def token_client(admin_user: AbstractUser) -> Client:
    token, _ = Token.objects.get_or_create(user=admin_user)
    return Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Token {token.key}")


@pytest.fixture
def staff_client(admin_user: AbstractUser) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)  # type: ignore[arg-type]
    return client


@pytest.fixture
def write_key(db: Any) -> str:
    _, key = source_create(name="Guarded app")
    return key


@pytest.fixture
def webhook_secret(settings: Any) -> str:
    settings.STRIPE_WEBHOOK_SECRETS = [WEBHOOK_SECRET]
    return WEBHOOK_SECRET


class TestJSONLimits:
    def test_depth_limit_is_exact(self) -> None:
        assert json_load(nested(MAX_JSON_DEPTH - 1)) is not None  # the object holding "a" adds one level
        with pytest.raises(JSONRejected, match="nested deeper than 64"):
            json_load("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))

    @pytest.mark.parametrize("text", ['{"a\\u0000": 1}', '[["x\\u0000y"]]', '"\\u0000"'])
    def test_nul_in_any_key_or_string_is_refused(self, text: str) -> None:
        with pytest.raises(JSONRejected, match="NUL"):
            json_load(text)

    @pytest.mark.parametrize("text", ["NaN", '"\\ud800"', b'"\xff"', "{"])
    def test_what_postgresql_cannot_store_is_not_json(self, text: str | bytes) -> None:
        with pytest.raises(JSONRejected, match="JSON parse error"):
            json_load(text)


@pytest.mark.django_db
class TestDeepJSON:
    """Python's json recursed out (RecursionError, a 500) on a body nested ~1,000 deep."""

    @pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1000, 100_000])
    def test_rest_body_too_deep_is_a_400(self, token_client: Client, depth: int) -> None:
        response = token_client.post("/api/v1/segments/", nested(depth), content_type="application/json")
        assert "nested deeper than 64" in assert_json_error(response, 400)["error"]

    def test_product_api_body_too_deep_is_a_400(self, write_key: str) -> None:
        response = Client().post(
            "/api/v1/cancellation-sessions/",
            '{"user_id": "usr_1", "context": ' + nested(1000) + "}",
            content_type="application/json",
            HTTP_AUTHORIZATION=basic(write_key),
        )
        assert_json_error(response, 400)

    def test_signed_stripe_event_too_deep_is_a_400(self, webhook_secret: str) -> None:
        event = sp.encode(sp.event("customer.updated", {"id": "cus_1", "object": "customer"}))
        body = event.replace(b'"object": "customer"', b'"object": "customer", "metadata": ' + nested(990).encode())
        response = Client(raise_request_exception=False).post(
            "/webhooks/stripe/",
            body,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=sp.sign(body, webhook_secret),
        )
        assert "nested deeper than 64" in assert_json_error(response, 400)["error"]

    def test_form_encoded_json_field_too_deep_is_a_400(self, token_client: Client) -> None:
        # DRF hands a form field to its JSONField as text, which it parses with Python's json.
        response = token_client.post("/api/v1/segments/", {"name": "Deep", "conditions": nested(5000)})
        assert_json_error(response, 400)

    def test_page_form_json_field_too_deep_is_an_html_400(self, staff_client: Client) -> None:
        response = staff_client.post("/segments/new/", {"name": "Deep", "conditions": nested(5000)})
        assert_html_page(response, 400, "nested too deeply")


@pytest.mark.django_db
class TestOversizeBodies:
    """Over DATA_UPLOAD_MAX_MEMORY_SIZE: a 413 in the caller's format, whatever the Content-Encoding says."""

    @pytest.mark.parametrize("encoding", [None, "identity"])
    @pytest.mark.parametrize(
        "url", ["/api/v1/segments/", "/api/v1/cancellation-sessions/", "/webhooks/stripe/", "/v1/batch"]
    )
    def test_machine_endpoints_answer_413_json(self, token_client: Client, url: str, encoding: str | None) -> None:
        headers = {"Content-Encoding": encoding} if encoding else None
        response = token_client.post(url, OVER_LIMIT, content_type="application/json", headers=headers)
        body = assert_json_error(response, 413)
        assert body["code"] == "request_too_large"
        assert "2560 KB" in body["error"]

    def test_tracking_api_413_keeps_its_error_shape(self, write_key: str) -> None:
        response = Client().post(
            "/v1/batch", OVER_LIMIT, content_type="text/plain", HTTP_AUTHORIZATION=basic(write_key)
        )
        body = assert_json_error(response, 413)
        assert (body["success"], body["code"]) == (False, "request_too_large")
        assert response["Access-Control-Allow-Origin"] == "*"

    def test_multipart_field_over_the_limit_is_a_413(self, token_client: Client) -> None:
        # Uploads are not limited by size, but a multipart text field is (Django raises while the view parses).
        response = token_client.post("/api/v1/segments/", {"name": "x" * (2_621_440 + 1)})
        assert_json_error(response, 413)

    def test_page_form_over_the_limit_is_an_html_413(self, staff_client: Client) -> None:
        body = b"name=" + b"x" * (2_621_440 + 1)
        response = staff_client.post("/segments/new/", body, content_type="application/x-www-form-urlencoded")
        assert_html_page(response, 413, "larger than 2560 KB")


@pytest.mark.django_db
class TestNulAndBrokenUTF8:
    """PostgreSQL cannot store U+0000 (psycopg raised DataError, a 500); broken UTF-8 was silently replaced."""

    def test_nul_in_a_path_parameter(self, write_key: str) -> None:
        response = Client().get("/api/v1/in-app/usr%00x", HTTP_AUTHORIZATION=basic(write_key))
        assert "NUL" in assert_json_error(response, 400)["error"]

    @pytest.mark.parametrize("query", ["?email=a%00b", "?%00=1", "?user_id=%ff%fe", "?q=%ed%a0%80"])
    def test_nul_or_broken_utf8_in_a_query_string(self, token_client: Client, query: str) -> None:
        body = assert_json_error(token_client.get("/api/v1/customers/" + query), 400)
        assert body["code"] == "invalid_input"

    def test_broken_utf8_in_the_path(self, token_client: Client) -> None:
        assert "UTF-8" in assert_json_error(token_client.get("/api/v1/in-app/%ff"), 400)["error"]

    @pytest.mark.parametrize(
        "body",
        [
            {"name": "a\x00b", "conditions": {"type": "group", "operator": "and", "children": []}},
            {"name": "ok", "conditions": {"type": "condition", "property": "customer.email", "value": "a\x00b"}},
        ],
    )
    def test_nul_in_a_json_body(self, token_client: Client, body: dict[str, Any]) -> None:
        response = token_client.post("/api/v1/segments/", json.dumps(body), content_type="application/json")
        assert "NUL" in assert_json_error(response, 400)["error"]

    def test_lone_surrogate_in_a_json_body(self, token_client: Client) -> None:
        body = '{"name": "\\ud800", "conditions": {"type": "group", "operator": "and", "children": []}}'
        response = token_client.post("/api/v1/segments/", body, content_type="application/json")
        assert_json_error(response, 400)

    def test_nul_in_a_page_form(self, staff_client: Client) -> None:
        unlinked = StripeCustomer.objects.create(stripe_customer_id="cus_nul")
        response = staff_client.post(
            f"/integrations/stripe/customers/{unlinked.pk}/link/",
            "profile=usr%00",
            content_type="application/x-www-form-urlencoded",
        )
        assert_html_page(response, 400, "NUL")

    @ON_POSTGRES
    def test_nul_in_a_multipart_form_field_is_refused_by_postgresql_and_answered_400(
        self, staff_client: Client
    ) -> None:
        unlinked = StripeCustomer.objects.create(stripe_customer_id="cus_nul")
        response = staff_client.post(f"/integrations/stripe/customers/{unlinked.pk}/link/", {"profile": "usr\x00"})
        assert_html_page(response, 400, "NUL")

    def test_nul_in_a_page_query_string(self, staff_client: Client) -> None:
        assert_html_page(staff_client.get("/integrations/stripe/?status=%00"), 400, "NUL")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def database_down(transactional_db: None) -> Iterator[None]:
    """The real thing: the connection settings point at nothing (a closed port; for SQLite, a file that cannot
    be opened), so the first query of a request fails to connect."""
    settings_dict = connection.settings_dict
    saved = dict(settings_dict)
    connection.close()
    if connection.vendor == "postgresql":
        settings_dict["PORT"] = closed_port()
    else:
        settings_dict["NAME"] = "/nonexistent-directory/trialloop.sqlite3"
    try:
        yield
    finally:
        connection.close()
        settings_dict.clear()
        settings_dict.update(saved)


def assert_unavailable(response: Any) -> dict[str, Any]:
    body = assert_json_error(response, 503)
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert body["code"] == "temporarily_unavailable"
    return body


class TestDatabaseUnavailable:
    @pytest.fixture
    def clients(
        self, transactional_db: None, make_user: Callable[..., AbstractUser], settings: Any
    ) -> tuple[Client, Client, str]:
        settings.STRIPE_WEBHOOK_SECRETS = [WEBHOOK_SECRET]
        from config.roles import Role

        admin = make_user(Role.ADMIN)
        token, _ = Token.objects.get_or_create(user=admin)
        staff = Client(raise_request_exception=False)
        staff.force_login(admin)  # type: ignore[arg-type]
        _, key = source_create(name="Outage app")
        return Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Token {token.key}"), staff, key

    def test_rest_tracking_webhook_and_pages_while_the_database_is_down(
        self, clients: tuple[Client, Client, str], database_down: None
    ) -> None:
        api, staff, key = clients
        assert_unavailable(api.get("/api/v1/customers/"))
        tracked = Client(raise_request_exception=False).post(
            "/v1/track",
            json.dumps({"userId": "usr_1", "event": "Signed Up"}),
            content_type="application/json",
            HTTP_AUTHORIZATION=basic(key),
        )
        assert assert_unavailable(tracked)["success"] is False
        event = sp.encode(sp.event("customer.created", {"id": "cus_1", "object": "customer"}))
        assert_unavailable(
            Client(raise_request_exception=False).post(
                "/webhooks/stripe/",
                event,
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=sp.sign(event, WEBHOOK_SECRET),
            )
        )
        page = staff.get("/customers/")
        assert_html_page(page, 503, "temporarily unavailable")
        assert page["Retry-After"] == str(RETRY_AFTER_SECONDS)

    def test_database_error_outside_a_view_is_a_503(
        self, clients: tuple[Client, Client, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A middleware meeting the outage (handler500) answers the same 503."""

        def broken(*args: Any) -> Any:
            raise OperationalError("server closed the connection unexpectedly")

        monkeypatch.setattr("django.contrib.messages.middleware.MessageMiddleware.process_response", broken)
        api, staff, _ = clients
        assert_unavailable(api.get("/api/v1/customers/"))
        assert_html_page(staff.get("/customers/"), 503, "temporarily unavailable")

    def test_a_crash_on_the_api_is_a_json_500(
        self, clients: tuple[Client, Client, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def crash(*args: Any) -> Any:
            raise RuntimeError("a bug")

        monkeypatch.setattr(CustomerViewSet, "get_queryset", crash)
        monkeypatch.setattr(CustomerListView, "get_context_data", crash)
        api, staff, _ = clients
        assert assert_json_error(api.get("/api/v1/customers/"), 500)["code"] == "server_error"
        assert_html_page(staff.get("/customers/"), 500, "Something went wrong")


@ON_POSTGRES
class TestStatementTimeout:
    @pytest.fixture
    def web_timeout(self, transactional_db: None, settings: Any) -> Iterator[None]:
        """The web process's receiver, and a fresh connection so it runs."""
        settings.DATABASE_STATEMENT_TIMEOUT_MS = 200
        statement_timeout_for_this_process()
        connection.close()
        try:
            yield
        finally:
            from django.db.backends.signals import connection_created

            connection_created.disconnect(statement_timeout_set, dispatch_uid="config.statement_timeout")
            connection.close()

    def test_a_slow_query_is_cancelled_and_answered_503(
        self, web_timeout: None, admin_user: AbstractUser, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        original = CustomerViewSet.get_queryset

        def slow(viewset: CustomerViewSet) -> Any:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_sleep(5)")
            return original(viewset)

        monkeypatch.setattr(CustomerViewSet, "get_queryset", slow)
        token, _ = Token.objects.get_or_create(user=admin_user)
        started = time.monotonic()
        response = Client(raise_request_exception=False).get(
            "/api/v1/customers/", HTTP_AUTHORIZATION=f"Token {token.key}"
        )
        assert_unavailable(response)
        assert time.monotonic() - started < 3

    @pytest.mark.parametrize(
        ("process", "expected"),
        [
            ("import config.wsgi", "5s"),
            ("import config.asgi", "5s"),
            # What a Celery worker and a management command load: settings and the Celery app, never the above.
            ("import django; django.setup(); import config.celery", "0"),
        ],
    )
    def test_only_the_web_entry_points_set_it(self, db: None, process: str, expected: str) -> None:
        code = (
            f"{process}; from django.db import connection; cursor = connection.cursor(); "
            "cursor.execute('SHOW statement_timeout'); print(cursor.fetchone()[0])"
        )
        env = {
            **os.environ,
            "DATABASE_URL": database_url_of_test_database(),
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
        }
        env.pop("DATABASE_STATEMENT_TIMEOUT_MS", None)
        shown = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()
        assert shown == expected

    def test_a_management_command_has_no_limit(self, db: None) -> None:
        env = {**os.environ, "DATABASE_URL": database_url_of_test_database()}
        code = "from django.db import connection; c = connection.cursor(); c.execute('SHOW statement_timeout'); print(c.fetchone()[0])"
        shown = subprocess.run(
            [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
            cwd=ROOT,
            env={**env, "DJANGO_SETTINGS_MODULE": "config.settings.test"},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
        assert shown == "0"
