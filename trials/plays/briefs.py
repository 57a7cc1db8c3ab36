"""The call-prep brief: everything a rep needs for the call, in one JSON document frozen on the alert.

Who (name, title, company, fit and PQL with the breakdown), what they did (activation, counts of the key
actions, the last 10 meaningful events, days active), who else is on the trial and how active, the use case
picked at signup, trial days left, the subscription's plan, and the play's message template rendered with
these numbers. Built for many alerts at once in a fixed number of queries (one per kind of fact, whatever the
number of alerts), because alerts are created in batches by the beat and the real-time hook.

The rep message uses the lifecycle email engine (trials.messaging: sandboxed, validated variables) with a few
rep-only variables on top (PLAY_VARIABLES).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Case, Count, F, OuterRef, Subquery, Sum, Value, When, Window
from django.db.models.functions import Coalesce, RowNumber, TruncDate
from django.template import TemplateSyntaxError
from django.utils import timezone

from audiences.models import ComputedTraitValue, Customer, Event
from integrations.stripe.models import Subscription
from segments.compiler import ACTIVE_MEMBER_DAYS
from trials.loop.models import ActivationDefinition, ScoreSettings, Trial
from trials.loop.scores import fit_tier
from trials.messaging.models import MessageTemplate
from trials.messaging.render import RenderedMessage, customer_variables, message_render
from trials.messaging.syntax import VARIABLES, template_errors
from trials.plays.models import Alert

RECENT_EVENTS = 10
MAX_TEAMMATES = 20
# Page views, screens, identify and group calls say little about intent; the brief lists what people did.
MEANINGFUL_TYPES = (Event.Type.TRACK,)

#: Variables a play's message may use on top of the lifecycle email variables (trials.messaging.syntax.VARIABLES).
PLAY_VARIABLES: dict[str, str] = {
    "use_case": "The use case picked at signup",
    "key_actions": "How many key actions (activation and habit events) they performed",
    "days_active": "Days with at least one event",
    "teammates": "Other members of the account",
    "active_teammates": f"Other members active in the last {ACTIVE_MEMBER_DAYS} days",
    "plan_name": "The subscription's plan",
    "plan_price": "The plan's price, e.g. 49.00 USD / month",
    "rep_name": "The assigned rep's name",
}
_UNKNOWN = re.compile(r"^Unknown variable '([a-z_]+)'\.$")


def play_template_errors(source: str, *, computed_keys: set[str] | None = None) -> list[str]:
    """What is wrong with a play's subject or body: the lifecycle template checks, with the rep-only variables
    also allowed."""
    errors = template_errors(source, computed_keys=computed_keys)
    return [error for error in errors if not ((m := _UNKNOWN.match(error)) and m.group(1) in PLAY_VARIABLES)]


@dataclass
class _Facts:
    """Everything fetched for a set of customers, keyed by customer (or account) id."""

    trials: dict[int, Trial]
    subscriptions: dict[int, Subscription]
    key_counts: dict[int, dict[str, int]]
    recent: dict[int, list[dict[str, Any]]]
    days_active: dict[int, int]
    members: dict[int, list[dict[str, Any]]]
    member_counts: dict[int, tuple[int, int]]
    computed: dict[int, dict[str, Any]]
    definition: ActivationDefinition | None
    scores: ScoreSettings | None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _key_action_names(definition: ActivationDefinition | None) -> list[str]:
    if definition is None:
        return []
    names = [definition.activation_event, *(definition.habit_events or [])]
    return list(dict.fromkeys(name for name in names if name))


def _facts(customers: Sequence[Customer], now: datetime) -> _Facts:
    """One query per kind of fact for all the customers."""
    ids = [c.pk for c in customers]
    account_ids = sorted({c.account_id for c in customers if c.account_id is not None})
    definition = ActivationDefinition.objects.filter(pk=1).first()
    scores = ScoreSettings.objects.filter(pk=1).first()
    trials = {t.customer_id: t for t in Trial.objects.filter(customer_id__in=ids, is_current=True)}
    subscriptions: dict[int, Subscription] = {}
    for sub in Subscription.objects.filter(customer_id__in=ids).select_related("plan").order_by("-started_at"):
        subscriptions.setdefault(sub.customer_id, sub)
    key_counts: dict[int, dict[str, int]] = {}
    names = _key_action_names(definition)
    if names:
        counted = (
            Event.objects.filter(customer_id__in=ids, name__in=names)
            .order_by()
            .values_list("customer_id", "name")
            .annotate(total=Count("id"))
        )
        for customer_id, name, total in counted:
            key_counts.setdefault(customer_id, {})[name] = total
    ranked = (
        Event.objects.filter(customer_id__in=ids, type__in=MEANINGFUL_TYPES)
        .annotate(
            rank=Window(RowNumber(), partition_by=[F("customer_id")], order_by=[F("timestamp").desc(), F("id").desc()])
        )
        .filter(rank__lte=RECENT_EVENTS)
        .order_by("customer_id", "rank")
        .values_list("customer_id", "name", "timestamp", "properties")
    )
    recent: dict[int, list[dict[str, Any]]] = {}
    for customer_id, name, timestamp, properties in ranked:
        recent.setdefault(customer_id, []).append({"name": name, "at": _iso(timestamp), "properties": properties})
    days = (
        Event.objects.filter(customer_id__in=ids)
        .annotate(day=TruncDate("timestamp"))
        .order_by()
        .values_list("customer_id")
        .annotate(total=Count("day", distinct=True))
    )
    days_active = dict(days)
    members: dict[int, list[dict[str, Any]]] = {}
    member_counts: dict[int, tuple[int, int]] = {}
    if account_ids:
        week = now - timedelta(days=ACTIVE_MEMBER_DAYS)
        week_events = (
            Event.objects.filter(customer_id=OuterRef("pk"), timestamp__gte=week)
            .order_by()
            .values("customer_id")
            .annotate(total=Count("id"))
            .values("total")
        )
        rows = (
            Customer.objects.filter(account_id__in=account_ids)
            .annotate(
                events_7d=Coalesce(Subquery(week_events), Value(0)),
                rank=Window(
                    RowNumber(),
                    partition_by=[F("account_id")],
                    order_by=[F("last_seen_at").desc(nulls_last=True), F("id")],
                ),
                # Counted over the whole account before the rank cap: a 50-seat account has 49 teammates, not 20.
                total=Window(Count("id"), partition_by=[F("account_id")]),
                active_total=Window(
                    Sum(Case(When(last_seen_at__gte=week, then=Value(1)), default=Value(0))),
                    partition_by=[F("account_id")],
                ),
            )
            .filter(rank__lte=MAX_TEAMMATES + 1)
            .order_by("account_id", "rank")
            .values_list(
                "account_id", "pk", "name", "email", "traits", "last_seen_at", "events_7d", "total", "active_total"
            )
        )
        for account_id, pk, name, email, traits, last_seen, events_7d, total, active_total in rows:
            member_counts[account_id] = (total, active_total)
            members.setdefault(account_id, []).append(
                {
                    "id": pk,
                    "name": name or email,
                    "email": email,
                    "title": (traits or {}).get("title", ""),
                    "last_seen_at": _iso(last_seen),
                    "events_7d": events_7d,
                    "active": last_seen is not None and last_seen >= week,
                }
            )
    computed: dict[int, dict[str, Any]] = {}
    for customer_id, key, value in ComputedTraitValue.objects.filter(customer_id__in=ids).values_list(
        "customer_id", "trait__key", "value"
    ):
        computed.setdefault(customer_id, {})[key] = value
    return _Facts(
        trials, subscriptions, key_counts, recent, days_active, members, member_counts, computed, definition, scores
    )


def _price(sub: Subscription | None) -> str:
    if sub is None:
        return ""
    plan = sub.plan
    every = f"{plan.interval_count} {plan.interval}s" if plan.interval_count > 1 else plan.interval
    return f"{plan.amount_cents / 100:.2f} {plan.currency.upper()} / {every}"


def _context(customer: Customer, facts: _Facts, now: datetime, rep_name: str) -> dict[str, Any]:
    """The lifecycle messages' variables (trials.messaging.render.customer_variables), from the facts already
    fetched, plus PLAY_VARIABLES."""
    trial = facts.trials.get(customer.pk)
    sub = facts.subscriptions.get(customer.pk)
    members, active_members = facts.member_counts.get(customer.account_id or 0, (0, 0))
    active = customer.last_seen_at is not None and customer.last_seen_at >= now - timedelta(days=ACTIVE_MEMBER_DAYS)
    context = customer_variables(
        customer,
        trial=trial,
        definition=facts.definition,
        computed=facts.computed.get(customer.pk, {}),
        unsubscribe="",
        now=now,
    )
    context.update(
        {
            "use_case": (trial.use_case if trial is not None else "") or context["traits"].get("use_case", ""),
            "key_actions": sum(facts.key_counts.get(customer.pk, {}).values()),
            "days_active": facts.days_active.get(customer.pk, 0),
            # The account's counts include the customer (when it has an account at all).
            "teammates": max(members - 1, 0),
            "active_teammates": max(active_members - int(active), 0),
            "plan_name": sub.plan.name if sub is not None else "",
            "plan_price": _price(sub),
            "rep_name": rep_name,
        }
    )
    return context


def _brief(alert: Alert, facts: _Facts, now: datetime) -> dict[str, Any]:
    customer, play = alert.customer, alert.play
    assignee = alert.assignee
    rep_name = (assignee.get_full_name() or assignee.get_username()) if assignee is not None else ""
    context = _context(customer, facts, now, rep_name)
    trial = facts.trials.get(customer.pk)
    sub = facts.subscriptions.get(customer.pk)
    account = customer.account if customer.account_id else None
    teammates = [m for m in facts.members.get(customer.account_id or 0, []) if m["id"] != customer.pk]
    try:
        rendered = message_render(MessageTemplate(subject=play.subject, text_body=play.body), context)
    except TemplateSyntaxError as refused:  # stored without validation: the rep sees why, the alert still stands
        rendered = RenderedMessage(
            subject=play.subject, html="", text=f"(The play's message was not rendered: {refused})"
        )
    counts = facts.key_counts.get(customer.pk, {})
    return {
        "built_at": now.isoformat(),
        "who": {
            "customer_id": customer.pk,
            "name": customer.name or customer.email,
            "email": customer.email,
            "title": (customer.traits or {}).get("title", ""),
            "company": context["company"],
            "account_id": account.pk if account is not None else None,
        },
        "scores": {
            "fit": trial.fit_score if trial is not None else None,
            "fit_tier": fit_tier(trial.fit_score, facts.scores) if trial is not None and facts.scores else "",
            "pql": trial.pql_score if trial is not None else None,
            "behaviour": trial.behaviour_score if trial is not None else None,
            "breakdown": trial.score_breakdown if trial is not None else {},
        },
        "activation": {
            "event": facts.definition.activation_event if facts.definition else "",
            "activated": trial is not None and trial.activated_at is not None,
            "activated_at": _iso(trial.activated_at) if trial is not None else None,
            "stage": trial.stage if trial is not None else "",
        },
        "key_actions": [{"name": name, "count": counts.get(name, 0)} for name in _key_action_names(facts.definition)],
        "recent_events": facts.recent.get(customer.pk, []),
        "days_active": context["days_active"],
        "teammates": teammates[:MAX_TEAMMATES],
        "use_case": context["use_case"],
        "trial": {
            "started_at": _iso(trial.started_at) if trial is not None else None,
            "ends_at": _iso(trial.ends_at) if trial is not None else None,
            "days_left": context["trial_days_left"],
            "model": trial.model if trial is not None else "",
        },
        "subscription": {
            "plan": sub.plan.name if sub is not None else "",
            "price": context["plan_price"],
            "status": sub.status if sub is not None else "",
            "quantity": sub.quantity if sub is not None else None,
        },
        "play": {"key": play.key, "name": play.name, "description": play.description},
        "message": {"subject": rendered.subject, "body": rendered.text},
    }


def briefs_build(alerts: Sequence[Alert], *, now: datetime | None = None) -> dict[int, dict[str, Any]]:
    """Briefs for the alerts (with play, customer, customer.account and assignee loaded), by alert id, in a
    fixed number of queries."""
    if not alerts:
        return {}
    now = now or timezone.now()
    facts = _facts([alert.customer for alert in alerts], now)
    return {alert.pk: _brief(alert, facts, now) for alert in alerts}


def briefs_store(alerts: Sequence[Alert], *, now: datetime | None = None) -> None:
    """Build and save the briefs (one bulk UPDATE): at creation, and when a rep asks for a fresh one."""
    now = now or timezone.now()
    built = briefs_build(alerts, now=now)
    for alert in alerts:
        alert.brief, alert.brief_refreshed_at = built[alert.pk], now
    Alert.objects.bulk_update(list(alerts), ["brief", "brief_refreshed_at"])


def brief_refresh(*, alert_id: int, now: datetime | None = None) -> Alert:
    """Rebuild one alert's brief from the data as it is now."""
    alert = Alert.objects.select_related("play", "customer", "customer__account", "assignee").get(pk=alert_id)
    briefs_store([alert], now=now)
    return alert


def play_variable_names() -> list[str]:
    """Every variable a play's message may use (for the play editor's help)."""
    return sorted({*VARIABLES, *PLAY_VARIABLES} - {"unsubscribe_url"})
