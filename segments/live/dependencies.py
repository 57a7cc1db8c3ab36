"""What a condition tree reads — events by name, profile traits, billing rows, computed traits, time — so that
after a batch only the live audiences (and plays) whose result it could have changed are re-decided, for only the
customers it touched (audiences.pipeline.BatchFacts.candidates)."""

from __future__ import annotations

from dataclasses import dataclass

from segments.conditions import Condition, EventCondition, Group, Node, SegmentCondition

TIME_OPERATORS = {"within_last_days", "within_next_days", "more_than_days_ago"}
BILLING_PREFIXES = ("subscriber.", "subscription.", "plan.", "product.", "addon.")


@dataclass(frozen=True)
class Dependencies:
    """What can change a tree's result: events by name, profile traits, billing rows, computed traits, time."""

    events: frozenset[str] = frozenset()
    profile: bool = False
    billing: bool = False
    computed: frozenset[str] = frozenset()
    time_based: bool = False  # time alone changes it, other than through event windows (swept every minute)
    references: frozenset[int] = frozenset()  # segments it reads, directly or through others
    windows: tuple[EventCondition, ...] = ()  # "performed … in the last N days" leaves: their edges are timers


def dependencies(tree: Node) -> Dependencies:
    """Walk a parsed tree (other segments' trees included) for what it reads."""
    events: set[str] = set()
    computed: set[str] = set()
    references: set[int] = set()
    windows: list[EventCondition] = []
    flags = {"profile": False, "billing": False, "time_based": False}

    def walk(node: Node) -> None:
        if isinstance(node, Group):
            for child in node.children:
                walk(child)
        elif isinstance(node, SegmentCondition):
            references.add(node.segment_id)
            if node.tree is not None:
                walk(node.tree)
        elif isinstance(node, EventCondition):
            events.add(node.event)
            if node.within_days is not None and node not in windows:
                windows.append(node)
        elif isinstance(node, Condition):
            spec = node.spec
            flags["time_based"] |= node.operator in TIME_OPERATORS or (spec is not None and spec.derived != "")
            if node.property.startswith("computed."):
                computed.add(node.property.removeprefix("computed."))
            elif node.property.startswith(BILLING_PREFIXES):
                flags["billing"] = True
            else:
                flags["profile"] = True

    walk(tree)
    return Dependencies(
        frozenset(events),
        flags["profile"],
        flags["billing"],
        frozenset(computed),
        flags["time_based"],
        frozenset(references),
        tuple(windows),
    )
