"""Real-time lifecycle emails: "event performed" and "audience entered" templates are decided within seconds.

A stored-batch hook and an audience-enter hook queue the decision for the customers concerned after the
recording transaction commits (:func:`messages_on_batch`, :func:`messages_on_audience_enter`); the batch hook
also arms or moves the time-based timers of customers whose trial or zone changed.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from celery import shared_task
from django.db import transaction

from audiences.pipeline import BatchFacts
from segments.models import Segment
from trials.messaging.decide import messages_trigger
from trials.messaging.models import MessageTemplate
from trials.messaging.timers import TIME_TRIGGERS, message_timers_arm


@shared_task(name="trials.tasks.trigger_messages")
def trigger_messages(customer_ids: list[int], template_ids: list[int]) -> dict[str, int]:
    """Real time: the email templates an event or an audience entry just triggered, for those customers."""
    return messages_trigger(customer_ids=customer_ids, template_ids=template_ids)


def _queue_trigger(customer_ids: Collection[int], template_ids: Collection[int]) -> None:
    """Queue the real-time decision once the recording transaction has committed (the worker sees the rows)."""
    customers, templates = sorted(customer_ids), sorted(template_ids)
    transaction.on_commit(lambda: trigger_messages.delay(customers, templates))


EVENT_TEMPLATES_TTL = 30.0  # seconds a worker process trusts its copy of the hook-relevant templates


@dataclass(frozen=True)
class HookTemplates:
    """The active email templates the stored-batch hook acts on: by event name, and the time-based ones."""

    by_event: dict[str, tuple[int, ...]]
    timed: tuple[int, ...]


_event_templates_cache: dict[str, tuple[float, HookTemplates]] = {}


def _hook_templates() -> HookTemplates:
    """The active "event performed" email templates by event name, and the time-based ones, kept per process for
    EVENT_TEMPLATES_TTL so a batch costs no query to find them. A stale copy only delays the real-time path in
    other worker processes (saving a template forgets this process's copy and arms its timers); the sweep still
    decides every template."""
    cached = _event_templates_cache.get("templates")
    if cached is not None and time.monotonic() - cached[0] < EVENT_TEMPLATES_TTL:
        return cached[1]
    found: dict[str, list[int]] = {}
    timed: list[int] = []
    rows = MessageTemplate.objects.filter(
        active=True, channel=MessageTemplate.Channel.EMAIL, trigger__in=[MessageTemplate.Trigger.EVENT, *TIME_TRIGGERS]
    ).values_list("trigger", "trigger_event", "pk")
    for trigger, name, pk in rows:
        if trigger == MessageTemplate.Trigger.EVENT:
            found.setdefault(name, []).append(pk)
        else:
            timed.append(pk)
    templates = HookTemplates({name: tuple(pks) for name, pks in found.items()}, tuple(timed))
    _event_templates_cache["templates"] = (time.monotonic(), templates)
    return templates


def event_templates_forget() -> None:
    """Drop this process's copy of the hook-relevant templates (after a template changed)."""
    _event_templates_cache.clear()


def messages_on_batch(facts: BatchFacts, now: datetime) -> set[int]:
    """Stored-batch hook: customers who just performed an event an active "event performed" email template
    names get that template decided now (queued after commit); customers whose profile or trial the batch
    changed (a trial started or moved its end, a new time zone — trials.loop.lifecycle's hook runs first and reports its
    changes as profile changes) get the time-based templates' timers armed or moved. Finding the templates
    costs no query (see _hook_templates); it changes no data segments read, so it returns no customers."""
    if not facts.events and not facts.profile_changed:
        return set()
    templates = _hook_templates()
    customer_ids: set[int] = set()
    template_ids: set[int] = set()
    for customer_id, names in facts.events.items():
        for name in names:
            if name in templates.by_event:
                customer_ids.add(customer_id)
                template_ids.update(templates.by_event[name])
    if customer_ids:
        _queue_trigger(customer_ids, template_ids)
    if templates.timed and facts.profile_changed:
        for template in MessageTemplate.objects.filter(pk__in=templates.timed):
            message_timers_arm(template, now=now, customer_ids=facts.profile_changed)
    return set()


def messages_on_audience_enter(segment: Segment, customer_ids: list[int]) -> None:
    """Audience-enter hook: customers who just entered a live audience that an active "audience entered" email
    template names get it decided now (after the entry commits)."""
    template_ids = list(
        MessageTemplate.objects.filter(
            active=True,
            channel=MessageTemplate.Channel.EMAIL,
            trigger=MessageTemplate.Trigger.AUDIENCE,
            trigger_segment=segment,
        ).values_list("pk", flat=True)
    )
    if template_ids and customer_ids:
        _queue_trigger(customer_ids, template_ids)
