"""The loop's default configuration: the activation definition of the demo data set and the seeds' numbers
(activation in 72 hours, three high-intent actions in the first week, a 30-day win-back window) and fit rules
scoring free-mail and .edu addresses low. Plain data, read by the seeding migration and by trials.loop."""

from __future__ import annotations

from typing import Any

DEFINITION: dict[str, Any] = {
    "activation_event": "Project Created",
    "activation_count": 1,
    "activation_within_hours": 72,
    "activation_condition": {
        "type": "group",
        "operator": "and",
        "negate": False,
        "children": [{"type": "event", "event": "Teammate Invited", "operator": "at_least", "count": 1}],
    },
    "habit_events": ["Project Created", "Teammate Invited", "Report Generated", "Integration Connected"],
    "habit_threshold": 3,
    "habit_window_days": 7,
    "signup_event": "Signed Up",
    "trial_days": 14,
    "recover_window_days": 30,
}
FIT_RULES: tuple[dict[str, Any], ...] = (
    {"attribute": "employees", "operator": "between", "value": "11-1000", "points": 40, "label": "11–1000 employees"},
    {"attribute": "employees", "operator": "gte", "value": "1001", "points": 20, "label": "Over 1000 employees"},
    {
        "attribute": "industry",
        "operator": "one_of",
        "value": "SaaS, Fintech, E-commerce, Media",
        "points": 25,
        "label": "Target industry",
    },
    {
        "attribute": "role",
        "operator": "one_of",
        "value": "executive, engineering, product, data",
        "points": 25,
        "label": "Decision maker",
    },
    {"attribute": "email_domain", "operator": "free_mail", "value": "", "points": -40, "label": "Free-mail address"},
    {"attribute": "email_domain", "operator": "ends_with", "value": ".edu", "points": -40, "label": ".edu address"},
)
