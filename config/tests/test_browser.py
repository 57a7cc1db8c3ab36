"""In a real headless Chromium: sign in, find a customer and open their page.

Uses Debian's chromium through Playwright's `executable_path` (Playwright's own browser download cannot work
offline). Skipped when no Chromium is installed, unless TEST_REQUIRE_BROWSER=1 (CI sets it) makes that a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser

from audiences.models import Customer
from config.roles import Role
from conftest import TEST_PASSWORD

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@pytest.mark.browser
def test_sign_in_and_open_a_customer(
    live_url: str, page: Any, make_user: Callable[..., AbstractUser], customer: Customer
) -> None:
    make_user(Role.SALES_REP, username="rita")

    page.goto(f"{live_url}/customers/")
    assert "/login/" in page.url
    page.fill("#id_username", "rita")
    page.fill("#id_password", "wrong password")
    page.click("button[type=submit]")
    assert page.get_by_role("alert").is_visible()

    page.fill("#id_password", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/customers/")
    page.fill("input[name=q]", "ada@acme.test")
    page.click("text=Filter")
    page.click("text=Ada Lovelace")
    page.wait_for_url(f"{live_url}/customers/{customer.pk}/")

    assert page.locator("h1").inner_text() == "Ada Lovelace"
    timeline = page.locator("table.timeline").inner_text()
    assert "Teammate Invited" in timeline
    assert "Trialing" in page.content()
    # A rep has no Integrations entry in the navigation.
    assert page.locator("nav.sidebar").get_by_text("Integrations").count() == 0
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "customer_page.png"), full_page=True)


@pytest.mark.browser
def test_the_event_debugger_shows_new_events_without_a_reload(
    live_url: str, page: Any, make_user: Callable[..., AbstractUser]
) -> None:
    import requests

    from audiences.services import source_create

    make_user(Role.GROWTH, username="gwen")
    _, write_key = source_create(name="Web app")
    page.goto(f"{live_url}/login/?next=/integrations/debugger/")
    page.fill("#id_username", "gwen")
    page.fill("#id_password", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/integrations/debugger/")
    page.wait_for_selector("text=No events match.")

    sent = requests.post(
        f"{live_url}/v1/track",
        json={"userId": "usr_live", "event": "Report Generated"},
        auth=(write_key, ""),
        timeout=10,
    )
    assert sent.status_code == 200
    page.wait_for_selector("#debugger-rows >> text=Report Generated", timeout=10_000)
    assert "usr_live" in page.locator("#debugger-rows").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "event_debugger.png"), full_page=True)
