"""Staff pages for offers: offers, reasons and flows, the ordered rules, and sessions with their outcomes."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views import View
from django.views.generic import TemplateView

from config.pagination import paginate_for_ui
from config.permissions import StaffPermissionMixin
from offers import configuration, selectors
from offers.exports import EXPORTABLE, report_table_csv, sessions_csv
from offers.forms import FlowForm, FlowRuleForm, OfferForm, OfferRuleForm, ReasonForm, ReportFilterForm
from offers.models import CancellationFlow, CancellationReason, CancellationSession, FlowRule, Offer, OfferRule


class OfferListView(StaffPermissionMixin, TemplateView):
    """Offers, reasons and flows on one page: they are few, and read together."""

    template_name = "offers/offer_list.html"
    required_permissions = ("offers.view_offer",)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {
            **super().get_context_data(**kwargs),
            "offers": selectors.offer_list(),
            "reasons": CancellationReason.objects.order_by("position", "pk"),
            "flows": selectors.flow_list(),
        }


class RuleListView(StaffPermissionMixin, TemplateView):
    """Flow rules and offer rules in the order they are tried (the first match wins)."""

    template_name = "offers/rule_list.html"
    required_permissions = ("offers.view_offerrule",)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {
            **super().get_context_data(**kwargs),
            "flow_rules": selectors.flow_rule_list(),
            "offer_rules": selectors.offer_rule_list(),
        }


REPORT_PERIODS = (7, 30, 90, 365)

CHART_SERIES = (
    ("saved", "#12b76a", "Saved"),
    ("recovered", "#2e90fa", "Recovered (win-back)"),
    ("deflected", "#fdb022", "Deflected"),
    ("incomplete", "#98a2b3", "Incomplete"),
    ("canceled", "#f04438", "Canceled"),
)


@dataclass(frozen=True)
class ChartBar:
    """One coloured piece of a day's stacked bar, in SVG user units."""

    x: float
    y: float
    width: float
    height: float
    color: str
    title: str


def report_chart(daily: list[selectors.DayBucket], *, width: int = 720, height: int = 180) -> dict[str, Any]:
    """The geometry of the daily chart — one stacked bar per day, sessions by outcome — drawn by the template
    as inline SVG: no JavaScript and nothing fetched from elsewhere, so the page works offline and in tests."""
    peak = max((bucket.total for bucket in daily), default=0) or 1
    slot = width / max(len(daily), 1)
    bar_width = max(slot * 0.8, 1.0)
    bars: list[ChartBar] = []
    for index, bucket in enumerate(daily):
        bottom = float(height)
        for field, color, label in CHART_SERIES:
            count = getattr(bucket, field)
            if not count:
                continue
            piece = count / peak * height
            bottom -= piece
            title = f"{bucket.day.isoformat()}: {count} {label.lower()}"
            bars.append(
                ChartBar(round(index * slot, 2), round(bottom, 2), round(bar_width, 2), round(piece, 2), color, title)
            )
    return {"width": width, "height": height, "peak": peak, "bars": bars, "series": CHART_SERIES}


def _filter_form(request: HttpRequest) -> ReportFilterForm:
    """The report filters from the query string (the page's checkbox `test=1` is `include_test`)."""
    data = request.GET.copy()
    if data.get("test") == "1":
        data["include_test"] = "on"
    return ReportFilterForm(data)


class ReportView(StaffPermissionMixin, TemplateView):
    """Retention → Reports: the figures of `cancellation_report` for the chosen filters, with a daily chart,
    the breakdowns by offer, reason, plan and segment, and a CSV export of each table. Bad filters are shown as
    form errors (400) above the default report."""

    template_name = "offers/report.html"
    required_permissions = ("offers.view_cancellationsession",)

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        form = _filter_form(request)
        valid = form.is_valid()
        filters = form.filters() if valid else selectors.ReportFilters()
        report = selectors.cancellation_report(filters=filters)
        context = {
            **self.get_context_data(**kwargs),
            "form": form,
            "report": report,
            "chart": report_chart(report["daily"]),
            "periods": REPORT_PERIODS,
            "include_test": filters.include_test,
            "query": request.GET.urlencode(),
            "tables": [("totals", "Totals"), ("by_offer", "By offer"), ("by_reason", "By reason"),
                       ("by_plan", "By plan"), ("by_segment", "By segment"), ("daily", "Per day")],
        }  # fmt: skip
        return self.render_to_response(context, status=200 if valid else 400)


def _csv_response(lines: Any, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _form_error_text(form: ReportFilterForm) -> HttpResponse:
    text = "; ".join(f"{field}: {' '.join(str(error) for error in errors)}" for field, errors in form.errors.items())
    return HttpResponse(f"Invalid filters: {text}", status=400, content_type="text/plain; charset=utf-8")


class ReportExportView(StaffPermissionMixin, View):
    """One table of the report as CSV (`totals`, `by_offer`, `by_reason`, `by_plan`, `by_segment`, `daily`),
    under the same filters as the page."""

    required_permissions = ("offers.view_cancellationsession",)

    def get(self, request: HttpRequest, table: str) -> HttpResponseBase:
        if table not in EXPORTABLE:
            raise Http404("No such report table.")
        form = _filter_form(request)
        if not form.is_valid():
            return _form_error_text(form)
        report = selectors.cancellation_report(filters=form.filters())
        return _csv_response(report_table_csv(report, table), f"retention-{table}.csv")


class SessionExportView(StaffPermissionMixin, View):
    """The sessions list as CSV, filtered like the list (outcome, period, flow, offer, plan, test sessions)."""

    required_permissions = ("offers.view_cancellationsession",)

    def get(self, request: HttpRequest) -> HttpResponseBase:
        form = _filter_form(request)
        if not form.is_valid():
            return _form_error_text(form)
        outcome = request.GET.get("outcome", "")
        if outcome and outcome not in CancellationSession.Outcome.values:
            return HttpResponse(f"Invalid filters: outcome: unknown {outcome!r}.", status=400)
        filters = replace(form.filters(), days=form.cleaned_data.get("days"))
        sessions = selectors.session_list(outcome=outcome, filters=filters).iterator(chunk_size=500)
        return _csv_response(sessions_csv(sessions), "cancellation-sessions.csv")


class SessionListView(StaffPermissionMixin, TemplateView):
    """Cancellation sessions newest first, filterable by outcome, period, flow, offer and plan, with the save
    report on top and a CSV export of what is listed."""

    template_name = "offers/session_list.html"
    required_permissions = ("offers.view_cancellationsession",)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        outcome = self.request.GET.get("outcome", "")
        if outcome not in CancellationSession.Outcome.values:
            outcome = ""
        form = _filter_form(self.request)
        filters = (
            replace(form.filters(), days=form.cleaned_data.get("days"))
            if form.is_valid()
            else selectors.ReportFilters(days=None)
        )
        page = paginate_for_ui(self.request, selectors.session_list(outcome=outcome, filters=filters))
        return {
            **super().get_context_data(**kwargs),
            "page": page,
            "form": form,
            "report": selectors.session_report(include_test=filters.include_test),
            "outcomes": CancellationSession.Outcome.choices,
            "selected_outcome": outcome,
            "include_test": filters.include_test,
            "query": self.request.GET.urlencode(),
        }


# --- Editing -------------------------------------------------------------------------------------------------


class EditView(StaffPermissionMixin, TemplateView):
    """Create (no pk) or edit (pk) one object through a form; `add_*` or `change_*` permission accordingly."""

    template_name = "offers/form.html"
    model: type[models.Model]
    title = ""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        action = "change" if "pk" in kwargs else "add"
        self.required_permissions = (f"offers.{action}_{self.model._meta.model_name}",)
        return super().dispatch(request, *args, **kwargs)

    def instance(self) -> Any:
        return get_object_or_404(self.model, pk=self.kwargs["pk"]) if "pk" in self.kwargs else None

    def make_form(self, data: Any, instance: Any) -> forms.BaseForm:
        raise NotImplementedError

    def save(self, form: Any, instance: Any) -> Any:
        raise NotImplementedError

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        instance = self.instance()
        form = kwargs.pop("form", None) or self.make_form(None, instance)
        title = f"Edit {instance}" if instance is not None else f"New {self.title}"
        return {**super().get_context_data(**kwargs), "form": form, "title": title, "instance": instance}

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        instance = self.instance()
        form = self.make_form(request.POST, instance)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        saved = self.save(form, instance)
        messages.success(request, f"Saved {saved}.")
        return HttpResponseRedirect(self.success_url())

    def success_url(self) -> str:
        return reverse("offers:offer-list")


class OfferEditView(EditView):
    model = Offer
    title = "offer"

    def make_form(self, data: Any, instance: Offer | None) -> forms.BaseForm:
        initial: dict[str, Any] = {}
        if instance is not None:
            initial = {
                "name": instance.name, "kind": instance.kind, "parameters": json.dumps(instance.parameters),
                "headline": instance.headline, "body": instance.body, "is_active": instance.is_active,
                "tags": ", ".join(instance.tags.values_list("name", flat=True)),
            }  # fmt: skip
        return OfferForm(data, initial=initial, offer=instance)

    def save(self, form: Any, instance: Offer | None) -> Offer:
        return configuration.offer_save(offer=instance, **form.cleaned_data)


class ReasonEditView(EditView):
    model = CancellationReason
    title = "cancellation reason"

    def make_form(self, data: Any, instance: CancellationReason | None) -> forms.BaseForm:
        return ReasonForm(data, instance=instance)

    def save(self, form: Any, instance: CancellationReason | None) -> CancellationReason:
        reason: CancellationReason = form.save()  # plain fields, nothing to decide: the form saves them
        return reason


class FlowEditView(EditView):
    model = CancellationFlow
    title = "cancellation flow"

    def make_form(self, data: Any, instance: CancellationFlow | None) -> forms.BaseForm:
        return FlowForm(data, instance=instance)

    def save(self, form: Any, instance: CancellationFlow | None) -> CancellationFlow:
        flow: CancellationFlow = form.save()  # plain fields and the reasons: the form saves them
        return flow


class OfferRuleEditView(EditView):
    model = OfferRule
    title = "offer rule"

    def make_form(self, data: Any, instance: OfferRule | None) -> forms.BaseForm:
        initial: dict[str, Any] = {}
        if instance is not None:
            initial = {
                "name": instance.name, "applies_to": instance.applies_to, "segments": list(instance.segments.all()),
                "reasons": list(instance.reasons.all()), "no_offer": instance.no_offer,
                "allow_repeat": instance.allow_repeat, "repeat_window_days": instance.repeat_window_days,
                "is_active": instance.is_active, "is_draft": instance.is_draft,
            }  # fmt: skip
        return OfferRuleForm(data, initial=initial, rule=instance)

    def save(self, form: Any, instance: OfferRule | None) -> OfferRule:
        return configuration.offer_rule_save_cleaned(rule=instance, data=form.cleaned_data)

    def success_url(self) -> str:
        return reverse("offers:rule-list")


class FlowRuleEditView(EditView):
    model = FlowRule
    title = "flow rule"

    def make_form(self, data: Any, instance: FlowRule | None) -> forms.BaseForm:
        return FlowRuleForm(data, instance=instance)

    def save(self, form: Any, instance: FlowRule | None) -> FlowRule:
        return configuration.flow_rule_save_cleaned(rule=instance, data=form.cleaned_data)

    def success_url(self) -> str:
        return reverse("offers:rule-list")


class RuleMoveView(StaffPermissionMixin, View):
    """Move a rule one place up or down (POST `direction`); the first match wins, so order is policy."""

    def post(self, request: HttpRequest, kind: str, pk: int) -> HttpResponse:
        model: type[OfferRule] | type[FlowRule] = OfferRule if kind == "offer" else FlowRule
        if not request.user.has_perm(f"offers.change_{model._meta.model_name}"):
            raise PermissionDenied("Your role does not allow reordering rules.")
        ids = list(model.objects.order_by("position", "pk").values_list("pk", flat=True))
        if pk not in ids:
            raise Http404("No such rule.")
        index = ids.index(pk)
        other = index - 1 if request.POST.get("direction") == "up" else index + 1
        if 0 <= other < len(ids):
            ids[index], ids[other] = ids[other], ids[index]
        configuration.rules_reorder(model=model, ordered_ids=ids)
        return HttpResponseRedirect(reverse("offers:rule-list"))
