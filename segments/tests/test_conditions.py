"""The condition language: valid trees are accepted in canonical form, invalid ones named precisely."""

from __future__ import annotations

from typing import Any

import pytest

from segments.conditions import InvalidCondition, parse_tree, to_json
from segments.models import CustomProperty


def leaf(prop: str, operator: str, value: Any = None) -> dict[str, Any]:
    return {"type": "condition", "property": prop, "operator": operator, "value": value}


@pytest.mark.django_db
class TestValidTrees:
    def test_nested_groups_round_trip(self) -> None:
        tree = {
            "type": "group",
            "operator": "and",
            "children": [
                leaf("subscriber.mrr", "gt", 100),
                {
                    "type": "group",
                    "operator": "or",
                    "negate": True,
                    "children": [leaf("plan.interval", "equals", "year")],
                },
                {"type": "event", "event": "Project Created", "operator": "at_least", "count": 3, "within_days": 7},
            ],
        }
        parsed = to_json(parse_tree(tree))
        assert parsed["children"][0] == leaf("subscriber.mrr", "gt", 100.0)
        assert parsed["children"][1]["negate"] is True
        assert parsed["children"][2] == {
            "type": "event", "event": "Project Created", "operator": "at_least", "count": 3, "within_days": 7,
        }  # fmt: skip

    def test_a_bare_leaf_becomes_a_group(self) -> None:
        assert to_json(parse_tree(leaf("customer.is_test", "is_true")))["operator"] == "and"

    def test_declared_custom_properties_are_known(self) -> None:
        CustomProperty.objects.create(key="seats", value_type="number")
        assert to_json(parse_tree(leaf("trait.seats", "gte", 5)))["children"][0]["property"] == "trait.seats"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("tree", "message"),
    [
        (leaf("subscriber.nope", "equals", 1), "unknown property 'subscriber.nope'"),
        ({"type": "group", "operator": "or", "children": [leaf("customer.is_test", "is_true"), leaf("x.y", "equals", 1)]},
         "children[1]: unknown property 'x.y'"),
        (leaf("trait.undeclared", "equals", "x"), "unknown property 'trait.undeclared'"),
        (leaf("subscriber.mrr", "contains", "x"), "'contains' does not apply to subscriber.mrr (number)"),
        (leaf("subscriber.mrr", "gt", "lots"), "value must be a number"),
        (leaf("subscriber.mrr", "between", [10, 5]), "low ≤ high"),
        (leaf("subscriber.status", "equals", "sleeping"), "'sleeping' is not one of"),
        (leaf("customer.first_seen", "before", "yesterday"), "is not a date"),
        (leaf("customer.email", "matches_regex", "("), "invalid regular expression"),
        (leaf("customer.email", "one_of", []), "non-empty list"),
        ({"type": "group", "operator": "and", "children": []}, "a group needs at least one condition"),
        ({"type": "group", "operator": "xor", "children": [leaf("customer.is_test", "is_true")]}, "must be \"and\" or \"or\""),
        ({"type": "group", "operator": "and", "children": [{"type": "group", "operator": "or", "children": [{"type": "magic"}]}]},
         "children[0].children[0]: type must be"),
        ({"type": "event", "operator": "at_least", "count": 2}, "needs the event name"),
        ({"type": "event", "event": "X", "operator": "sometimes"}, "operator must be one of"),
        ({"type": "event", "event": "X", "operator": "at_least", "count": -1}, "count must be a whole number"),
        ({"type": "event", "event": "X", "operator": "at_least", "within_days": 7, "between": ["2026-01-01", "2026-02-01"]},
         "not both"),
        ("not a tree", "each node must be an object"),
        # Found by the fuzzer (config/tests/test_fuzz_api.py): PostgreSQL refused the NUL character with a 500.
        (leaf("customer.email", "equals", "a\x00b"), "NUL character"),
        ({"type": "event", "event": "X", "operator": "at_least", "count": 1,
          "where": [{"property": "plan\x00", "operator": "equals", "value": "team"}]}, "NUL character"),
    ],
)  # fmt: skip
def test_invalid_trees_name_the_problem(tree: Any, message: str) -> None:
    with pytest.raises(InvalidCondition) as caught:
        parse_tree(tree)
    assert message in str(caught.value)
