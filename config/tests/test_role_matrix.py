"""The role matrix in docs/security.md is what the application does: every URL, every role, with an object behind
each URL. The table is the single statement of who may do what; this test keeps it true and complete."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from config.roles import Role
from config.tests.role_world import World, build_world, kwargs_for
from conftest import ROOT

SECURITY_DOC = ROOT / "docs" / "security.md"
ROLE_COLUMNS = [Role.ADMIN, Role.GROWTH, Role.CS, Role.SALES_REP]
REFUSED = {401, 403, 405}


def _documented() -> tuple[dict[str, dict[Role, set[str]]], set[str]]:
    """The staff matrix (URL name -> role -> {"open", "change"}) and the names of the documented public endpoints."""
    matrix: dict[str, dict[Role, set[str]]] = {}
    public: set[str] = set()
    for line in SECURITY_DOC.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([\w:-]+)`", cells[0]) if cells else None
        if not match or len(cells) < 4:
            continue
        if len(cells) == 6 and all(re.fullmatch(r"open, change|open|change|—", cell) for cell in cells[2:]):
            matrix[match.group(1)] = {
                role: {part.strip() for part in cell.split(",") if part.strip() != "—"}
                for role, cell in zip(ROLE_COLUMNS, cells[2:], strict=True)
            }
        elif len(cells) == 4:
            public.add(match.group(1))
    return matrix, public


MATRIX, PUBLIC = _documented()


def _url_names() -> Iterator[tuple[str, list[str]]]:
    def walk(patterns: list[Any], namespace: str | None) -> Iterator[tuple[str, list[str]]]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.namespace != "admin":
                    yield from walk(pattern.url_patterns, pattern.namespace or namespace)
            elif isinstance(pattern, URLPattern) and pattern.name and "format" not in pattern.pattern.regex.groupindex:
                yield (f"{namespace}:" if namespace else "") + pattern.name, list(pattern.pattern.regex.groupindex)

    seen: set[str] = set()
    for name, keys in walk(get_resolver().url_patterns, None):
        if name not in seen:
            seen.add(name)
            yield name, keys


URLS = dict(_url_names())


def test_the_matrix_names_every_url_and_nothing_else() -> None:
    assert len(MATRIX) > 100 and len(PUBLIC) >= 10, "the tables were found in docs/security.md"
    undocumented = set(URLS) - set(MATRIX) - PUBLIC
    stale = (set(MATRIX) | PUBLIC) - set(URLS)
    assert not undocumented, f"add these URLs to the role matrix in docs/security.md: {sorted(undocumented)}"
    assert not stale, f"these rows of docs/security.md name no URL any more: {sorted(stale)}"


@pytest.fixture
def world(make_user: Callable[..., AbstractUser], settings: Any) -> World:
    settings.DESTINATIONS_ALLOW_PRIVATE_URLS = True
    return build_world(make_user)


def _status(client: Client, method: str, url: str) -> int:
    """The answer's status, in a transaction rolled back afterwards (an allowed write changes nothing for the
    next role). A redirect to the sign-in page counts as refused."""
    with transaction.atomic():
        if method == "patch":
            response = client.patch(url, "{}", content_type="application/json")
        else:
            response = getattr(client, method)(url)
        transaction.set_rollback(True)
    if response.status_code == 302 and "/login/" in response.get("Location", ""):
        return 401
    return int(response.status_code)


@pytest.mark.django_db
@pytest.mark.parametrize("url_name", sorted(MATRIX), ids=sorted(MATRIX))
def test_each_role_may_do_what_the_matrix_says(url_name: str, world: World) -> None:
    url = reverse(url_name, kwargs=kwargs_for(url_name, URLS[url_name], world))
    write = "patch" if url_name.startswith("api:") and url_name.endswith("-detail") else "post"
    anonymous = Client()
    assert _status(anonymous, "get", url) in REFUSED, f"{url} is open to signed-out visitors"
    for role in ROLE_COLUMNS:
        client = Client()
        client.force_login(world.users[role])  # type: ignore[arg-type]
        allowed = MATRIX[url_name][role]
        read = _status(client, "get", url)
        assert (read not in REFUSED) == ("open" in allowed), f"{role} GET {url}: {read}, documented {allowed}"
        assert read < 500, f"{role} GET {url}: {read}"
        changed = _status(client, write, url)
        assert (changed not in REFUSED) == ("change" in allowed), f"{role} {write} {url}: {changed}, doc {allowed}"
        assert changed < 500, f"{role} {write} {url}: {changed}"


@pytest.mark.django_db
class TestObjectLevel:
    def test_a_rep_cannot_see_or_work_another_reps_alert(self, world: World) -> None:
        theirs = world.objects["others_alert"].pk
        rep = Client()
        rep.force_login(world.users[Role.SALES_REP])  # type: ignore[arg-type]
        assert rep.get(reverse("alert-detail", args=[theirs])).status_code == 404
        assert rep.get(f"/api/v1/alerts/{theirs}/").status_code == 404
        assert rep.post(f"/api/v1/alerts/{theirs}/claim/").status_code == 404
        assert rep.post(reverse("alert-action", args=[theirs, "done"])).status_code == 404
        listed = [alert["id"] for alert in rep.get("/api/v1/alerts/").json()["results"]]
        assert theirs not in listed and world.objects["my_alert"].pk in listed

    def test_managers_see_every_alert(self, world: World) -> None:
        theirs = world.objects["others_alert"].pk
        for role in (Role.ADMIN, Role.GROWTH):
            manager = Client()
            manager.force_login(world.users[role])  # type: ignore[arg-type]
            assert manager.get(reverse("alert-detail", args=[theirs])).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("url_name", sorted(PUBLIC - {"login", "logout"}), ids=sorted(PUBLIC - {"login", "logout"}))
def test_public_endpoints_refuse_callers_without_their_credential(url_name: str, world: World) -> None:
    placeholders = {"route": "track", "token": "A" * 32, "signed": "not-a-signed-link", "user_id": "usr_walk"}
    url = reverse(url_name, kwargs={key: placeholders[key] for key in URLS[url_name]})
    staff = Client()
    staff.force_login(world.users[Role.ADMIN])  # type: ignore[arg-type]
    for method in ("get", "post"):
        status = getattr(staff, method)(url).status_code
        assert status in {400, 401, 403, 404, 405, 503}, f"{method} {url} without its credential: {status}"
