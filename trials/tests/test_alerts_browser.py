"""In a real browser: a rep signs in, opens the queue, claims an unassigned alert (created by the play
evaluation from an event history), reads the call-prep brief and marks the alert done with an outcome."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.utils import timezone

from audiences.models import Account, Source
from config.roles import Role
from conftest import TEST_PASSWORD
from trials.plays.defaults import PLAYS
from trials.plays.models import Alert, BusinessHours, Play
from trials.plays.plays import plays_evaluate
from trials.tests.test_plays import ACTIVATED, derive, person


@pytest.mark.browser
def test_a_rep_claims_reads_the_brief_and_closes_an_alert(
    live_url: str, page: Any, make_user: Callable[..., AbstractUser], source: Source
) -> None:
    # A transactional test starts from an empty database: put back the defaults the migration seeds.
    BusinessHours.objects.get_or_create(pk=1, defaults={"workdays": [1, 2, 3, 4, 5]})
    for row in PLAYS:
        Play.objects.get_or_create(key=row["key"], defaults=row)
    Play.objects.exclude(key="activation-reached").update(active=False)
    now = timezone.now()
    acme = Account.objects.create(group_id="grp_acme", name="Acme")
    person(source, "ada", now=now, account=acme, actions=ACTIVATED)
    derive(now)
    plays_evaluate(now=now)  # no rep exists yet: the alert waits unassigned
    alert = Alert.objects.get()
    assert alert.assignee is None
    make_user(Role.SALES_REP, "rita")

    page.goto(f"{live_url}/login/?next=/alerts/")
    page.fill("#id_username", "rita")
    page.fill("#id_password", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/alerts/")
    row = page.locator(f"#alert-queue tr[data-alert='{alert.pk}']")
    assert "unassigned" in row.inner_text()
    row.locator("button", has_text="Claim").click()
    page.wait_for_url(f"{live_url}/alerts/{alert.pk}/")
    assert "Claimed: the alert is yours." in page.locator(".messages").inner_text()
    assert page.locator("#alert-state [data-status=claimed]").count() == 1
    who = page.locator("#brief-who").inner_text()
    assert "Ada Person" in who and "Head of Data" in who and "Acme" in who and "Fit 75" in who
    assert "Project Created" in page.locator("#brief-did").inner_text()
    assert "Activation reached" in page.locator("#brief-message").inner_text()
    page.select_option("#done-form select[name=outcome]", "meeting_booked")
    page.fill("#done-form textarea[name=notes]", "Walkthrough on Thursday")
    page.click("#done-form button[type=submit]")
    page.wait_for_url(f"{live_url}/alerts/{alert.pk}/")
    assert page.locator("#alert-outcome").inner_text() == "Meeting booked"
    assert "Walkthrough on Thursday" in page.locator("#alert-notes").inner_text()
    alert.refresh_from_db()
    assert alert.assignee is not None and alert.assignee.get_username() == "rita"
    assert (alert.status, alert.outcome) == ("done", "meeting_booked")
    assert alert.closed_at is not None and alert.closed_at - now < timedelta(minutes=5)
