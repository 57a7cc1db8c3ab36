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


def _trait(key: str, operator: str, value: Any) -> dict[str, Any]:
    """The customer's trait, else (when the customer has none) the account's: how the default rules read traits."""
    customer = {"type": "condition", "property": f"trait.{key}", "operator": operator, "value": value}
    account = {"type": "condition", "property": f"account.trait.{key}", "operator": operator, "value": value}
    unset = {"type": "condition", "property": f"trait.{key}", "operator": "is_not_set"}
    return {
        "type": "group",
        "operator": "or",
        "negate": False,
        "children": [customer, {"type": "group", "operator": "and", "negate": False, "children": [unset, account]}],
    }


def _all(*children: dict[str, Any]) -> dict[str, Any]:
    return {"type": "group", "operator": "and", "negate": False, "children": list(children)}


def _leaf(prop: str, operator: str, value: Any = None) -> dict[str, Any]:
    leaf = {"type": "condition", "property": prop, "operator": operator}
    return leaf if value is None else {**leaf, "value": value}


# The traits the default rules read, declared as custom properties (scope, key, type) so conditions may name them.
FIT_RULE_PROPERTIES: tuple[tuple[str, str, str], ...] = tuple(
    (scope, key, value_type)
    for key, value_type in (("employees", "number"), ("industry", "string"), ("role", "string"))
    for scope in ("customer", "account")
)
# Condition trees in the segment language (segments.conditions); the same rules trials.0017 converts the
# seeded mini-language rules into (text compared exactly: the written and lowercase forms are both listed).
FIT_RULES: tuple[dict[str, Any], ...] = (
    {
        "condition": _all(_trait("employees", "between", [11, 1000])),
        "points": 40,
        "label": "11–1000 employees",
    },
    {"condition": _all(_trait("employees", "gte", 1001)), "points": 20, "label": "Over 1000 employees"},
    {
        "condition": _all(
            _trait(
                "industry",
                "one_of",
                ["SaaS", "saas", "Fintech", "fintech", "E-commerce", "e-commerce", "Media", "media"],
            )
        ),
        "points": 25,
        "label": "Target industry",
    },
    {
        "condition": _all(_trait("role", "one_of", ["executive", "engineering", "product", "data"])),
        "points": 25,
        "label": "Decision maker",
    },
    {"condition": _all(_leaf("customer.free_mail", "is_true")), "points": -40, "label": "Free-mail address"},
    {
        "condition": _all(_leaf("customer.email_domain", "ends_with", ".edu")),
        "points": -40,
        "label": ".edu address",
    },
)
