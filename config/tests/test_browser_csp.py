"""The Content-Security-Policy in a real Chromium: every main page loads and its JavaScript works (builder
preview, charts, confirm dialogs, polling, Swagger UI) with zero violations, and a script injected into a page
without the response's nonce does not run. (The hosted cancellation page: offers/tests/test_hosted_languages.py.)"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser

from audiences.models import Source
from config.roles import Role
from config.tests.role_world import World, build_world
from conftest import TEST_PASSWORD, csp_violations

SCRIPTS = re.compile(r"script-src 'self'(?: 'nonce-[A-Za-z0-9+/=]{16,}')?;")


@pytest.fixture
def world(make_user: Callable[..., AbstractUser], settings: Any) -> World:
    settings.DESTINATIONS_ALLOW_PRIVATE_URLS = True
    return build_world(make_user)


def _open(page: Any, url: str) -> None:
    response = page.goto(url)
    assert response.status == 200, f"{url}: {response.status}"
    assert SCRIPTS.search(response.headers["content-security-policy"] + ";"), f"{url} has the policy"
    page.wait_for_load_state("networkidle")


@pytest.mark.browser
def test_the_main_pages_work_under_the_policy(live_url: str, page: Any, world: World) -> None:
    violations = csp_violations(page)
    page.goto(f"{live_url}/login/")
    page.fill("#id_username", world.users[Role.ADMIN].get_username())
    page.fill("#id_password", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/")
    objects = world.objects

    for path in (
        "/",
        f"/customers/{objects['customer'].pk}/",
        "/alerts/",
        f"/alerts/{objects['my_alert'].pk}/",
        f"/computed-traits/{objects['computed_trait'].pk}/",
        "/integrations/imports/",
        "/integrations/debugger/",
        f"/trials/emails/{objects['template'].pk}/?customer={objects['customer'].pk}",
        "/sign-in-lockouts/",
    ):
        _open(page, live_url + path)

    # Charts: Chart.js (served from this server) draws the report's chart.
    _open(page, f"{live_url}/measurement/cohorts/")
    assert page.evaluate("() => Boolean(window.Chart && Chart.getChart(document.getElementById('measurement-chart')))")

    # The segment builder's live preview (a fetch from static/js/segment_builder.js).
    _open(page, f"{live_url}/segments/new/")
    page.click("#builder > fieldset > .builder-add >> text=+ Condition")
    row = page.locator("#builder .builder-row").nth(0)
    row.locator("select[aria-label=Property]").select_option("customer.is_test")
    row.locator("select[aria-label=Operator]").select_option("is_false")
    page.wait_for_selector("#preview >> text=/match right now/", timeout=10_000)

    # The confirm() before rotating a write key (data-confirm, static/js/trialloop.js): cancel, then accept.
    source: Any = objects["source"]
    _open(page, f"{live_url}/integrations/sources/")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("text=Rotate write key")
    page.wait_for_timeout(500)
    assert Source.objects.get(pk=source.pk).write_key_hash == source.write_key_hash, "cancelled: not rotated"
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("text=Rotate write key")
    page.wait_for_load_state("networkidle")
    assert Source.objects.get(pk=source.pk).write_key_hash != source.write_key_hash, "accepted: rotated"

    # Swagger UI: its start-up script comes from a URL, not inline.
    _open(page, f"{live_url}/api/docs/")
    page.wait_for_selector(".swagger-ui .info .title", timeout=15_000)

    assert violations == []

    # And the policy is enforced: a script added without the nonce does not run.
    ran = page.evaluate(
        """() => { const s = document.createElement("script"); s.textContent = "window.__injected = 1";
        document.body.appendChild(s); return window.__injected === 1; }"""
    )
    page.wait_for_timeout(200)
    assert ran is False
    assert any("script-src" in violation for violation in violations)
