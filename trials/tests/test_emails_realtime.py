"""Real-time triggers: "event performed" and "audience entered" email templates are decided as batches are
processed (through stored_events_process in the worker), not only by the sweep; re-entering an audience after
leaving it makes the customer eligible again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.test import TestCase
from django.utils import timezone

from audiences.ingestion import IncomingMessage, messages_ingest
from audiences.models import Customer, Source
from audiences.pipeline import BatchFacts
from segments.models import CustomProperty, Segment
from segments.services import segment_save
from trials.messaging.decide import messages_sweep
from trials.messaging.models import EmailSettings, MessageSend, MessageTemplate
from trials.messaging.realtime import event_templates_forget, messages_on_batch
from trials.messaging.templates import message_template_save
from trials.tests.holdouts import without_holdout

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def workspace(db: Any) -> Iterator[None]:
    """No quiet hours (the tests run at any time of day) and only the templates each test creates; the
    process's copy of the event-triggered templates is dropped before and after."""
    EmailSettings.objects.update_or_create(pk=1, defaults={"quiet_start_hour": 0, "quiet_end_hour": 0})
    MessageTemplate.objects.update(active=False)
    event_templates_forget()
    yield
    event_templates_forget()


def message(kind: str = "track", *, name: str = "", **traits: Any) -> IncomingMessage:
    now = timezone.now()
    return IncomingMessage(
        type=kind,
        message_id=f"m-{time.monotonic_ns()}",
        user_id="usr_ada",
        anonymous_id=None,
        name=name,
        properties={} if kind != "identify" else traits,
        context={},
        timestamp=now,
        received_at=now,
        traits=traits,
    )


def ingest(source: Source, *messages: IncomingMessage) -> None:
    """As the tracking API stores a batch: the worker (and the send task it queues) runs on commit."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        messages_ingest(source=source, messages=list(messages))


def email_template(**fields: Any) -> MessageTemplate:
    values: dict[str, Any] = {
        "key": f"rt-{time.monotonic_ns()}",
        "name": "Real time",
        "subject": "Hi {{ first_name }}",
        "html_body": "<p>Hi {{ first_name }}</p>",
        "text_body": "Hi {{ first_name }}",
        **fields,
    }
    return message_template_save(MessageTemplate(**without_holdout(values)))


def sends(template: MessageTemplate) -> list[str]:
    return list(MessageSend.objects.filter(template=template).order_by("pk").values_list("status", flat=True))


def test_an_event_trigger_sends_as_the_batch_is_processed(source: Source) -> None:
    template = email_template(trigger=MessageTemplate.Trigger.EVENT, trigger_event="Report Run")
    ingest(source, message("identify", email="ada@acme.test", first_name="Ada"), message(name="Page Viewed"))
    assert sends(template) == []

    ingest(source, message(name="Report Run"))
    assert sends(template) == ["sent"]
    assert [(m.to, m.subject) for m in mail.outbox] == [(["ada@acme.test"], "Hi Ada")]

    ingest(source, message(name="Report Run"))  # once per customer, as the sweep decides
    assert sends(template) == ["sent"]
    assert len(mail.outbox) == 1


def test_the_batch_hook_reads_the_templates_once_and_queues_nothing_for_other_events(
    django_assert_num_queries: Any, django_capture_on_commit_callbacks: Any
) -> None:
    email_template(trigger=MessageTemplate.Trigger.EVENT, trigger_event="Report Run")  # forgets the cache
    now = timezone.now()
    with django_assert_num_queries(0):
        assert messages_on_batch(BatchFacts(), now) == set()
    with django_capture_on_commit_callbacks() as callbacks, django_assert_num_queries(1):
        assert messages_on_batch(BatchFacts(events={1: {"Page Viewed"}, 2: {"Signed Up"}}), now) == set()
    assert callbacks == []
    with django_capture_on_commit_callbacks() as callbacks, django_assert_num_queries(0):
        messages_on_batch(BatchFacts(events={1: {"Report Run"}, 2: {"Page Viewed"}}), now)
    assert len(callbacks) == 1


def test_an_in_app_event_template_is_not_queued_for_email(django_capture_on_commit_callbacks: Any) -> None:
    email_template(
        trigger=MessageTemplate.Trigger.EVENT, trigger_event="Report Run", channel=MessageTemplate.Channel.IN_APP
    )
    with django_capture_on_commit_callbacks() as callbacks:
        messages_on_batch(BatchFacts(events={1: {"Report Run"}}), timezone.now())
    assert callbacks == []


def live_audience() -> Segment:
    CustomProperty.objects.get_or_create(key="plan", defaults={"value_type": "string"})
    condition = {"type": "condition", "property": "trait.plan", "operator": "equals", "value": "pro"}
    segment = segment_save(name="Pro", conditions={"type": "group", "operator": "and", "children": [condition]})
    Segment.objects.filter(pk=segment.pk).update(is_live=True)
    segment.refresh_from_db()
    return segment


def test_entering_a_live_audience_sends_and_re_entry_makes_the_customer_eligible_again(source: Source) -> None:
    EmailSettings.objects.filter(pk=1).update(throttle_hours=0)  # the throttle is not what this test is about
    audience = live_audience()
    template = email_template(trigger=MessageTemplate.Trigger.AUDIENCE, trigger_segment=audience)

    ingest(source, message("identify", email="ada@acme.test", first_name="Ada", plan="pro"))
    assert sends(template) == ["sent"]
    ingest(source, message("identify", plan="pro", company="Acme"))  # still in: no new entry, no new send
    assert sends(template) == ["sent"]
    later = timezone.now() + timedelta(hours=2)
    assert messages_sweep(now=later) == {}  # the sweep agrees: one send per stay

    ingest(source, message("identify", plan="free"))
    assert sends(template) == ["sent"]
    ingest(source, message("identify", plan="pro"))
    assert sends(template) == ["sent", "sent"]
    assert len(mail.outbox) == 2


def test_an_entry_into_an_audience_no_template_names_queues_nothing(
    source: Source, django_capture_on_commit_callbacks: Any
) -> None:
    live_audience()
    enterprise = {"type": "condition", "property": "trait.plan", "operator": "equals", "value": "enterprise"}
    other = segment_save(name="Other", conditions={"type": "group", "operator": "and", "children": [enterprise]})
    email_template(trigger=MessageTemplate.Trigger.AUDIENCE, trigger_segment=other)
    ingest(source, message("identify", email="ada@acme.test", plan="pro"))
    ada = Customer.objects.get(user_id="usr_ada")
    assert ada.segment_changes.filter(kind="entered").count() == 1
    assert not MessageSend.objects.exists()
