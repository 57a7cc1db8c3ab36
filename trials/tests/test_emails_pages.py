"""Lifecycle message pages: create (validated like an edit), duplicate, delete, the throttle settings with the
priority order, the dismissal-rate flag, and who may change what — plus the browser tests of the editor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.utils import timezone

from audiences.models import Customer
from config.models import AuditEntry
from config.roles import Role
from conftest import TEST_PASSWORD
from trials.messaging.defaults import MESSAGE_TEMPLATES
from trials.messaging.models import EmailSettings, MessageSend, MessageTemplate
from trials.tests.holdouts import without_holdout

pytestmark = pytest.mark.django_db

NEW_TEMPLATE = {
    "key": "welcome-back",
    "channel": "email",
    "name": "Welcome back",
    "active": "on",
    "subject": "Welcome back {{ first_name }}",
    "html_body": "<p>Hi {{ first_name }}</p>",
    "text_body": "Hi {{ first_name }}",
    "trigger": "event",
    "trigger_event": "Logged In",
    "priority": "30",
    "when_outranked": "wait",
    "holdout_percent": "10",
}


@pytest.fixture(autouse=True)
def default_templates(db: Any) -> None:
    """The seeded defaults (restored when a transactional test flushed them)."""
    EmailSettings.objects.get_or_create(pk=1)
    for row in MESSAGE_TEMPLATES:
        MessageTemplate.objects.get_or_create(key=row["key"], defaults=without_holdout(row))


def signed_in(user: AbstractUser) -> Client:
    client = Client()
    assert client.login(username=user.get_username(), password=TEST_PASSWORD)
    return client


@pytest.fixture
def growth(make_user: Callable[..., AbstractUser]) -> Client:
    return signed_in(make_user(Role.GROWTH))


@pytest.fixture
def rep(make_user: Callable[..., AbstractUser]) -> Client:
    return signed_in(make_user(Role.SALES_REP))


class TestCreate:
    def test_growth_creates_a_template(self, growth: Client) -> None:
        answer = growth.post("/trials/emails/new/", NEW_TEMPLATE)
        created = MessageTemplate.objects.get(key="welcome-back")
        assert answer.status_code == 302 and answer["Location"] == f"/trials/emails/{created.pk}/"
        assert (created.trigger_event, created.priority, created.channel) == ("Logged In", 30, "email")

    def test_a_missing_variable_is_a_form_error(self, growth: Client) -> None:
        answer = growth.post("/trials/emails/new/", {**NEW_TEMPLATE, "html_body": "<p>{{ frist_name }}</p>"})
        assert answer.status_code == 400
        assert "Unknown variable &#x27;frist_name&#x27;." in answer.content.decode()
        assert not MessageTemplate.objects.filter(key="welcome-back").exists()

    def test_a_taken_key_and_a_missing_event_are_form_errors(self, growth: Client) -> None:
        body = {**NEW_TEMPLATE, "key": "day-1-activation-nudge", "trigger_event": ""}
        page = growth.post("/trials/emails/new/", body).content.decode()
        assert "Message template with this Key already exists." in page
        assert "Name the event." in page

    def test_a_rep_cannot_create(self, rep: Client) -> None:
        assert rep.get("/trials/emails/new/").status_code == 403
        assert rep.post("/trials/emails/new/", NEW_TEMPLATE).status_code == 403


class TestDuplicateAndDelete:
    def test_duplicate_makes_an_inactive_copy_with_a_free_key(self, growth: Client) -> None:
        original = MessageTemplate.objects.get(key="day-1-activation-nudge")
        first = growth.post(f"/trials/emails/{original.pk}/duplicate/")
        second = growth.post(f"/trials/emails/{original.pk}/duplicate/")
        copies = MessageTemplate.objects.filter(key__startswith="day-1-activation-nudge-copy").order_by("pk")
        assert [c.key for c in copies] == ["day-1-activation-nudge-copy", "day-1-activation-nudge-copy-2"]
        assert first["Location"] == f"/trials/emails/{copies[0].pk}/edit/"
        assert second.status_code == 302
        assert all(not c.active and c.html_body == original.html_body for c in copies)
        assert copies[0].name == "Copy of Day-1 activation nudge"

    def test_delete_asks_then_removes_the_template_and_its_log(self, growth: Client) -> None:
        template = MessageTemplate.objects.get(key="day-3-pql-handoff")
        customer = Customer.objects.create(user_id="usr_x")
        MessageSend.objects.create(customer=customer, template=template, status="sent", created_at=timezone.now())
        confirm = growth.get(f"/trials/emails/{template.pk}/delete/")
        assert "its 1 send log row" in confirm.content.decode()
        assert growth.post(f"/trials/emails/{template.pk}/delete/")["Location"] == "/trials/emails/"
        assert not MessageTemplate.objects.filter(pk=template.pk).exists()
        assert not MessageSend.objects.exists()

    def test_a_rep_can_neither_duplicate_nor_delete(self, rep: Client) -> None:
        template = MessageTemplate.objects.get(key="day-3-pql-handoff")
        assert rep.post(f"/trials/emails/{template.pk}/duplicate/").status_code == 403
        assert rep.post(f"/trials/emails/{template.pk}/delete/").status_code == 403
        assert MessageTemplate.objects.filter(key__startswith="day-3-pql-handoff").count() == 1


def settings_form(**changes: str) -> dict[str, str]:
    templates = list(MessageTemplate.objects.order_by("priority", "pk"))
    data = {
        "throttle_hours": "24",
        "priority_window_minutes": "15",
        "quiet_start_hour": "21",
        "quiet_end_hour": "8",
        "default_time_zone": "UTC",
        "from_email": "",
        "form-TOTAL_FORMS": str(len(templates)),
        "form-INITIAL_FORMS": str(len(templates)),
    }
    for index, template in enumerate(templates):
        data[f"form-{index}-id"] = str(template.pk)
        data[f"form-{index}-priority"] = str(template.priority)
    data.update(changes)
    return data


class TestSettings:
    def test_growth_changes_the_window_quiet_hours_and_priorities(self, growth: Client) -> None:
        page = growth.get("/trials/emails/settings/").content.decode()
        assert 'name="throttle_hours"' in page and "Day-12 expiry warning" in page
        expiry = MessageTemplate.objects.get(key="day-12-expiry-warning")
        index = list(MessageTemplate.objects.order_by("priority", "pk")).index(expiry)
        body = settings_form(
            throttle_hours="12",
            priority_window_minutes="5",
            quiet_start_hour="22",
            quiet_end_hour="7",
            default_time_zone="Europe/Paris",
            from_email="Team <team@example.test>",
            **{f"form-{index}-priority": "1"},
        )
        assert growth.post("/trials/emails/settings/", body).status_code == 302
        workspace = EmailSettings.objects.get(pk=1)
        assert (workspace.throttle_hours, workspace.quiet_start_hour, workspace.quiet_end_hour) == (12, 22, 7)
        assert workspace.priority_window_minutes == 5
        assert (workspace.default_time_zone, workspace.from_email) == ("Europe/Paris", "Team <team@example.test>")
        assert MessageTemplate.objects.order_by("priority", "pk").first() == expiry
        audited = AuditEntry.objects.filter(model="trials.MessageTemplate", object_id=str(expiry.pk)).first()
        assert audited is not None and audited.changes["priority"][1] == 1  # the reorder is in the audit log

    def test_bad_values_are_form_errors_and_nothing_is_saved(self, growth: Client) -> None:
        body = settings_form(
            throttle_hours=str(10**9),
            priority_window_minutes="1441",
            quiet_start_hour="25",
            default_time_zone="Mars/Olympus",
            from_email="nope",
            **{"form-0-priority": "x"},
        )
        answer = growth.post("/trials/emails/settings/", body)
        page = answer.content.decode()
        assert answer.status_code == 400
        assert "An hour of the day, 0 to 23." in page
        assert "Unknown time zone &#x27;Mars/Olympus&#x27;" in page
        assert "Give an address" in page
        assert "Enter a whole number." in page
        assert "less than or equal to 8784" in page  # a window whose start would not be a date
        assert "less than or equal to 1440" in page
        assert EmailSettings.objects.get(pk=1).default_time_zone == "UTC"

    def test_a_rep_sees_the_settings_but_cannot_change_them(self, rep: Client) -> None:
        page = rep.get("/trials/emails/settings/")
        assert page.status_code == 200
        assert 'name="throttle_hours"' not in page.content.decode()
        assert rep.post("/trials/emails/settings/", settings_form(throttle_hours="1")).status_code == 403
        assert EmailSettings.objects.get(pk=1).throttle_hours == 24


def test_a_high_dismissal_rate_is_flagged_on_the_list_and_the_template_page(growth: Client) -> None:
    prompt = MessageTemplate.objects.get(key="in-app-complete-activation")
    now = timezone.now()
    for index in range(20):
        MessageSend.objects.create(
            customer=Customer.objects.create(user_id=f"u{index}"),
            template=prompt,
            status="sent",
            created_at=now,
            shown_at=now,
            dismissed_at=now if index < 15 else None,
        )
    listing = growth.get("/trials/emails/").content.decode()
    assert "20 / 0 / 15 · 75% dismissed" in listing
    assert listing.count("High dismissal rate") == 1
    detail = growth.get(f"/trials/emails/{prompt.pk}/").content.decode()
    assert "More than 60% of the customers shown this prompt dismissed it" in detail
    MessageSend.objects.filter(dismissed_at__isnull=False).order_by("pk")[:1].get().delete()
    MessageSend.objects.filter(customer__user_id="u19").delete()
    assert "High dismissal rate" not in growth.get("/trials/emails/").content.decode()  # 18 shown: too few


@pytest.mark.browser
def test_edit_preview_and_see_the_send_log_in_a_browser(
    live_url: str, page: Any, make_user: Callable[..., AbstractUser]
) -> None:
    make_user(Role.GROWTH, username="gina")
    ada = Customer.objects.create(user_id="usr_ada", email="ada@acme.test", name="Ada Lovelace")
    template = MessageTemplate.objects.get(key="day-3-pql-handoff")
    MessageSend.objects.create(
        customer=ada,
        template=template,
        status="suppressed",
        reason="quiet hours (23:10 UTC)",
        created_at=timezone.now(),
    )

    page.goto(f"{live_url}/login/?next=/trials/emails/")
    page.fill("#id_username", "gina")
    page.fill("#id_password", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/trials/emails/")
    assert "quiet hours (23:10 UTC)" in page.inner_text("#send-log")
    page.click("#templates >> text=Day-3 PQL handoff")
    page.click("text=Edit")
    page.fill("#id_subject", "{{ first_name }}, a hand with {{ compnay }}?")
    page.click("#template-form button[type=submit]")
    assert "Unknown variable 'compnay'." in page.inner_text("#template-form")
    page.fill("#id_subject", "{{ first_name }}, a hand with {{ company|default:'your team' }}?")
    page.click("#template-form button[type=submit]")
    page.wait_for_url(f"{live_url}/trials/emails/{template.pk}/")
    page.fill("#customer", str(ada.pk))
    page.click("text=Preview >> nth=-1")
    page.wait_for_selector("#preview")
    assert "Ada, a hand with your team?" in page.inner_text("#preview")
    assert "quiet hours (23:10 UTC)" in page.inner_text("#template-send-log")
    template.refresh_from_db()
    assert template.subject == "{{ first_name }}, a hand with {{ company|default:'your team' }}?"


@pytest.mark.browser
def test_create_a_template_in_a_browser(live_url: str, page: Any, make_user: Callable[..., AbstractUser]) -> None:
    make_user(Role.GROWTH, username="gina")
    page.goto(f"{live_url}/login/?next=/trials/emails/")
    page.fill("#id_username", "gina")
    page.fill("#id_password", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/trials/emails/")
    page.click("text=New template")
    page.fill("#id_key", "report-tip")
    page.select_option("#id_channel", "in_app")
    page.fill("#id_name", "Report tip")
    page.fill("#id_subject", "Try a report, {{ first_name }}")
    page.fill("#id_text_body", "Reports show {{ value_moment }}.")
    page.select_option("#id_trigger", "event")
    page.fill("#id_trigger_event", "Project Created")
    page.click("#template-form button[type=submit]")
    created = MessageTemplate.objects.get(key="report-tip")
    page.wait_for_url(f"{live_url}/trials/emails/{created.pk}/")
    assert (created.channel, created.trigger_event) == ("in_app", "Project Created")
    page.goto(f"{live_url}/trials/emails/")
    assert "Report tip" in page.inner_text("#templates")
