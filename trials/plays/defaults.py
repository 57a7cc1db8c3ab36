"""The four sales-assist plays of the seeds, as plain data for the seeding migration and the tests.

Thresholds follow the seeds and the default score settings: fit "medium or high" is a fit score of at least 40
(ScoreSettings.medium_fit), "high" at least 70 (high_fit); "72 hours" is three whole days (segment conditions
count days). Activation done means the trial is at activate, habit or signal. "No meeting logged" is no alert
closed as "meeting booked" on the customer or account and no `Meeting Logged` event (a CRM may send one).
"Champion at risk": a multi-seat account (2+ members) whose only member seen in the last 7 days is this
high-usage customer (behaviour score at least 50), one alert per account.
"""

from __future__ import annotations

from typing import Any

IN_TRIAL = ["trigger", "activate", "habit", "signal"]
MEDIUM_FIT = 40
HIGH_FIT = 70
HIGH_USAGE_BEHAVIOUR = 50


def _leaf(prop: str, operator: str, value: Any = None) -> dict[str, Any]:
    leaf: dict[str, Any] = {"type": "condition", "property": prop, "operator": operator}
    if value is not None:
        leaf["value"] = value
    return leaf


def _all(*children: dict[str, Any]) -> dict[str, Any]:
    return {"type": "group", "operator": "and", "negate": False, "children": list(children)}


PLAYS: list[dict[str, Any]] = [
    {
        "key": "activation-reached",
        "name": "Activation reached: 20-minute walkthrough",
        "description": "Activation done and fit medium or high: a personal email within 4 business hours about "
        "the use case they picked. The call is about the rollout plan — who else needs access, what data to "
        "connect, what success looks like — not a demo.",
        "condition": _all(
            _leaf("trial.stage", "one_of", ["activate", "habit", "signal"]),
            _leaf("score.fit", "gte", MEDIUM_FIT),
        ),
        "target": "customer",
        "priority": 10,
        "sla_business_hours": 4,
        "subject": "{{ company|default:first_name }}: 20 minutes on your {{ use_case|default:'rollout' }} plan?",
        "body": "Hi {{ first_name|default:'there' }},\n\nI saw you reached {{ value_moment }} — {{ key_actions }} key "
        "actions in {{ days_active }} active day{{ days_active|pluralize }} so far. You picked "
        "{{ use_case|default:'no use case yet' }} at signup; could we take 20 minutes to plan the rollout: who "
        "else needs access, what data should connect, and what success looks like for you?\n\n{{ rep_name }}",
        "cooldown_hours": 24 * 14,
    },
    {
        "key": "stuck-after-signup",
        "name": "Stuck after signup: one-line email",
        "description": "Signed up more than 72 hours ago, not activated, fit high: a one-line email asking what "
        "got in the way — no calendar link, no deck.",
        "condition": _all(
            _leaf("trial.stage", "equals", "trigger"),
            _leaf("trial.started", "more_than_days_ago", 3),
            _leaf("score.fit", "gte", HIGH_FIT),
        ),
        "target": "customer",
        "priority": 20,
        "sla_business_hours": 8,
        "subject": "Quick question, {{ first_name|default:'there' }}",
        "body": "Hi {{ first_name|default:'there' }}, what got in the way of {{ value_moment }}?\n\n{{ rep_name }}",
        "cooldown_hours": 24 * 14,
    },
    {
        "key": "trial-expiring",
        "name": "Trial expiring: multi-thread",
        "description": "72 hours left, no meeting logged, fit high: reach the user, their manager and their IT "
        "contact (if data integration is the blocker). Direct: when it expires, what it would cost, the "
        "one-click extension.",
        "condition": _all(
            _leaf("trial.stage", "one_of", IN_TRIAL),
            _leaf("trial.days_left", "between", [0, 2]),
            _leaf("score.fit", "gte", HIGH_FIT),
            _leaf("sales.meeting_logged", "is_false"),
            {"type": "event", "event": "Meeting Logged", "operator": "not_performed"},
        ),
        "target": "customer",
        "priority": 5,
        "sla_business_hours": 4,
        "subject": "Your {{ company|default:'team' }} trial ends {{ trial_ends_at|date:'l' }}",
        "body": "Hi {{ first_name|default:'there' }},\n\nyour trial expires {{ trial_ends_at|date:'l j F' }} "
        "({{ trial_hours_left }} hours from now). {% if plan_name %}On {{ plan_name }} it would cost "
        "{{ plan_price }}.{% endif %} If you need another week, reply and I will extend it in one click.\n\n"
        "Also reaching: your manager and your IT contact{% if teammates %} ({{ teammates }} teammate"
        "{{ teammates|pluralize }} on the trial){% endif %}.\n\n{{ rep_name }}",
        "cooldown_hours": 24 * 30,
    },
    {
        "key": "champion-at-risk",
        "name": "Champion at risk: forwardable invite",
        "description": "One high-usage user is the only active member of a multi-seat team trial: send a 'your "
        "team has not joined' note with a pre-written invite the champion can forward.",
        "condition": _all(
            _leaf("trial.stage", "one_of", IN_TRIAL),
            _leaf("account.members", "gte", 2),
            _leaf("account.active_members", "equals", 1),
            _leaf("customer.last_seen", "within_last_days", 7),
            _leaf("score.behaviour", "gte", HIGH_USAGE_BEHAVIOUR),
        ),
        "target": "account",
        "priority": 15,
        "sla_business_hours": 8,
        "subject": "Your team has not joined {{ company|default:'you' }} yet",
        "body": "Hi {{ first_name|default:'there' }},\n\nyou have done {{ key_actions }} key actions, but "
        "{{ teammates }} teammate{{ teammates|pluralize }} on the trial {{ teammates|pluralize:'has,have' }} not "
        "been active this week. Here is an invite you can forward as is:\n\n---\nI have been using it for "
        "{{ use_case|default:'our work' }} and it is worth ten minutes of your time — join me before the trial "
        "ends in {{ trial_days_left }} day{{ trial_days_left|pluralize }}.\n---\n\n{{ rep_name }}",
        "cooldown_hours": 24 * 7,
    },
]
