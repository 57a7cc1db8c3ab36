"""CSV exports of the retention report's tables and of the cancellation sessions list.

Every cell goes through `csv_cell`: a value a spreadsheet would run as a formula (it starts with `=`, `+`, `-`,
`@`, a tab or a carriage return — a customer's feedback, a reason label) is prefixed with `'`, so opening an
export cannot execute what a customer typed. Sessions are written row by row from a server-side cursor, so an
export of many sessions streams in constant memory.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from django.utils import timezone

from offers.models import CancellationSession

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """The value as a spreadsheet may safely show it (text that looks like a formula is quoted)."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _Echo:
    """A file-like object whose write returns the line, for csv.writer under a streaming response."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """The CSV text, one line at a time (header first)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(list(header))
    for row in rows:
        yield writer.writerow([csv_cell(value) for value in row])


BREAKDOWN = ["sessions", "offered", "accepted", "acceptance_rate", "saved", "canceled", "save_rate", "mrr_saved_cents"]

REPORT_TABLES: dict[str, list[tuple[str, str]]] = {
    "by_offer": [
        ("offer_id", "offered_offer_id"),
        ("offer", "offered_offer__name"),
        ("kind", "offered_offer__kind"),
        ("presented", "presented"),
        ("accepted", "accepted"),
        ("acceptance_rate", "acceptance_rate"),
        ("mrr_kept_cents", "mrr_cents"),
    ],
    "by_reason": [
        ("reason_id", "reason_id"),
        ("reason", "reason__label"),
        ("sessions", "sessions"),
        ("offered", "offered"),
        ("accepted", "accepted"),
        ("acceptance_rate", "acceptance_rate"),
        ("saved", "saved"),
        ("canceled", "canceled"),
        ("save_rate", "save_rate"),
    ],
    "by_plan": [
        ("plan_id", "id"),
        ("plan", "name"),
        *[(name, name) for name in BREAKDOWN],
    ],
    "by_segment": [
        ("segment_id", "id"),
        ("segment", "name"),
        *[(name, name) for name in BREAKDOWN],
    ],
}
"""The report tables one can export: CSV column → key of the report row."""

TOTALS = [
    "sessions", "saved", "canceled", "deflected", "incomplete", "save_rate", "mrr_saved_cents", "saves_30d_old",
    "still_saved_30d", "mrr_still_saved_30d_cents", "still_saved_rate", "win_back_sessions", "win_back_recovered",
    "win_back_mrr_cents", "win_back_recovery_rate",
]  # fmt: skip
DAILY = ["day", "saved", "canceled", "deflected", "incomplete", "recovered"]
EXPORTABLE = ("totals", *REPORT_TABLES, "daily")


def report_table_csv(report: dict[str, Any], table: str) -> Iterator[str]:
    """One table of a `cancellation_report` as CSV lines: `totals` (one row, with the period), a breakdown,
    or `daily`. KeyError for an unknown table."""
    if table == "totals":
        header = ["since", "until", *TOTALS]
        # Local calendar days, as the daily rows are.
        period = [timezone.localdate(report[end]).isoformat() for end in ("since", "until")]
        row = [*period, *(report[k] for k in TOTALS)]
        return csv_lines(header, [row])
    if table == "daily":
        return csv_lines(
            DAILY, ([bucket.day.isoformat(), *(getattr(bucket, k) for k in DAILY[1:])] for bucket in report["daily"])
        )
    columns = REPORT_TABLES[table]
    return csv_lines([name for name, _ in columns], ([row[key] for _, key in columns] for row in report[table]))


SESSION_COLUMNS = [
    "token", "kind", "started_at", "customer_user_id", "customer_email", "plan", "flow", "reason",
    "stripe_feedback", "feedback", "offered_offer", "accepted_offer", "outcome", "outcome_at", "mrr_cents",
    "is_test", "offer_simulated", "recovered_subscription_id",
]  # fmt: skip


def _session_row(session: CancellationSession) -> list[Any]:
    return [
        session.token,
        session.kind,
        session.created_at.isoformat(),
        session.customer.user_id,
        session.customer.email,
        session.subscription.plan.name,
        session.flow.name,
        session.reason.label if session.reason else None,
        session.reason.stripe_feedback if session.reason else None,
        session.feedback,
        session.offered_offer.name if session.offered_offer else None,
        session.accepted_offer.name if session.accepted_offer else None,
        session.outcome,
        session.outcome_at.isoformat() if session.outcome_at else None,
        session.mrr_cents,
        session.is_test,
        session.offer_simulated,
        session.recovered_subscription_id,
    ]


def sessions_csv(sessions: Iterable[CancellationSession]) -> Iterator[str]:
    """The sessions as CSV lines (pass a queryset with its relations joined, iterated in chunks)."""
    return csv_lines(SESSION_COLUMNS, (_session_row(session) for session in sessions))
