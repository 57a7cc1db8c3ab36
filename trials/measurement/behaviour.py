"""Converters vs churners: how much the trials that converted used the product against those that did not
(quartiles of core uses, days active and invites), computed with window functions in the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.utils import timezone

from trials.loop.lifecycle import activation_definition
from trials.measurement.scope import INVITE_EVENT, Filters, converted_case, cte, ended_trials, event_window, fetch


@dataclass(frozen=True)
class Distribution:
    """Nearest-rank quartiles of one measure in one group."""

    minimum: float
    q1: float
    median: float
    q3: float
    maximum: float
    mean: float


@dataclass(frozen=True)
class BehaviourGroup:
    label: str
    trials: int
    measures: dict[str, Distribution]


MEASURES = ("core_uses", "days_active", "invites")
MEASURE_LABELS = {"core_uses": "Core feature uses", "days_active": "Days active", "invites": "Invites"}


def converters_vs_churners(*, filters: Filters, now: datetime | None = None) -> list[BehaviourGroup]:
    """How converters and churners (ended unconverted) behaved during their trial: core feature uses (the
    definition's high-intent events), days with any event, and teammate invites — quartiles per group from one
    query (a per-trial aggregate, then row numbers over each measure within each group)."""
    now = now or timezone.now()
    definition = activation_definition()
    core = list(definition.habit_events or []) or [definition.activation_event]
    ended = ended_trials(filters, now).values("id", "customer_id", "started_at", "ends_at", conv=converted_case())
    base_sql, base_params = cte(ended)
    placeholders = ", ".join(["%s"] * len(core))
    window = event_window("e.timestamp", "b.started_at", "b.ends_at")
    day = "CAST(e.timestamp AS date)" if connection.vendor == "postgresql" else "date(e.timestamp)"
    quartiles = ", ".join(
        f"MIN({m}), MAX(CASE WHEN r_{m} = (n + 3) / 4 THEN {m} END), MAX(CASE WHEN r_{m} = (2 * n + 3) / 4 THEN {m} "
        f"END), MAX(CASE WHEN r_{m} = (3 * n + 3) / 4 THEN {m} END), MAX({m}), AVG({m} * 1.0)"
        for m in MEASURES
    )
    ranks = ", ".join(f"ROW_NUMBER() OVER (PARTITION BY conv ORDER BY {m}) AS r_{m}" for m in MEASURES)
    sql = f"""
        WITH base AS ({base_sql}),
        per_trial AS (
            SELECT b.id, b.conv,
                   SUM(CASE WHEN e.name IN ({placeholders}) THEN 1 ELSE 0 END) AS core_uses,
                   COUNT(DISTINCT {day}) AS days_active,
                   SUM(CASE WHEN e.name = %s THEN 1 ELSE 0 END) AS invites
            FROM base b LEFT JOIN audiences_event e ON e.customer_id = b.customer_id AND {window}
            GROUP BY b.id, b.conv
        ),
        ranked AS (
            SELECT conv, COALESCE(core_uses, 0) AS core_uses, days_active, COALESCE(invites, 0) AS invites, {ranks},
                   COUNT(*) OVER (PARTITION BY conv) AS n
            FROM per_trial
        )
        SELECT conv, n, {quartiles} FROM ranked GROUP BY conv, n ORDER BY conv DESC
    """
    groups = []
    for record in fetch(sql, (*base_params, *core, INVITE_EVENT)):  # at most two rows: converters, churners
        measures = {}
        for index, measure in enumerate(MEASURES):
            values = [float(value or 0) for value in record[2 + 6 * index : 8 + 6 * index]]
            measures[measure] = Distribution(*values)
        groups.append(BehaviourGroup("Converters" if record[0] else "Churners", int(record[1]), measures))
    return groups
