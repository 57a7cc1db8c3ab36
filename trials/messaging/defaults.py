"""The four lifecycle templates of the product brief, as plain data for the seeding migration and the tests.

Priorities follow the brief (activation nudge before expiry warning; a discount offer, when one is added,
after both). "Trial day N" fires N whole days after the trial started, so the day-1 nudge goes out at 24 h,
not the brief's 18 h (conditions count whole days). "Usage above median" for the expiry warning is
approximated by the trial having reached activation or beyond; edit the condition to use a computed trait.
"""

from __future__ import annotations

from typing import Any


def _stage(*stages: str) -> dict[str, Any]:
    return {
        "type": "group",
        "operator": "and",
        "negate": False,
        "children": [{"type": "condition", "property": "trial.stage", "operator": "one_of", "value": list(stages)}],
    }


_FOOTER_HTML = '<p style="color:#666;font-size:12px"><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
_FOOTER_TEXT = "\n\nUnsubscribe: {{ unsubscribe_url }}\n"

MESSAGE_TEMPLATES: list[dict[str, Any]] = [
    {
        "key": "day-1-activation-nudge",
        "name": "Day-1 activation nudge",
        "channel": "email",
        "trigger": "trial_day",
        "trigger_number": 1,
        "condition": _stage("trigger"),
        "priority": 10,
        "subject": "{{ first_name|default:'Hi' }}, one step to your first win",
        "html_body": "<p>Hi {{ first_name|default:'there' }},</p>"
        "<p>You signed up yesterday but have not reached <strong>{{ value_moment }}</strong> yet. "
        "It takes a couple of minutes and it is where the product starts paying off.</p>"
        "<p>You have {{ trial_days_left }} day{{ trial_days_left|pluralize }} left in your trial.</p>" + _FOOTER_HTML,
        "text_body": "Hi {{ first_name|default:'there' }},\n\nYou signed up yesterday but have not reached "
        "{{ value_moment }} yet. It takes a couple of minutes.\n\nYou have {{ trial_days_left }} "
        "day{{ trial_days_left|pluralize }} left in your trial." + _FOOTER_TEXT,
    },
    {
        "key": "day-3-pql-handoff",
        "name": "Day-3 PQL handoff",
        "channel": "email",
        "trigger": "trial_day",
        "trigger_number": 3,
        "condition": _stage("signal"),
        "priority": 15,
        "subject": "{{ first_name|default:'Hi' }}, want a hand getting {{ company|default:'your team' }} set up?",
        "html_body": "<p>Hi {{ first_name|default:'there' }},</p>"
        "<p>You are getting real value out of the trial (PQL score {{ pql_score }}). One of our team would be "
        "glad to walk {{ company|default:'your team' }} through the rest — just reply to this email.</p>"
        + _FOOTER_HTML,
        "text_body": "Hi {{ first_name|default:'there' }},\n\nYou are getting real value out of the trial. One of "
        "our team would be glad to walk {{ company|default:'your team' }} through the rest — just reply."
        + _FOOTER_TEXT,
    },
    {
        "key": "day-12-expiry-warning",
        "name": "Day-12 expiry warning",
        "channel": "email",
        "trigger": "trial_ends_in",
        "trigger_number": 48,
        "condition": _stage("activate", "habit", "signal"),
        "priority": 20,
        "subject": "Your trial ends in {{ trial_hours_left }} hours",
        "html_body": "<p>Hi {{ first_name|default:'there' }},</p>"
        "<p>Your trial ends on {{ trial_ends_at|date:'l j F' }}. Keep everything you have built by choosing a "
        "plan before then.</p>" + _FOOTER_HTML,
        "text_body": "Hi {{ first_name|default:'there' }},\n\nYour trial ends on {{ trial_ends_at|date:'l j F' }}. "
        "Keep everything you have built by choosing a plan before then." + _FOOTER_TEXT,
    },
    {
        "key": "in-app-complete-activation",
        "name": "In-app: complete activation",
        "channel": "in_app",
        "trigger": "trial_day",
        "trigger_number": 1,
        "condition": _stage("trigger"),
        "priority": 50,
        "subject": "Finish setting up",
        "html_body": "<p>You are one step from {{ value_moment }}.</p>",
        "text_body": "You are one step from {{ value_moment }}.",
    },
]
