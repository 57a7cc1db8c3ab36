"""Schemathesis against every operation of `/api/schema/`, in-process over WSGI, signed in as an Admin.

For each operation, Hypothesis generates valid and invalid requests from the OpenAPI schema (half of the valid
ones aimed at real rows, so path parameters reach code past the 404) and each answer must be: not a 5xx, a
status the schema documents for the operation or one of the generic errors docs/api.md documents for every
endpoint, and fast. `FUZZ_EXAMPLES` raises the number of examples per operation (see docs/security.md).

Schemathesis does not generate what broke the API before (docs/api.md, "Errors"): JSON nested 1,000 deep, NUL
characters, bytes that are not UTF-8, bodies over the size limit. Each operation is then sent those too, and must
refuse them with a JSON 4xx. A last test checks that the schema, so this run, covers every API route.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from functools import cache, partial
from typing import Any

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.contrib.auth.models import AbstractUser
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from rest_framework.routers import APIRootView
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.schemas import OpenApiSchema

from config.roles import Role
from config.tests.role_world import World, build_world
from integrations.tests.test_fuzz_tracking import HANG_SECONDS, answered_within

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
MAX_SECONDS = 5.0
# docs/api.md: every endpoint may answer 400 (bad input), 401/403 (authentication, role), 404 (unknown id),
# 405 (method), 409 (conflict); DRF adds 406/415 for content negotiation, which the fuzzer's odd media types
# and Accept headers trigger.
GENERIC_ERRORS = {400, 401, 403, 404, 405, 406, 409, 415}
METHODS = ("get", "post", "put", "patch", "delete")
# The world object a resource's `{id}` names.
RESOURCE_OBJECTS = {
    "accounts": "account",
    "alerts": "my_alert",
    "cancellation-flows": "flow",
    "cancellation-reasons": "reason",
    "computed-traits": "computed_trait",
    "custom-properties": "custom_property",
    "customers": "customer",
    "destinations": "destination",
    "flow-rules": "flow_rule",
    "offer-rules": "offer_rule",
    "offers": "offer",
    "segments": "segment",
    "sources": "source",
    "subscriptions": "subscription",
    "trials": "trial",
}


def _operations() -> list[tuple[str, str]]:
    """Every (method, path) of the schema, known at collection time so each gets its own test id."""
    generator = SchemaGenerator()  # type: ignore[no-untyped-call]
    paths = generator.get_schema(request=None, public=True)["paths"]  # type: ignore[no-untyped-call]
    return [(method, path) for path, item in paths.items() for method in METHODS if method in item]


@cache
def _schema(authorization: str) -> OpenApiSchema:
    """The schema as the app serves it, loaded once (it does not depend on the test's data)."""
    return schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json", WSGIHandler(), headers={"Authorization": authorization}
    )


def _real_path_parameters(path: str, world: World) -> dict[str, Any]:
    """Values that name rows of the world for the parameters of `path` ({} when one is unknown)."""
    resource = path.removeprefix("/api/v1/").split("/")[0]
    known: dict[str, Any] = {
        "customer_pk": world.objects["customer"].pk,
        "delivery_pk": world.objects["delivery"].pk,
        "user_id": "usr_walk",
    }
    if resource in RESOURCE_OBJECTS:
        known["id"] = world.objects[RESOURCE_OBJECTS[resource]].pk
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    if not all(name in known for name in names):
        return {}
    return {name: known[name] for name in names}


@pytest.fixture
def in_process_wsgi() -> Iterator[None]:
    """Calls through the WSGI handler, inside the test's transaction: as Django's test client does, keep the
    request signals from closing the connection that holds it."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def world(db: Any, settings: Any, make_user: Callable[..., AbstractUser]) -> World:
    settings.DESTINATIONS_ALLOW_PRIVATE_URLS = True
    # A crash surfaces as the exception with its traceback rather than as a bare 500.
    settings.DEBUG_PROPAGATE_EXCEPTIONS = True
    return build_world(make_user)


@pytest.mark.parametrize(("method", "path"), _operations(), ids=lambda value: str(value))
def test_every_operation_answers_documented_statuses_without_errors(
    method: str, path: str, world: World, in_process_wsgi: None
) -> None:
    token, _ = Token.objects.get_or_create(user=world.users[Role.ADMIN])
    headers = {"Authorization": f"Token {token.key}"}
    operation = _schema(headers["Authorization"])[path][method.upper()]
    documented = {int(code) for code in operation.definition.raw["responses"] if code.isdigit()}
    strategies = [
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    ]
    real = _real_path_parameters(path, world)
    if real:
        strategies.append(operation.as_strategy(generation_mode=GenerationMode.POSITIVE, path_parameters=real))

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(strategies))
    def answers_well(case: Any) -> None:
        started = time.monotonic()
        with answered_within(HANG_SECONDS):
            response = case.call(headers=headers)
        elapsed = time.monotonic() - started
        case.validate_response(response, checks=[not_a_server_error], headers=headers)
        assert response.status_code in documented | GENERIC_ERRORS, (
            f"{case.method} {case.formatted_path} answered {response.status_code}, documented {sorted(documented)}:"
            f" {response.content[:300]!r}"
        )
        assert elapsed < MAX_SECONDS, f"{case.method} {case.formatted_path} took {elapsed:.1f} s"

    answers_well()
    _refuses_hostile_input(method, path, world, headers, has_body="requestBody" in operation.definition.raw)


def _url(path: str, world: World) -> str:
    """`path` with its parameters filled: rows of the world where known, else values of the right shape."""
    real = _real_path_parameters(path, world)
    fallback = {"token": "t" * 24, "user_id": "usr_walk"}
    for name in [part[1:-1] for part in path.split("/") if part.startswith("{")]:
        path = path.replace("{" + name + "}", str(real.get(name, fallback.get(name, "1"))))
    return path


def _refuses_hostile_input(method: str, path: str, world: World, headers: dict[str, str], *, has_body: bool) -> None:
    client = Client(HTTP_AUTHORIZATION=headers["Authorization"])
    url = _url(path, world)
    send = partial(client.generic, method.upper())
    oversize = b'{"name": "' + b"x" * django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE + b'"}'
    expected = {
        "NUL in the query string": (send(url + "?q=a%00b"), 400),
        "broken UTF-8 in the query string": (send(url + "?q=%ff"), 400),
        "a body over the size limit": (send(url, oversize, content_type="application/json"), 413),
    }
    if "{" in path:
        last = url.rstrip("/").rsplit("/", 1)
        expected["NUL in a path parameter"] = (send(f"{last[0]}/a%00b" + ("/" if url.endswith("/") else "")), 400)
    refused: dict[str, Any] = {}
    if has_body:
        refused["JSON nested 1,000 deep"] = send(url, "[" * 1000 + "]" * 1000, content_type="application/json")
        refused["a NUL in a JSON string"] = send(url, '{"name": "a\\u0000b"}', content_type="application/json")
    for what, (response, status) in expected.items():
        assert response.status_code == status, f"{method.upper()} {url} with {what}: {response.status_code}"
    for what, response in [*((w, r) for w, (r, _) in expected.items()), *refused.items()]:
        assert 400 <= response.status_code < 500, f"{method.upper()} {url} with {what}: {response.status_code}"
        assert response["Content-Type"].startswith("application/json"), f"{method.upper()} {url} with {what}"
        assert response.json()["error"]


def _api_routes(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _api_routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern) and (prefix + str(pattern.pattern)).startswith("api/v1/"):
            yield prefix + str(pattern.pattern), pattern.callback


def _normalised(route: str) -> str:
    """A route of the URL map or a path of the schema, with every parameter as `{}` and no regex anchors."""
    route = re.sub(r"\(\?P<\w+>[^)]*\)|<[\w:]+>|\{\w+\}", "{}", route)
    return "/" + route.replace("^", "").replace("$", "").replace("/?", "/").lstrip("/")


def test_the_schema_covers_every_api_route(db: Any) -> None:
    """Every method of every view under /api/v1/ is an operation of the schema, so the fuzzer reaches it (format
    suffix variants and the router's index page aside)."""
    schema = {(method, _normalised(path)) for method, path in _operations()}
    routes = set()
    for route, callback in _api_routes(get_resolver().url_patterns):
        view = getattr(callback, "cls", None)
        if view is None or view is APIRootView or "<drf_format_suffix" in route or "(?P<format>" in route:
            continue
        actions = getattr(callback, "actions", None)
        methods = actions.keys() if actions else [m for m in METHODS if hasattr(view, m)]
        routes |= {(method, _normalised(route)) for method in methods if method in METHODS}
    assert routes == schema
