"""Tracking-plan enforcement: hold each source's calls to its plan, per the source's mode.

Validators are compiled once per plan version (the plan's `updated_at`, which every edit of the plan or its
events moves) and kept in the process, so a batch costs no extra query beyond loading the source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from audiences.ingestion import IncomingMessage
from audiences.models import Source
from integrations.tracking.models import SourceTrackingPlan, TrackingPlan, TrackingPlanEvent, TrackingPlanViolation

MAX_ERRORS_PER_VIOLATION = 10


class InvalidSchema(ValueError):
    """A JSON Schema that is not itself valid; the message says where."""


def schema_check(schema: Any) -> None:
    """Refuse anything that is not a valid JSON Schema (draft 2020-12), so a plan never breaks at ingestion."""
    if not isinstance(schema, dict):
        raise InvalidSchema('A schema must be a JSON object, e.g. {"type": "object"}.')
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        path = "/".join(str(part) for part in error.path) or "(top level)"
        raise InvalidSchema(f"Not a valid JSON Schema at {path}: {error.message}") from error


@dataclass
class _CompiledPlan:
    events: dict[str, Draft202012Validator | None]
    declared_properties: dict[str, set[str] | None]  # None: the schema does not list its properties
    identify: Draft202012Validator | None
    identify_declared: set[str] | None


_compiled: dict[int, tuple[datetime, _CompiledPlan]] = {}


def _declared(schema: dict[str, Any]) -> set[str] | None:
    properties = schema.get("properties")
    return set(properties) if isinstance(properties, dict) else None


def _compile(plan: TrackingPlan) -> _CompiledPlan:
    cached = _compiled.get(plan.pk)
    if cached is not None and cached[0] == plan.updated_at:
        return cached[1]
    events: dict[str, Draft202012Validator | None] = {}
    declared: dict[str, set[str] | None] = {}
    for event in TrackingPlanEvent.objects.filter(plan=plan):
        schema = event.properties_schema or {}
        events[event.event_name] = Draft202012Validator(schema) if schema else None
        declared[event.event_name] = _declared(schema)
    identify_schema = plan.identify_schema or {}
    compiled = _CompiledPlan(
        events=events,
        declared_properties=declared,
        identify=Draft202012Validator(identify_schema) if identify_schema else None,
        identify_declared=_declared(identify_schema),
    )
    _compiled[plan.pk] = (plan.updated_at, compiled)
    return compiled


@dataclass
class PlanOutcome:
    """The calls to store, the calls the plan blocked, and the violations to record."""

    kept: list[IncomingMessage]
    blocked: list[IncomingMessage] = field(default_factory=list)
    violations: list[TrackingPlanViolation] = field(default_factory=list)


def _errors(validator: Draft202012Validator, instance: dict[str, Any]) -> list[str]:
    found = []
    for error in validator.iter_errors(instance):
        where = "/".join(str(part) for part in error.absolute_path)
        found.append(f"{where}: {error.message}" if where else error.message)
        if len(found) == MAX_ERRORS_PER_VIOLATION:
            break
    return found


def tracking_plan_apply(*, source: Source, messages: list[IncomingMessage], received_at: datetime) -> PlanOutcome:
    """Check track properties and identify traits against the source's plan and act per its mode."""
    link: SourceTrackingPlan | None = getattr(source, "tracking_plan_link", None)
    if link is None or link.mode == SourceTrackingPlan.Mode.ALLOW:
        return PlanOutcome(kept=messages)
    compiled = _compile(link.plan)
    outcome = PlanOutcome(kept=[])

    def violation(message: IncomingMessage, name: str, kind: str, errors: list[str], action: str) -> None:
        outcome.violations.append(
            TrackingPlanViolation(
                source=source,
                plan=link.plan,
                received_at=received_at,
                event_name=name[:200],
                message_id=message.message_id,
                kind=kind,
                errors=errors,
                action=action,
            )
        )

    omit = link.mode == SourceTrackingPlan.Mode.OMIT
    for message in messages:
        if message.type == "track":
            if message.name not in compiled.events:
                if link.mode == SourceTrackingPlan.Mode.BLOCK:
                    violation(message, message.name, TrackingPlanViolation.Kind.UNPLANNED_EVENT, [], "blocked")
                    outcome.blocked.append(message)
                    continue
                violation(message, message.name, TrackingPlanViolation.Kind.UNPLANNED_EVENT, [], "stored")
                outcome.kept.append(message)
                continue
            validator, declared, name = (
                compiled.events[message.name],
                compiled.declared_properties[message.name],
                message.name,
            )
        elif message.type == "identify" and compiled.identify is not None:
            validator, declared, name = compiled.identify, compiled.identify_declared, "identify"
        else:
            outcome.kept.append(message)
            continue
        if omit and declared is not None:
            extra = sorted(set(message.properties) - declared)
            if extra:
                kept_properties = {k: v for k, v in message.properties.items() if k in declared}
                message.properties = kept_properties
                if message.type == "identify":
                    message.traits = kept_properties
                errors = [f"{key}: not in the plan, omitted" for key in extra]
                violation(message, name, TrackingPlanViolation.Kind.UNPLANNED_PROPERTY, errors, "omitted")
        if validator is not None:
            errors = _errors(validator, message.properties)
            if errors:
                violation(message, name, TrackingPlanViolation.Kind.INVALID, errors, "stored")
        outcome.kept.append(message)
    return outcome


def violations_record(violations: list[TrackingPlanViolation]) -> None:
    """Store a batch's violations in one INSERT."""
    if violations:
        TrackingPlanViolation.objects.bulk_create(violations)


def _touch(plan: TrackingPlan) -> None:
    # A new updated_at makes every process recompile the plan's validators on its next batch.
    TrackingPlan.objects.filter(pk=plan.pk).update(updated_at=timezone.now())


@transaction.atomic
def tracking_plan_event_save(
    *, plan: TrackingPlan, event_name: str, properties_schema: dict[str, Any], description: str = ""
) -> TrackingPlanEvent:
    """Add or replace a planned event (its schema is checked first)."""
    schema_check(properties_schema)
    event, _ = TrackingPlanEvent.objects.update_or_create(
        plan=plan,
        event_name=event_name.strip(),
        defaults={"properties_schema": properties_schema, "description": description},
    )
    _touch(plan)
    return event


@transaction.atomic
def tracking_plan_event_delete(*, event: TrackingPlanEvent) -> None:
    """Remove a planned event; calls with that name become unplanned."""
    plan = event.plan
    event.delete()
    _touch(plan)


@transaction.atomic
def source_tracking_plan_set(*, source: Source, plan: TrackingPlan | None, mode: str) -> None:
    """Connect a source to a plan with a mode, or disconnect it (plan None)."""
    if plan is None:
        SourceTrackingPlan.objects.filter(source=source).delete()
        return
    SourceTrackingPlan.objects.update_or_create(source=source, defaults={"plan": plan, "mode": mode})
