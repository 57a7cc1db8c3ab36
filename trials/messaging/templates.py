"""Saving, copying and deleting message templates and the workspace email settings: the one door for them.

Every save validates first (trials.messaging.syntax), forgets the real-time hook's cached templates and arms or
moves the time-based templates' timers, so a change takes effect without waiting for the sweep.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audiences.models import ComputedTrait
from config.timers import timers_cancel_prefix
from segments.conditions import parse_tree
from trials.messaging.holdout import holdout_errors
from trials.messaging.models import EmailSettings, MessageSend, MessageTemplate
from trials.messaging.realtime import event_templates_forget
from trials.messaging.syntax import template_errors
from trials.messaging.timers import TIME_TRIGGERS, message_timers_arm, timer_prefix


def message_template_validate(template: MessageTemplate) -> None:
    """Raise ValidationError (per field) when a template text or the trigger settings are not usable."""
    keys = set(ComputedTrait.objects.values_list("key", flat=True))
    errors: dict[str, list[str]] = {}
    for field in ("subject", "html_body", "text_body"):
        found = template_errors(getattr(template, field), computed_keys=keys)
        if found:
            errors[field] = found
    if template.channel == MessageTemplate.Channel.EMAIL and not template.subject.strip():
        errors.setdefault("subject", []).append("An email needs a subject.")
    trigger = MessageTemplate.Trigger
    if template.trigger == trigger.EVENT and not template.trigger_event:
        errors.setdefault("trigger_event", []).append("Name the event.")
    if template.trigger == trigger.AUDIENCE and template.trigger_segment_id is None:
        errors.setdefault("trigger_segment", []).append("Choose the audience.")
    if template.trigger in TIME_TRIGGERS and template.trigger_number is None:
        errors.setdefault("trigger_number", []).append("Give N.")
    if template.send_at_local_time is not None and template.trigger not in TIME_TRIGGERS:
        errors.setdefault("send_at_local_time", []).append(
            "Only trial day N and trial ends in N hours have a time of day; events and audiences send as they happen."
        )
    if template.condition:
        try:
            parse_tree(template.condition)
        except ValueError as exc:
            errors.setdefault("condition", []).append(str(exc))
    for field, found in holdout_errors(template.holdout_percent, no_holdout=template.no_holdout).items():
        errors.setdefault(field, []).extend(found)
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def message_template_save(template: MessageTemplate) -> MessageTemplate:
    """Validate, then save: the one door for creating and editing templates."""
    message_template_validate(template)
    template.save()
    event_templates_forget()
    message_timers_arm(template, now=timezone.now())
    return template


def message_template_duplicate(template: MessageTemplate) -> MessageTemplate:
    """A copy to experiment on, inactive so it cannot send until someone reviews it; the key gets a free
    `-copy`, `-copy-2`, … suffix because keys are unique."""
    base = f"{template.key}-copy"[:90]
    taken = set(MessageTemplate.objects.filter(key__startswith=base).values_list("key", flat=True))
    key = base
    number = 2
    while key in taken:
        key, number = f"{base}-{number}", number + 1
    copy = MessageTemplate.objects.get(pk=template.pk)
    copy.pk = None
    copy.key, copy.name, copy.active = key, f"Copy of {template.name}"[:255], False
    return message_template_save(copy)


def message_template_delete(template: MessageTemplate) -> int:
    """Delete a template and its send log rows (they only make sense with it); returns how many rows went.
    Deactivating keeps the log — the page says so before anyone confirms."""
    timers_cancel_prefix(timer_prefix(template.pk))
    _, removed = template.delete()  # the send log goes with it (CASCADE)
    event_templates_forget()
    return removed.get(MessageSend._meta.label, 0)


@transaction.atomic
def email_settings_save(workspace: EmailSettings, priorities: dict[int, int]) -> EmailSettings:
    """Save the workspace rules and the templates' priority order together, so the page never half-applies; the
    time-based templates' timers move with the quiet hours and the default zone."""
    workspace.save()
    # Saved one by one, not with update(): a priority change is a configuration change the audit log records.
    for template in MessageTemplate.objects.filter(pk__in=priorities):
        if template.priority != priorities[template.pk]:
            template.priority = priorities[template.pk]
            template.save(update_fields=["priority"])
    now = timezone.now()
    for template in MessageTemplate.objects.filter(active=True, trigger__in=TIME_TRIGGERS):
        message_timers_arm(template, now=now)
    return workspace
