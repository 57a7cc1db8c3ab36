"""The measurement reports' filters, validated once for the pages, the CSV exports and the API."""

from __future__ import annotations

from datetime import date
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator

from integrations.stripe.models import Plan
from segments.conditions import InvalidCondition, parse_tree
from segments.models import Segment
from trials.loop.models import Trial
from trials.measurement.scope import DEFAULT_DISCOVERY_DAYS, Filters, Period, Split

EARLIEST, LATEST = date(2000, 1, 1), date(2100, 12, 31)
"""The dates a filter accepts: any real trial falls between them, and the reports can always compute the day after
`until` (9999-12-31 would overflow)."""
DATE_BOUNDS = [MinValueValidator(EARLIEST), MaxValueValidator(LATEST)]
DATE_INPUT = {"type": "date", "min": EARLIEST.isoformat(), "max": LATEST.isoformat()}

SPLITS = [("", "No split"), ("model", "Trial model"), ("source", "Source"), ("plan", "Plan"), ("segment", "Segment")]


class MeasurementFilterForm(forms.Form):
    """Date range of trial starts, model, source, plan, segment; the cohort period and split; discovery's days.

    With split = segment, the chosen segment splits the trials (in vs not in) instead of filtering them."""

    since = forms.DateField(required=False, validators=DATE_BOUNDS, widget=forms.DateInput(attrs=DATE_INPUT))
    until = forms.DateField(required=False, validators=DATE_BOUNDS, widget=forms.DateInput(attrs=DATE_INPUT))
    model = forms.ChoiceField(choices=[("", "All models"), *Trial.Model.choices], required=False)
    source = forms.CharField(max_length=100, required=False)
    plan = forms.ModelChoiceField(queryset=Plan.objects.order_by("name"), required=False, empty_label="All plans")
    segment = forms.ModelChoiceField(
        queryset=Segment.objects.order_by("name"), required=False, empty_label="No segment"
    )
    period = forms.ChoiceField(choices=[("week", "Week"), ("month", "Month")], required=False)
    split = forms.ChoiceField(choices=SPLITS, required=False)
    days = forms.IntegerField(min_value=1, max_value=90, required=False, label="First D days")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise ValidationError("The start date must not be after the end date.")
        if data.get("split") == "segment" and not data.get("segment"):
            self.add_error("segment", "Choose a segment to split by.")
        segment = data.get("segment")
        if segment is not None:
            try:
                parse_tree(segment.conditions, segment_id=segment.pk)
            except InvalidCondition as error:
                self.add_error("segment", f"This segment's conditions no longer compile: {error}")
        return data

    def filters(self, *, segment_splits: bool = False) -> Filters:
        """The filters; the segment narrows the trials, except in a report that splits by it (`segment_splits`,
        the cohorts with split = segment), where it divides them instead."""
        data = self.cleaned_data
        return Filters(
            since=data.get("since"),
            until=data.get("until"),
            model=data.get("model") or "",
            source=data.get("source") or "",
            plan=data.get("plan"),
            segment=None if segment_splits and data.get("split") == "segment" else data.get("segment"),
        )

    @property
    def chosen_period(self) -> Period:
        return "month" if self.cleaned_data.get("period") == "month" else "week"

    @property
    def chosen_split(self) -> Split:
        value = self.cleaned_data.get("split") or ""
        return value if value in ("model", "source", "plan", "segment") else ""  # type: ignore[return-value]

    @property
    def chosen_days(self) -> int:
        return int(self.cleaned_data.get("days") or DEFAULT_DISCOVERY_DAYS)

    @property
    def split_segment(self) -> Segment | None:
        return self.cleaned_data.get("segment") if self.chosen_split == "segment" else None


class MakeActivationForm(forms.Form):
    """The one-click "make this the activation event": an event name, its threshold and the window analysed."""

    event = forms.CharField(max_length=255)
    count = forms.IntegerField(min_value=1, max_value=1000)
    days = forms.IntegerField(min_value=1, max_value=90)
