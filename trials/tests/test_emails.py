"""Lifecycle emails: template validation and escaping, preview, triggers, the throttle with priority,
suppression, quiet hours, holdout and consent, unsubscribe, and delivery with retries."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from typing import Any
from unittest import mock

import pytest
from celery.exceptions import Retry
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from audiences.models import ComputedTrait, ComputedTraitValue, Customer, Event, Source
from config.roles import Role
from config.timers import timers_fire_due
from segments.models import Segment, SegmentMembership
from trials.loop.models import Trial, TrialStage
from trials.measurement.scope import Filters
from trials.measurement.uplift import template_uplift
from trials.messaging.decide import (
    message_send,
    messages_dispatch,
    messages_due_ahead,
    messages_sweep,
    messages_trigger,
)
from trials.messaging.defaults import MESSAGE_TEMPLATES
from trials.messaging.delivery import DeliveryError, message_deliver
from trials.messaging.models import CustomerMessageLock, EmailSettings, MessageSend, MessageTemplate
from trials.messaging.render import message_preview, unsubscribe_token
from trials.messaging.rules import in_holdout, in_quiet_hours
from trials.messaging.syntax import template_errors
from trials.messaging.templates import message_template_save, message_template_validate
from trials.messaging.timers import message_timers_arm
from trials.plays.defaults import PLAYS
from trials.plays.models import Play
from trials.plays.plays import play_save
from trials.tests.holdouts import without_holdout

pytestmark = pytest.mark.django_db

# Noon UTC: outside the default quiet hours (21:00-08:00) in UTC.
NOON = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def default_templates(db: Any) -> None:
    """The seeded defaults (restored when a transactional test flushed them)."""
    EmailSettings.objects.get_or_create(pk=1)
    for row in MESSAGE_TEMPLATES:
        MessageTemplate.objects.get_or_create(key=row["key"], defaults=without_holdout(row))


@pytest.fixture
def no_quiet_hours(db: Any) -> None:
    """For tests that send at the wall clock's time: quiet hours off (start = end), so they pass at any hour."""
    EmailSettings.objects.filter(pk=1).update(quiet_start_hour=0, quiet_end_hour=0)


def sweep(now: datetime) -> None:
    """The beat at `now`: the lifecycle sweep, then the durable timers due by then, fired as their worker would
    at that moment (time-based templates are decided by their timers)."""
    messages_sweep(now=now)
    fire_timers(now)


def fire_timers(now: datetime) -> None:
    with mock.patch("django.utils.timezone.now", return_value=now):
        timers_fire_due(now=now)


def person(
    *, started: datetime, ends: datetime | None = None, stage: str = TrialStage.TRIGGER, **extra: Any
) -> Customer:
    number = next(_ids)
    customer = Customer.objects.create(
        user_id=f"usr_{number}",
        email=f"person{number}@example.test",
        name=extra.pop("name", "Grace Hopper"),
        traits=extra.pop("traits", {}),
        **extra,
    )
    Trial.objects.create(
        customer=customer,
        started_at=started,
        ends_at=ends or started + timedelta(days=14),
        stage=stage,
        stage_changed_at=started,
        pql_score=72,
    )
    return customer


def template(key: str) -> MessageTemplate:
    return MessageTemplate.objects.get(key=key)


def simple(**fields: Any) -> MessageTemplate:
    values: dict[str, Any] = {
        "key": f"t-{next(_ids)}",
        "name": "Test",
        "trigger": MessageTemplate.Trigger.TRIAL_DAY,
        "trigger_number": 0,
        "subject": "Hello {{ first_name }}",
        "html_body": "<p>{{ first_name }}</p>",
        "text_body": "{{ first_name }}",
        **fields,
    }
    return message_template_save(MessageTemplate(**without_holdout(values)))


class TestTemplates:
    def test_the_four_defaults_are_valid(self) -> None:
        templates = MessageTemplate.objects.filter(key__in=[row["key"] for row in MESSAGE_TEMPLATES])
        assert templates.count() == 4
        for item in templates:
            message_template_validate(item)
        assert template("day-1-activation-nudge").priority < template("day-12-expiry-warning").priority

    def test_unknown_variable_is_refused_when_saved(self) -> None:
        with pytest.raises(ValidationError) as caught:
            simple(html_body="<p>{{ frist_name }}</p>")
        assert "Unknown variable 'frist_name'." in caught.value.message_dict["html_body"]

    def test_unknown_variables_inside_if_and_filters_are_found(self) -> None:
        errors = template_errors("{% if trial_days_left > limit %}{{ name|safe }}{% endif %}", computed_keys=set())
        assert "Unknown variable 'limit'." in errors
        assert any("'safe' is not allowed" in error for error in errors)

    def test_tags_that_reach_outside_are_refused(self) -> None:
        for source in (
            "{% include 'base.html' %}",
            "{% load static %}",
            "{% now 'Y' %}",
            "{% for x in traits %}{% endfor %}",
        ):
            assert template_errors(source, computed_keys=set()), source

    def test_attribute_lookups_are_limited(self) -> None:
        assert template_errors("{{ first_name.upper }}", computed_keys=set())
        assert template_errors("{{ traits.plan.name }}", computed_keys=set())
        assert template_errors("{{ traits.plan }}", computed_keys=set()) == []

    def test_computed_trait_keys_must_exist(self) -> None:
        assert template_errors("{{ computed.reports_run }}", computed_keys=set()) == [
            "No computed trait with the key 'reports_run'."
        ]
        assert template_errors("{{ computed.reports_run }}", computed_keys={"reports_run"}) == []

    def test_syntax_error_is_reported(self) -> None:
        assert template_errors("{% if %}", computed_keys=set())[0].startswith("Syntax error")

    def test_html_is_escaped_and_text_is_not(self) -> None:
        item = simple(subject="Hi {{ first_name }}", html_body="<p>{{ first_name }}</p>", text_body="{{ first_name }}")
        customer = person(started=timezone.now(), traits={"first_name": "<b>Bo</b> & co"})
        rendered = message_preview(item, customer)
        assert rendered.html == "<p>&lt;b&gt;Bo&lt;/b&gt; &amp; co</p>"
        assert rendered.text == "<b>Bo</b> & co"
        assert rendered.subject == "Hi <b>Bo</b> & co"

    def test_preview_uses_profile_trial_and_computed_traits(self) -> None:
        trait = ComputedTrait.objects.create(key="reports_run", name="Reports run", kind="count", event="Report Run")
        item = simple(html_body="{{ first_name }} {{ trial_days_left }} {{ computed.reports_run|default:'none' }}")
        customer = person(started=timezone.now() - timedelta(days=2, hours=1), name="Ada Lovelace")
        assert message_preview(item, customer).html == "Ada 11 none"
        ComputedTraitValue.objects.create(trait=trait, customer=customer, value=4, updated_at=timezone.now())
        assert message_preview(item, customer).html == "Ada 11 4"

    def test_preview_page(self, client: Client, admin_user: Any) -> None:
        client.force_login(admin_user)
        customer = person(started=timezone.now(), traits={"first_name": "<i>Zed</i>"})
        page = client.get(f"/trials/emails/{template('day-1-activation-nudge').pk}/?customer={customer.pk}")
        assert page.status_code == 200
        assert "&lt;i&gt;Zed&lt;/i&gt;, one step" in page.content.decode()
        assert "<i>Zed</i>" not in page.content.decode()
        assert client.get("/trials/emails/").status_code == 200


class TestTriggers:
    def test_trial_day_n(self) -> None:
        due = person(started=NOON - timedelta(days=1, hours=1))
        early = person(started=NOON - timedelta(hours=20))
        activated = person(started=NOON - timedelta(days=1, hours=1), stage=TrialStage.ACTIVATE)
        sweep(NOON)
        sent = MessageSend.objects.filter(template=template("day-1-activation-nudge"))
        assert set(sent.values_list("customer_id", flat=True)) == {due.pk}
        assert early.pk and activated.pk

    def test_trial_ends_in_n_hours(self) -> None:
        ending = person(started=NOON - timedelta(days=12, hours=1), stage=TrialStage.HABIT)
        person(started=NOON - timedelta(days=10), stage=TrialStage.HABIT)
        sweep(NOON)
        sends = MessageSend.objects.filter(template=template("day-12-expiry-warning"))
        assert list(sends.values_list("customer_id", "status")) == [(ending.pk, MessageSend.Status.QUEUED)]
        assert sends.get().subject == "Your trial ends in 47 hours"

    def test_audience_entered(self) -> None:
        segment = Segment.objects.create(
            name="Dormant", conditions={"type": "group", "operator": "and", "children": []}
        )
        item = simple(trigger=MessageTemplate.Trigger.AUDIENCE, trigger_number=None, trigger_segment=segment)
        inside = person(started=NOON)
        person(started=NOON)
        SegmentMembership.objects.create(segment=segment, customer=inside, entered_at=NOON)
        sweep(NOON)
        assert list(item.sends.values_list("customer_id", flat=True)) == [inside.pk]

    def test_event_performed_with_condition(self) -> None:
        source = Source.objects.create(name="App", write_key_hash="h" * 64, write_key_prefix="h")
        item = simple(
            trigger=MessageTemplate.Trigger.EVENT,
            trigger_event="Paywall Viewed",
            trigger_number=24,
            condition={"type": "condition", "property": "trial.stage", "operator": "equals", "value": "habit"},
        )
        did, did_wrong_stage, long_ago = (
            person(started=NOON - timedelta(days=5), stage=stage) for stage in ("habit", "trigger", "habit")
        )
        for customer, at in (
            (did, NOON - timedelta(hours=2)),
            (did_wrong_stage, NOON),
            (long_ago, NOON - timedelta(days=3)),
        ):
            Event.objects.create(
                source=source, message_id=f"e{customer.pk}", customer=customer, type=Event.Type.TRACK,
                name="Paywall Viewed", timestamp=at, received_at=at,
            )  # fmt: skip
        sweep(NOON)
        assert list(item.sends.values_list("customer_id", flat=True)) == [did.pk]

    def test_a_template_is_not_sent_twice(self) -> None:
        person(started=NOON - timedelta(days=1, hours=1))
        sweep(NOON)
        sweep(NOON + timedelta(days=2))
        assert MessageSend.objects.filter(status=MessageSend.Status.QUEUED).count() == 1


class TestThrottle:
    def test_one_email_per_window_then_again_after(self) -> None:
        customer = person(started=NOON - timedelta(days=3), stage=TrialStage.HABIT)
        first, second = simple(), simple()
        assert message_send(customer_id=customer.pk, template_id=first.pk, now=NOON).status == "queued"
        blocked = message_send(customer_id=customer.pk, template_id=second.pk, now=NOON + timedelta(hours=23))
        assert (blocked.status, blocked.reason[:9]) == ("suppressed", "throttled")
        later = message_send(customer_id=customer.pk, template_id=second.pk, now=NOON + timedelta(hours=25))
        assert later.status == "queued"

    def test_window_is_configurable_per_workspace_and_per_template(self) -> None:
        EmailSettings.objects.filter(pk=1).update(throttle_hours=2)
        customer = person(started=NOON - timedelta(days=3))
        first, short, long = simple(), simple(), simple(throttle_hours=48)
        message_send(customer_id=customer.pk, template_id=first.pk, now=NOON)
        assert message_send(customer_id=customer.pk, template_id=long.pk, now=NOON + timedelta(hours=3)).status == (
            "suppressed"
        )
        assert message_send(customer_id=customer.pk, template_id=short.pk, now=NOON + timedelta(hours=3)).status == (
            "queued"
        )

    def test_priority_picks_one_and_logs_the_others(self) -> None:
        MessageTemplate.objects.update(active=False)  # the seeded nudge would be due for this customer too
        customer = person(started=NOON - timedelta(days=12, hours=1), stage=TrialStage.TRIGGER)
        expiry = simple(priority=20)
        nudge = simple(priority=10)
        discount = simple(priority=30)
        sent = messages_dispatch(customer_id=customer.pk, template_ids=[expiry.pk, discount.pk, nudge.pk], now=NOON)
        assert sent.template == nudge and sent.status == "queued"
        reasons = dict(MessageSend.objects.exclude(pk=sent.pk).values_list("template_id", "reason"))
        assert reasons == {
            expiry.pk: f"lower priority than {nudge.key}",
            discount.pk: f"lower priority than {nudge.key}",
        }

    def test_defaults_order_nudge_before_expiry_in_one_sweep(self) -> None:
        # Day 12 of a trial that never activated, with the expiry warning's condition widened to every stage.
        MessageTemplate.objects.filter(key="day-12-expiry-warning").update(condition=None)
        customer = person(started=NOON - timedelta(days=12, hours=1))
        sweep(NOON)
        statuses = dict(MessageSend.objects.filter(customer=customer).values_list("template__key", "status"))
        assert statuses == {"day-1-activation-nudge": "queued", "day-12-expiry-warning": "suppressed"}

    def test_no_longer_qualifying_is_suppressed(self) -> None:
        customer = person(started=NOON - timedelta(days=2), stage=TrialStage.ACTIVATE)
        sent = message_send(customer_id=customer.pk, template_id=template("day-1-activation-nudge").pk, now=NOON)
        assert (sent.status, sent.reason) == ("suppressed", "no longer qualifies")

    def test_leaving_the_audience_before_delivery_suppresses(
        self, django_capture_on_commit_callbacks: Any, no_quiet_hours: None
    ) -> None:
        segment = Segment.objects.create(name="Hot", conditions={"type": "group", "operator": "and", "children": []})
        item = simple(trigger=MessageTemplate.Trigger.AUDIENCE, trigger_number=None, trigger_segment=segment)
        customer = person(started=NOON)
        membership = SegmentMembership.objects.create(segment=segment, customer=customer, entered_at=NOON)
        with django_capture_on_commit_callbacks(execute=False):
            queued = message_send(customer_id=customer.pk, template_id=item.pk, now=timezone.now())
        membership.delete()
        delivered = message_deliver(send_id=queued.pk)
        assert (delivered.status, delivered.reason) == ("suppressed", "at delivery: no longer qualifies")
        assert mail.outbox == []

    def test_quiet_hours_in_the_customers_zone(self) -> None:
        tokyo = person(started=NOON - timedelta(days=3), traits={"timezone": "Asia/Tokyo"})  # 21:00 there
        london = person(started=NOON - timedelta(days=3), traits={"timezone": "Europe/London"})
        item = simple()
        quiet = message_send(customer_id=tokyo.pk, template_id=item.pk, now=NOON)
        assert (quiet.status, quiet.reason) == ("suppressed", "quiet hours (21:00 Asia/Tokyo)")
        assert message_send(customer_id=london.pk, template_id=item.pk, now=NOON).status == "queued"
        assert in_quiet_hours(NOON.replace(hour=7), 21, 8) and not in_quiet_hours(NOON.replace(hour=8), 21, 8)
        assert in_quiet_hours(NOON.replace(hour=13), 12, 14) and not in_quiet_hours(NOON, 0, 0)

    def test_holdout_is_deterministic_and_near_the_percentage(self) -> None:
        item = simple(holdout_percent=20)
        picks = [in_holdout(item, customer_id) for customer_id in range(1, 2001)]
        assert 0.17 < sum(picks) / len(picks) < 0.23
        assert picks == [in_holdout(item, customer_id) for customer_id in range(1, 2001)]
        held = next(i for i in range(1, 2001) if in_holdout(item, i))
        assert not in_holdout(simple(holdout_percent=0), held)

    def test_holdout_is_logged_and_not_sent(self) -> None:
        item = simple(holdout_percent=100)
        customer = person(started=NOON - timedelta(days=3))
        send = message_send(customer_id=customer.pk, template_id=item.pk, now=NOON)
        assert (send.status, send.reason) == ("holdout", "holdout 100%")

    def test_consent_missing_email_and_inactive_templates(self) -> None:
        item = simple()
        refused = person(started=NOON - timedelta(days=3), consent={"email": False})
        no_address = person(started=NOON - timedelta(days=3))
        Customer.objects.filter(pk=no_address.pk).update(email="")
        assert message_send(customer_id=refused.pk, template_id=item.pk, now=NOON).reason == (
            "no email consent (unsubscribed)"
        )
        assert message_send(customer_id=no_address.pk, template_id=item.pk, now=NOON).reason == "no email address"
        MessageTemplate.objects.filter(pk=item.pk).update(active=False)
        assert message_send(customer_id=refused.pk, template_id=item.pk, now=NOON).reason == "template inactive"


class TestDeliveryAndUnsubscribe:
    def test_delivery_with_list_unsubscribe_headers(
        self, django_capture_on_commit_callbacks: Any, no_quiet_hours: None
    ) -> None:
        customer = person(started=timezone.now() - timedelta(days=3), traits={"first_name": "Ada"})
        with django_capture_on_commit_callbacks(execute=True):
            send = message_send(customer_id=customer.pk, template_id=simple().pk, now=timezone.now())
        send.refresh_from_db()
        assert (send.status, send.attempts) == ("sent", 1) and send.sent_at is not None
        [message] = mail.outbox
        assert message.subject == "Hello Ada" and message.to == [customer.email]
        assert message.extra_headers["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/emails/unsubscribe/")
        assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    def test_failures_are_recorded_then_marked_failed(
        self, settings: Any, django_capture_on_commit_callbacks: Any, no_quiet_hours: None
    ) -> None:
        customer = person(started=timezone.now() - timedelta(days=3))
        with django_capture_on_commit_callbacks(execute=False):
            send = message_send(customer_id=customer.pk, template_id=simple().pk, now=timezone.now())
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
        with pytest.raises(DeliveryError):
            message_deliver(send_id=send.pk)
        send.refresh_from_db()
        assert (send.status, send.attempts) == ("queued", 1) and send.error
        with pytest.raises(DeliveryError):
            message_deliver(send_id=send.pk, final_attempt=True)
        send.refresh_from_db()
        assert (send.status, send.attempts) == ("failed", 2)

    def test_one_click_unsubscribe(self, client: Client) -> None:
        customer = person(started=NOON)
        url = f"/emails/unsubscribe/{unsubscribe_token(customer)}/"
        assert client.get(url).status_code == 200
        customer.refresh_from_db()
        assert customer.has_consent("email"), "a GET (link scanners) must not unsubscribe"
        assert client.post(url, {"List-Unsubscribe": "One-Click"}).status_code == 200
        customer.refresh_from_db()
        assert not customer.has_consent("email")
        assert client.post(f"/emails/unsubscribe/{unsubscribe_token(customer)}x/").status_code == 404
        assert client.get("/emails/unsubscribe/forged/").status_code == 404


def test_the_delivery_task_retries_then_marks_failed(
    settings: Any, django_capture_on_commit_callbacks: Any, no_quiet_hours: None
) -> None:
    from trials.messaging.delivery import deliver_message

    customer = person(started=timezone.now() - timedelta(days=3))
    with django_capture_on_commit_callbacks(execute=False):
        send = message_send(customer_id=customer.pk, template_id=simple().pk, now=timezone.now())
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    # A failed attempt asks Celery for a retry and stays queued ...
    with pytest.raises(Retry):
        deliver_message.apply(args=(send.pk,))
    send.refresh_from_db()
    assert (send.status, send.attempts) == ("queued", 1)
    # ... and the last allowed attempt marks it failed, with the error kept.
    with pytest.raises(DeliveryError):
        deliver_message.apply(args=(send.pk,), retries=deliver_message.max_retries)
    send.refresh_from_db()
    assert (send.status, send.attempts) == ("failed", 2)
    assert "ConnectionRefusedError" in send.error


class TestEditor:
    def form(self, item: MessageTemplate, **changes: Any) -> dict[str, Any]:
        data: dict[str, Any] = {
            field: getattr(item, field)
            for field in ("name", "subject", "html_body", "text_body", "trigger", "trigger_event", "priority")
        }
        data.update(active="on", trigger_number=item.trigger_number or "", holdout_percent=item.holdout_percent)
        data.update(when_outranked=item.when_outranked, **({"no_holdout": "on"} if item.no_holdout else {}))
        data.update(condition=json.dumps(item.condition) if item.condition else "", throttle_hours="")
        data.update(changes)
        return data

    def test_a_missing_variable_is_a_form_error(self, client: Client, make_user: Any) -> None:
        client.force_login(make_user(Role.GROWTH))
        item = template("day-1-activation-nudge")
        page = client.post(f"/trials/emails/{item.pk}/edit/", self.form(item, html_body="Hi {{ frist_name }}"))
        assert page.status_code == 400
        assert "Unknown variable &#x27;frist_name&#x27;." in page.content.decode()
        item.refresh_from_db()
        assert "frist_name" not in item.html_body

    def test_growth_saves_a_valid_template(self, client: Client, make_user: Any) -> None:
        client.force_login(make_user(Role.GROWTH))
        item = template("day-1-activation-nudge")
        response = client.post(f"/trials/emails/{item.pk}/edit/", self.form(item, subject="Hey {{ first_name }}"))
        assert response.status_code == 302
        item.refresh_from_db()
        assert item.subject == "Hey {{ first_name }}"
        assert client.get(f"/trials/emails/{item.pk}/edit/").status_code == 200

    def test_a_rep_cannot_edit(self, client: Client, make_user: Any) -> None:
        client.force_login(make_user(Role.SALES_REP))
        item = template("day-1-activation-nudge")
        assert client.post(f"/trials/emails/{item.pk}/edit/", self.form(item)).status_code == 403


def test_a_suppressed_pair_is_reconsidered_an_hour_later() -> None:
    MessageTemplate.objects.update(active=False)  # only this test's template
    customer = person(started=NOON - timedelta(days=3))
    item = simple()
    CustomerMessageLock.objects.create(customer=customer, last_sent_at=NOON - timedelta(hours=23, minutes=30))
    sweep(NOON)  # throttled: the last email was 23.5 h ago
    sweep(NOON + timedelta(minutes=5))  # left alone: suppressed less than an hour ago
    assert list(item.sends.values_list("status", flat=True)) == ["suppressed"]
    sweep(NOON + timedelta(hours=1, minutes=1))
    assert list(item.sends.order_by("pk").values_list("status", flat=True)) == ["suppressed", "queued"]


class TestPriorityAcrossPaths:
    """A customer's emails are decided by priority wherever they come from: a real-time email yields to a more
    important one due within the workspace's priority window."""

    def setup_discount(self, **fields: Any) -> tuple[Customer, MessageTemplate]:
        number = next(_ids)
        source = Source.objects.create(
            name=f"App {number}", write_key_hash=f"{number:064d}", write_key_prefix="p", secret_key_digest=f"s{number}"
        )
        discount = simple(
            trigger=MessageTemplate.Trigger.EVENT, trigger_event="Pricing Viewed", trigger_number=24, priority=30,
            **fields,
        )  # fmt: skip
        # The day-1 nudge (priority 10) falls due at 12:03.
        customer = person(started=NOON + timedelta(minutes=3) - timedelta(days=1))
        Event.objects.create(
            source=source, message_id=f"pv{customer.pk}", customer=customer, type=Event.Type.TRACK,
            name="Pricing Viewed", timestamp=NOON, received_at=NOON,
        )  # fmt: skip
        return customer, discount

    def test_a_real_time_discount_waits_for_the_nudge_due_three_minutes_later(self) -> None:
        customer, discount = self.setup_discount()
        nudge = template("day-1-activation-nudge")
        assert messages_trigger(customer_ids=[customer.pk], template_ids=[discount.pk], now=NOON) == {"deferred": 1}
        waited = discount.sends.get()
        assert waited.reason == "yields to day-1-activation-nudge (priority 10), due 2026-03-10 12:03 UTC"
        # The nudge is decided when it falls due, and gets the customer's slot; then the discount is decided
        # again, and waits for the throttle window.
        sweep(NOON + timedelta(minutes=5))
        rows = list(MessageSend.objects.filter(customer=customer).order_by("pk").values_list("template", "status"))
        assert rows == [
            (discount.pk, "deferred"),
            (nudge.pk, "queued"),
            (discount.pk, "suppressed"),
        ]
        assert discount.sends.order_by("pk").last().reason.startswith("throttled")  # type: ignore[union-attr]

    def test_a_dropped_template_is_not_decided_again(self) -> None:
        customer, discount = self.setup_discount(when_outranked=MessageTemplate.WhenOutranked.DROP)
        messages_trigger(customer_ids=[customer.pk], template_ids=[discount.pk], now=NOON)
        sweep(NOON + timedelta(minutes=5))
        sweep(NOON + timedelta(days=1, hours=2))
        assert list(discount.sends.values_list("status", flat=True)) == ["dropped"]

    def test_a_nudge_armed_for_the_next_morning_is_not_due_soon(self) -> None:
        nudge = template("day-1-activation-nudge")
        nudge.send_at_local_time = dt_time(9, 0)
        message_template_save(nudge)
        customer, discount = self.setup_discount()
        message_timers_arm(nudge, now=NOON - timedelta(hours=1))  # its trigger is due at 12:03, it goes at 09:00
        assert messages_trigger(customer_ids=[customer.pk], template_ids=[discount.pk], now=NOON) == {"queued": 1}

    def test_the_window_is_a_workspace_setting(self) -> None:
        EmailSettings.objects.filter(pk=1).update(priority_window_minutes=2)
        customer, discount = self.setup_discount()
        assert messages_trigger(customer_ids=[customer.pk], template_ids=[discount.pk], now=NOON) == {"queued": 1}

    def test_nothing_more_important_due_sends_at_once(self) -> None:
        customer, discount = self.setup_discount()
        Trial.objects.filter(customer=customer).update(stage=TrialStage.ACTIVATE)  # the nudge's condition fails
        assert messages_trigger(customer_ids=[customer.pk], template_ids=[discount.pk], now=NOON) == {"queued": 1}

    def test_the_nudge_no_longer_coming_releases_the_discount(self) -> None:
        customer, discount = self.setup_discount()
        messages_trigger(customer_ids=[customer.pk], template_ids=[discount.pk], now=NOON)
        Trial.objects.filter(customer=customer).update(stage=TrialStage.ACTIVATE)
        # The sweep after the hour decides the deferred pair again: nothing more important is due any more.
        sweep(NOON + timedelta(hours=1, minutes=1))
        assert list(discount.sends.order_by("pk").values_list("status", flat=True)) == ["deferred", "queued"]

    def test_the_real_time_decision_reads_the_due_templates_set_based(self, django_assert_max_num_queries: Any) -> None:
        customers = [self.setup_discount()[0] for _ in range(3)]
        discount = MessageTemplate.objects.filter(trigger_event="Pricing Viewed").order_by("pk")
        ids = [customer.pk for customer in customers]
        # Counting the queries of the due look-ahead only: one per template ranked before the discount.
        with django_assert_max_num_queries(1 + MessageTemplate.objects.filter(priority__lte=30).count()):
            due = messages_due_ahead(ids, up_to=discount.first(), now=NOON)  # type: ignore[arg-type]
        assert {customer_id: item.template.key for customer_id, item in due.items()} == dict.fromkeys(
            ids, "day-1-activation-nudge"
        )


class TestHoldoutByDefault:
    """Every live template and play holds 10% out unless someone chooses otherwise; 0 only explicitly."""

    def fields(self) -> dict[str, Any]:
        return {
            "key": f"default-{next(_ids)}", "name": "Default", "trigger": MessageTemplate.Trigger.TRIAL_DAY,
            "trigger_number": 0, "subject": "Hi", "html_body": "<p>Hi</p>", "text_body": "Hi",
        }  # fmt: skip

    def test_a_new_template_and_play_hold_ten_percent_out(self) -> None:
        item = message_template_save(MessageTemplate(**self.fields()))
        play = play_save(Play(key="default-play", name="P", condition=PLAYS[0]["condition"]))
        assert (item.holdout_percent, item.no_holdout) == (10, False)
        assert (play.holdout_percent, play.no_holdout) == (10, False)

    def test_zero_is_an_explicit_choice(self) -> None:
        with pytest.raises(ValidationError) as caught:
            message_template_save(MessageTemplate(**self.fields(), holdout_percent=0))
        assert "holdout_percent" in caught.value.message_dict
        with pytest.raises(ValidationError) as caught:
            play_save(Play(key="zero-play", name="P", condition=PLAYS[0]["condition"], holdout_percent=0))
        assert "holdout_percent" in caught.value.message_dict
        with pytest.raises(ValidationError) as caught:
            message_template_save(MessageTemplate(**self.fields(), no_holdout=True))
        assert "no_holdout" in caught.value.message_dict
        unmeasured = message_template_save(MessageTemplate(**self.fields(), holdout_percent=0, no_holdout=True))
        assert unmeasured.holdout_percent == 0

    def test_the_default_holdout_is_sticky_and_measured_by_the_uplift_report(self) -> None:
        MessageTemplate.objects.update(active=False)
        item = message_template_save(MessageTemplate(**self.fields()))
        customers = [person(started=NOON - timedelta(hours=1)) for _ in range(200)]
        sweep(NOON)
        held = set(item.sends.filter(status="holdout").values_list("customer_id", flat=True))
        assert held == {c.pk for c in customers if in_holdout(item, c.pk)}
        assert 5 <= len(held) <= 40  # about 10% of 200
        # Sticky: a held-out customer is never decided again, and a larger holdout keeps them held out.
        MessageTemplate.objects.filter(pk=item.pk).update(holdout_percent=30)
        item.refresh_from_db()
        assert all(in_holdout(item, customer_id) for customer_id in held)
        sweep(NOON + timedelta(days=2))
        assert item.sends.count() == 200
        # The report compares the sent with the held out (delivery marks the queued ones sent).
        item.sends.filter(status="queued").update(status="sent")
        [row] = [row for row in template_uplift(filters=Filters()) if row.key == item.key]
        assert (row.comparison.trials_a, row.comparison.trials_b) == (200 - len(held), len(held))
