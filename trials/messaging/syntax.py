"""The language of lifecycle message templates: which variables a template may use, checked when it is saved.

Templates are Django template language rendered in a sandbox (trials.messaging.sandbox: an engine that knows
only a few tags and filters, no loaders, autoescaping in the HTML body) over a fixed set of plain variables.
Every variable a template uses is checked when it is saved (:func:`template_errors` walks the parsed nodes), so
a typo is a form error, not a failed send; a text that reached the database some other way and uses anything
else fails its send with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.template import TemplateSyntaxError
from django.template.base import FilterExpression, Node, TextNode, Variable, VariableNode
from django.template.defaultfilters import register as default_filters
from django.template.defaulttags import CommentNode, IfNode

from audiences.models import ComputedTrait
from trials.messaging.sandbox import ALLOWED_FILTERS, ALLOWED_TAGS, EXPLAINING

#: The variables a template may use. `traits.<key>` reads a profile trait, `computed.<key>` a computed trait
#: (the key must exist); the others are plain values.
VARIABLES: dict[str, str] = {
    "first_name": "First name (trait first_name, else the first word of the name)",
    "name": "Full name",
    "email": "Email address",
    "company": "Company (trait company, else the account's name)",
    "value_moment": "What the product calls its value moment (trait value_moment, else the activation event)",
    "trial_day": "Day of the trial (1 on the first day)",
    "trial_days_left": "Whole days until the trial ends",
    "trial_hours_left": "Whole hours until the trial ends",
    "trial_ends_at": "When the trial ends",
    "trial_stage": "The trial's stage",
    "pql_score": "PQL score (0-100)",
    "fit_score": "Fit score (0-100)",
    "unsubscribe_url": "The signed one-click unsubscribe link",
    "traits": "traits.<key>: a profile trait",
    "computed": "computed.<key>: a computed trait (usage counts and the like)",
}
_NAMESPACES = {"traits", "computed"}

_FILTERS = {default_filters.filters[name]: name for name in ALLOWED_FILTERS}


def _expression_errors(expression: FilterExpression, computed_keys: set[str]) -> list[str]:
    errors: list[str] = []
    for func, _args in expression.filters:
        if func not in _FILTERS:
            errors.append(f"Filter {getattr(func, '__name__', func)!r} is not allowed.")
    var = expression.var
    if not isinstance(var, Variable) or var.lookups is None:
        return errors  # a literal
    head, rest = var.lookups[0], var.lookups[1:]
    if head not in VARIABLES:
        errors.append(f"Unknown variable {var.var!r}.")
    elif head in _NAMESPACES:
        if len(rest) != 1:
            errors.append(f"Use {head}.<key> (one key) — {var.var!r}.")
        elif head == "computed" and rest[0] not in computed_keys:
            errors.append(f"No computed trait with the key {rest[0]!r}.")
    elif rest:
        errors.append(f"{head!r} has no attributes — {var.var!r}.")
    return errors


def _condition_expressions(condition: Any) -> Iterable[FilterExpression]:
    """The filter expressions inside an {% if %} condition (a literal, or an operator over two sides)."""
    if condition is None:
        return
    value = getattr(condition, "value", None)
    if isinstance(value, FilterExpression):
        yield value
    for side in ("first", "second"):
        yield from _condition_expressions(getattr(condition, side, None))


def _node_errors(nodes: Iterable[Node], computed_keys: set[str]) -> list[str]:
    errors: list[str] = []
    for node in nodes:
        if isinstance(node, TextNode | CommentNode):
            continue
        if isinstance(node, VariableNode):
            errors += _expression_errors(node.filter_expression, computed_keys)
        elif isinstance(node, IfNode):
            for condition, nodelist in node.conditions_nodelists:
                for expression in _condition_expressions(condition):
                    errors += _expression_errors(expression, computed_keys)
                errors += _node_errors(nodelist, computed_keys)
        else:
            token = getattr(node, "token", None)
            name = token.split_contents()[0] if token is not None else type(node).__name__
            errors.append(f"The tag {name!r} is not allowed (only {', '.join(ALLOWED_TAGS)}).")
    return errors


def template_errors(source: str, *, computed_keys: set[str] | None = None) -> list[str]:
    """What is wrong with one template text: syntax, unknown variables, tags or filters (empty when fine)."""
    if computed_keys is None:
        computed_keys = set(ComputedTrait.objects.values_list("key", flat=True))
    try:
        template = EXPLAINING.from_string(source)
    except TemplateSyntaxError as exc:
        return [f"Syntax error: {exc}"]
    return _node_errors(template.nodelist, computed_keys)
