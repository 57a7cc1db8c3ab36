"""In a real headless Chromium: a growth user creates a webhook destination, sees a refused URL explained, and
watches a delivery reach a local receiver in the log."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.utils import timezone

from audiences.models import Customer
from config.facts import Fact
from config.roles import Role
from conftest import TEST_PASSWORD
from integrations.destinations.emit import outbound_emit
from integrations.destinations.models import Destination
from integrations.tests.receiver import Receiver

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@pytest.mark.browser
def test_create_a_webhook_and_watch_a_delivery(
    live_url: str, page: Any, make_user: Callable[..., AbstractUser], receiver: Receiver, settings: Any
) -> None:
    settings.DESTINATIONS_ALLOW_PRIVATE_URLS = True
    make_user(Role.GROWTH, username="gwen")
    page.goto(f"{live_url}/login/?next=/integrations/destinations/")
    page.fill("#id_username", "gwen")
    page.fill("#id_password", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/integrations/destinations/")
    page.click("text=New destination")

    page.fill("#id_name", "CRM")
    page.fill("#id_url", "ftp://93.184.216.34/hooks")
    page.check("input[name=kinds][value=audience_entered]")
    page.get_by_role("button", name="Create destination").click()
    assert "Only http:// and https:// URLs are allowed" in page.get_by_role("alert").inner_text()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "destination_form.png"), full_page=True)

    page.fill("#id_url", receiver.url)
    page.check("input[name=kinds][value=audience_entered]")
    page.get_by_role("button", name="Create destination").click()
    destination = Destination.objects.get()
    page.wait_for_url(f"{live_url}/integrations/destinations/{destination.pk}/")
    assert page.get_by_test_id("signing-secret").inner_text() == destination.signing_secret

    ada = Customer.objects.create(user_id="usr_ada", email="ada@acme.test", name="Ada Lovelace")
    audience = {"audience": {"id": 12, "key": "power_users", "name": "Power users"}}
    outbound_emit([Fact("audience_entered", ada.pk, f"audience:12:entered:{ada.pk}", timezone.now(), audience)])
    assert len(receiver.requests) == 1

    page.reload()
    row = page.locator("tr", has_text=f"audience:12:entered:{ada.pk}")
    assert "Delivered" in row.inner_text()
    assert "Ada Lovelace" in row.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "destination_detail.png"), full_page=True)
    page.goto(f"{live_url}/integrations/destinations/")
    assert "100 %" in page.locator("table.list").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "destinations.png"), full_page=True)
