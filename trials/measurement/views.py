"""Staff pages of the Measurement section: one page per report (chart, table, CSV export) and the one-click
"make this the activation event"."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.views import View
from django.views.generic import TemplateView

from config.permissions import StaffPermissionMixin
from offers.exports import csv_lines
from trials.loop.lifecycle import activation_definition
from trials.loop.settings import activation_definition_update
from trials.measurement.behaviour import converters_vs_churners
from trials.measurement.cohorts import activation_discovery, conversion_cohorts
from trials.measurement.forms import MakeActivationForm, MeasurementFilterForm
from trials.measurement.retention import retention_report
from trials.measurement.tables import (
    Table,
    behaviour_table,
    cohort_table,
    discovery_table,
    retention_table,
    uplift_table,
)
from trials.measurement.uplift import experiments_without_holdout, uplift_report


@dataclass(frozen=True)
class Report:
    """A report as the pages, CSV and API know it: who may read it, which filters apply, how it is built."""

    slug: str
    title: str
    url_name: str
    permissions: tuple[str, ...]
    fields: tuple[str, ...]
    intro: str
    build: Callable[[MeasurementFilterForm, datetime, Any], Table]


COMMON = ("since", "until", "model", "source", "plan", "segment")
REPORTS: dict[str, Report] = {
    report.slug: report
    for report in (
        Report(
            "cohorts",
            "Conversion by cohort",
            "measurement-cohorts",
            ("trials.view_trial",),
            (*COMMON, "period", "split"),
            "Trials by signup week or month: converted within the trial window and within 30 days after, against "
            "the public benchmarks (opt-in median 17%, top quartile 25%; opt-out median 60%). Cohorts whose trials "
            "are still running, or whose 30 days are not over, are marked immature: their rates can still rise.",
            lambda form, now, user: cohort_table(
                conversion_cohorts(
                    filters=form.filters(segment_splits=True),
                    period=form.chosen_period,
                    split=form.chosen_split,
                    split_segment=form.split_segment,
                    now=now,
                )
            ),
        ),
        Report(
            "activation",
            "Activation-event discovery",
            "measurement-activation",
            ("trials.view_trial", "trials.view_activationdefinition"),
            (*COMMON, "days"),
            "For every event and threshold, among ended trials: conversion of trials that did it at least N times "
            "in their first D days against those that did not, the lift with its 95% interval, the share of "
            "converters who did it and how many trials it covers. Ranked by the lift's lower bound.",
            lambda form, now, user: discovery_table(
                activation_discovery(filters=form.filters(), days=form.chosen_days, now=now)
            ),
        ),
        Report(
            "behaviour",
            "Converters vs churners",
            "measurement-behaviour",
            ("trials.view_trial",),
            COMMON,
            "What ended trials did during the trial: core feature uses (the definition's high-intent events), days "
            "with any activity and teammate invites — quartiles for converters and for churners.",
            lambda form, now, user: behaviour_table(converters_vs_churners(filters=form.filters(), now=now)),
        ),
        Report(
            "uplift",
            "Holdout uplift",
            "measurement-uplift",
            ("trials.view_trial", "trials.view_messagesend"),
            COMMON,
            "Per lifecycle message (and per sales-assist play): customers it reached against its holdout (control "
            "group), converted within 30 days of the decision; absolute and relative uplift with 95% intervals "
            "and a plain verdict. The date range applies to the decision.",
            lambda form, now, user: uplift_table(
                uplift_report(filters=form.filters(), now=now, plays=user.has_perm("trials.view_play")),
                experiments_without_holdout(plays=user.has_perm("trials.view_play")),
            ),
        ),
        Report(
            "retention",
            "Retention and recovery",
            "measurement-retention",
            ("trials.view_trial", "offers.view_cancellationsession"),
            COMMON,
            "Offers' save rate and MRR saved (from the retention reports), the share of lapsed trials recovered "
            "within 30 days against the seeds' 8–14%, and how long trials take to convert.",
            lambda form, now, user: retention_table(retention_report(filters=form.filters(), now=now)),
        ),
    )
}


def table_csv(table: Table, filename: str) -> HttpResponse:
    """The table as a CSV download: the header row is the column labels, values as the API gives them — written
    by the offers exports' `csv_lines`, so an event or template name that looks like a formula cannot run as one."""
    rows = ([row[key] for key, _ in table.columns] for row in table.rows)
    response = HttpResponse(
        csv_lines([label for _, label in table.columns], rows), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class MeasurementReportView(StaffPermissionMixin, TemplateView):
    """One report page; `?format=csv` downloads the same rows. Bad filters are form errors, answered with 400 on
    the page as in the CSV and the API."""

    template_name = "trials/measurement/report.html"
    report: Report = REPORTS["cohorts"]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        self.required_permissions = self.report.permissions
        return super().dispatch(request, *args, **kwargs)

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        form = MeasurementFilterForm(request.GET)
        valid = form.is_valid()
        if request.GET.get("format") == "csv":
            if not valid:
                return HttpResponse(form.errors.as_text(), status=400, content_type="text/plain; charset=utf-8")
            return table_csv(self.report.build(form, timezone.now(), request.user), f"{self.report.slug}.csv")
        table = self.report.build(form, timezone.now(), request.user) if valid else None
        return self.render_to_response(self.get_context_data(form=form, table=table), status=200 if valid else 400)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        table: Table | None = kwargs.get("table")
        user = self.request.user
        query = self.request.GET.copy()
        query["format"] = "csv"
        return {
            **super().get_context_data(**kwargs),
            "report": self.report,
            "reports": [r for r in REPORTS.values() if user.has_perms(r.permissions)],
            "fields": [kwargs["form"][name] for name in self.report.fields],
            "chart": table.chart if table else None,
            "csv_url": f"?{query.urlencode()}",
            "headers": [label for _, label in table.columns] if table else [],
            "records": [([table.display(key, row[key]) for key, _ in table.columns], row) for row in table.rows]
            if table
            else [],
            "summary": table.summary if table else {},
            "can_make_activation": user.has_perm("trials.change_activationdefinition"),
            # Only the discovery page names the current definition.
            "definition": activation_definition() if self.report.slug == "activation" else None,
        }


def report_view(slug: str) -> Callable[..., HttpResponseBase]:
    return MeasurementReportView.as_view(report=REPORTS[slug])


class MakeActivationView(StaffPermissionMixin, View):
    """POST: make a discovered event (at least N times within D days) the activation event. Saved through the
    same service as the settings page, which marks open trials due so the sweep re-derives them."""

    required_permissions = ("trials.change_activationdefinition",)

    def post(self, request: HttpRequest) -> HttpResponse:
        form = MakeActivationForm(request.POST)
        if not form.is_valid():
            messages.error(request, f"Not changed: {form.errors.as_text()}")
            return HttpResponseRedirect(reverse("measurement-activation"))
        data = form.cleaned_data
        activation_definition_update(
            data={
                "activation_event": data["event"],
                "activation_count": data["count"],
                "activation_within_hours": data["days"] * 24,
            }
        )
        messages.success(
            request,
            f"Activation is now “{data['event']}” at least {data['count']} time(s) within {data['days']} days; open "
            "trials are re-derived by the next sweep.",
        )
        return HttpResponseRedirect(reverse("measurement-activation"))
