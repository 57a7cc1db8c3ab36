"""Each measurement report as one table (columns and rows of plain values) and one chart specification.

Why one shape: the page's accessible table, the CSV export and the API answer are the same rows, so the figures a
reader sees, downloads and fetches can never disagree; the chart (Chart.js, static/js/measurement.js) is drawn
from the same rows and the table stays as its textual fallback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from offers.selectors import REPORT_MAX_DAYS
from trials.loop.models import Trial
from trials.measurement.behaviour import MEASURE_LABELS, MEASURES, BehaviourGroup
from trials.measurement.cohorts import CohortReport, DiscoveryReport
from trials.measurement.retention import RetentionReport
from trials.measurement.scope import BENCHMARKS, WIN_BACK_GOOD
from trials.measurement.stats import Interval
from trials.measurement.uplift import UpliftRow


@dataclass(frozen=True)
class Table:
    """Columns as (key, label); rows as dicts by key; `summary` holds figures that are not rows."""

    columns: list[tuple[str, str]]
    rows: list[dict[str, Any]]
    chart: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)

    def display(self, key: str, value: Any) -> Any:
        """A cell as the page shows it: fractions as percentages (the CSV and API keep the fractions)."""
        if isinstance(value, float) and key in PERCENT_COLUMNS:
            return f"{value * 100:.1f}%"
        return value

    def as_json(self) -> dict[str, Any]:
        return {"columns": [key for key, _ in self.columns], "rows": self.rows, "summary": self.summary}


PERCENT_COLUMNS = frozenset(
    {
        "rate_in_trial", "rate_30d", "rate_30d_low", "rate_30d_high", "coverage", "share_of_converters",
        "doer_rate", "nondoer_rate", "difference", "difference_low", "difference_high", "treated_rate",
        "control_rate", "uplift", "uplift_low", "uplift_high", "relative", "relative_low", "relative_high",
    }
)  # fmt: skip


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _ci(interval: Interval, digits: int = 4) -> tuple[float | None, float | None]:
    return _r(interval.low, digits), _r(interval.high, digits)


BENCHMARK_MODELS: dict[str, str] = {Trial.Model.OPT_IN: "Opt-in", Trial.Model.OPT_OUT: "Opt-out"}
"""The benchmark lines' short model names (the chart's legend has no room for the models' full labels)."""


def cohort_table(report: CohortReport) -> Table:
    columns = [
        ("cohort", "Cohort"), ("group", "Group"), ("trials", "Trials"), ("converted_in_trial", "Converted in trial"),
        ("rate_in_trial", "In-trial rate"), ("converted_30d", "Converted ≤30 days after"), ("rate_30d", "30-day rate"),
        ("rate_30d_low", "30-day rate, 95% low"), ("rate_30d_high", "30-day rate, 95% high"),
        ("maturity", "Maturity"),
    ]  # fmt: skip
    rows: list[dict[str, Any]] = []
    for row in report.rows:
        low, high = _ci(row.rate_30d_ci)
        rows.append(
            {
                "cohort": row.cohort.isoformat(),
                "group": row.group,
                "trials": row.trials,
                "converted_in_trial": row.converted_in_trial,
                "rate_in_trial": _r(row.rate_in_trial),
                "converted_30d": row.converted_30d,
                "rate_30d": _r(row.rate_30d),
                "rate_30d_low": low,
                "rate_30d_high": high,
                "maturity": "mature" if row.mature else ("30 days not over" if row.window_closed else "in trial"),
            }
        )
    labels = sorted({row["cohort"] for row in rows})
    datasets: list[dict[str, Any]] = []
    for group in report.groups:
        by_cohort = {row["cohort"]: row for row in rows if row["group"] == group}
        datasets.append(
            {
                "label": f"{group} (30-day)",
                "data": [
                    None if label not in by_cohort or by_cohort[label]["rate_30d"] is None
                    else round(by_cohort[label]["rate_30d"] * 100, 1)
                    for label in labels
                ],
                "immature": [label in by_cohort and by_cohort[label]["maturity"] != "mature" for label in labels],
            }
        )  # fmt: skip
    for model, figures in BENCHMARKS.items():
        for name, value in figures.items():
            label = f"{BENCHMARK_MODELS[model]} {name.replace('_', ' ')} {value:.0%}"
            datasets.append({"label": label, "data": [value * 100] * len(labels), "benchmark": True})
    return Table(
        columns,
        rows,
        {"kind": "line", "labels": labels, "datasets": datasets, "y": "% converted"},
        {"benchmarks": BENCHMARKS, "period": report.period, "split": report.split},
    )


def discovery_table(report: DiscoveryReport) -> Table:
    columns = [
        ("rank", "Rank"), ("event", "Event"), ("threshold", "At least N times"), ("doers", "Trials that did it"),
        ("coverage", "Coverage"), ("share_of_converters", "Share of converters"), ("doer_rate", "Doers' conversion"),
        ("nondoer_rate", "Non-doers' conversion"), ("lift", "Lift (×)"), ("lift_low", "Lift 95% low"),
        ("lift_high", "Lift 95% high"), ("difference", "Difference"), ("difference_low", "Difference 95% low"),
        ("difference_high", "Difference 95% high"), ("verdict", "Verdict"), ("current", "Current definition"),
    ]  # fmt: skip
    rows: list[dict[str, Any]] = []
    for rank, row in enumerate(report.rows, start=1):
        c = row.comparison
        lift_low, lift_high = _ci(c.ratio_ci, 3)
        diff_low, diff_high = _ci(c.difference_ci)
        rows.append(
            {
                "rank": rank, "event": row.event, "threshold": row.threshold, "doers": row.doers,
                "coverage": _r(row.coverage), "share_of_converters": _r(row.share_of_converters),
                "doer_rate": _r(c.rate_a), "nondoer_rate": _r(c.rate_b), "lift": _r(c.ratio, 3),
                "lift_low": lift_low, "lift_high": lift_high, "difference": _r(c.difference),
                "difference_low": diff_low, "difference_high": diff_high, "verdict": str(c.verdict),
                "current": row.is_current,
            }
        )  # fmt: skip
    top = rows[:15]
    return Table(
        columns,
        rows,
        {
            "kind": "bar",
            "labels": [f"{row['event']} ≥{row['threshold']}" for row in top],
            "datasets": [
                {"label": "Doers' conversion %", "data": [_pct(row["doer_rate"]) for row in top]},
                {"label": "Non-doers' conversion %", "data": [_pct(row["nondoer_rate"]) for row in top]},
            ],
            "y": "% converted",
        },
        {"days": report.days, "ended_trials": report.ended_trials, "converters": report.converters},
    )


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


def behaviour_table(groups: list[BehaviourGroup]) -> Table:
    columns = [
        ("group", "Group"), ("trials", "Trials"), ("measure", "Measure"), ("minimum", "Min"), ("q1", "25th pct"),
        ("median", "Median"), ("q3", "75th pct"), ("maximum", "Max"), ("mean", "Mean"),
    ]  # fmt: skip
    rows = [
        {
            "group": group.label, "trials": group.trials, "measure": MEASURE_LABELS[measure],
            "minimum": d.minimum, "q1": d.q1, "median": d.median, "q3": d.q3, "maximum": d.maximum,
            "mean": round(d.mean, 2),
        }
        for group in groups
        for measure, d in ((m, group.measures[m]) for m in MEASURES)
    ]  # fmt: skip
    return Table(
        columns,
        rows,
        {
            "kind": "bar",
            "labels": [MEASURE_LABELS[m] for m in MEASURES],
            "datasets": [
                {"label": f"{group.label} (median)", "data": [group.measures[m].median for m in MEASURES]}
                for group in groups
            ],
            "y": "median per trial",
        },
    )


def uplift_table(rows: list[UpliftRow], unmeasurable: list[str]) -> Table:
    columns = [
        ("kind", "Kind"), ("key", "Key"), ("name", "Name"), ("holdout_percent", "Holdout %"),
        ("treated", "Treatment"), ("treated_converted", "Treatment converted"), ("treated_rate", "Treatment rate"),
        ("control", "Control"), ("control_converted", "Control converted"), ("control_rate", "Control rate"),
        ("uplift", "Absolute uplift"), ("uplift_low", "Absolute 95% low"), ("uplift_high", "Absolute 95% high"),
        ("relative", "Relative uplift"), ("relative_low", "Relative 95% low"), ("relative_high", "Relative 95% high"),
        ("verdict", "Verdict"), ("explanation", "In plain words"),
    ]  # fmt: skip
    table_rows: list[dict[str, Any]] = []
    for row in rows:
        c = row.comparison
        low, high = _ci(c.difference_ci)
        rel_low, rel_high = _ci(c.relative_ci)
        table_rows.append(
            {
                "kind": row.kind, "key": row.key, "name": row.name, "holdout_percent": row.holdout_percent,
                "treated": c.trials_a, "treated_converted": c.successes_a, "treated_rate": _r(c.rate_a),
                "control": c.trials_b, "control_converted": c.successes_b, "control_rate": _r(c.rate_b),
                "uplift": _r(c.difference), "uplift_low": low, "uplift_high": high, "relative": _r(c.relative),
                "relative_low": rel_low, "relative_high": rel_high, "verdict": str(c.verdict),
                "explanation": c.sentence,
            }
        )  # fmt: skip
    return Table(
        columns,
        table_rows,
        {
            "kind": "bar",
            "labels": [row["name"] for row in table_rows],
            "datasets": [
                {"label": "Treatment conversion %", "data": [_pct(row["treated_rate"]) for row in table_rows]},
                {"label": "Control (holdout) conversion %", "data": [_pct(row["control_rate"]) for row in table_rows]},
            ],
            "y": "% converted",
        },
        {"without_holdout": unmeasurable},
    )


def retention_table(report: RetentionReport) -> Table:
    offers = report.offers
    low, high = _ci(report.recovery_ci)
    d = report.days_to_convert
    offers_since, offers_until = report.offers_period
    figures = [
        ("offers_since", f"Offers: first day counted (at most {REPORT_MAX_DAYS} days)", offers_since.isoformat()),
        ("offers_until", "Offers: last day counted", offers_until.isoformat()),
        ("save_rate", "Offers: save rate (saved ÷ saved + canceled)", _r(offers["save_rate"])),
        ("saved", "Offers: cancellations saved", offers["saved"]),
        ("mrr_saved_cents", "Offers: MRR saved (cents)", offers["mrr_saved_cents"]),
        ("still_saved_rate", "Offers: still saved after 30 days", _r(offers["still_saved_rate"])),
        ("win_back_session_recovery_rate", "Win-back sessions: recovery rate", _r(offers["win_back_recovery_rate"])),
        ("lapsed_trials", "Lapsed trials (ended unconverted, 30 days over)", report.lapsed),
        ("recovered_trials", "Recovered within 30 days", report.recovered),
        ("recovery_rate", "Win-back recovery rate (benchmark 8–14%)", _r(report.recovery_rate)),
        ("recovery_rate_low", "Recovery rate 95% low", low),
        ("recovery_rate_high", "Recovery rate 95% high", high),
        ("converted_trials", "Converted trials", report.converted),
        ("days_to_convert_median", "Days to convert: median", d.median if d else None),
        ("days_to_convert_q1", "Days to convert: 25th percentile", d.q1 if d else None),
        ("days_to_convert_q3", "Days to convert: 75th percentile", d.q3 if d else None),
    ]
    rows = [{"metric": key, "label": label, "value": value} for key, label, value in figures]
    rate = report.recovery_rate
    return Table(
        [("metric", "Metric"), ("label", "Description"), ("value", "Value")],
        rows,
        {
            "kind": "bar",
            "labels": ["Offers' save rate", "Win-back recovery", "Benchmark low", "Benchmark high"],
            "datasets": [
                {
                    "label": "%",
                    "data": [_pct(offers["save_rate"]), _pct(rate), WIN_BACK_GOOD[0] * 100, WIN_BACK_GOOD[1] * 100],
                }
            ],
            "y": "%",
        },
        {"recovery_verdict": report.recovery_verdict},
    )
