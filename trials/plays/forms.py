"""Forms of the play editor, the alert actions (snooze, done) and the business-hours settings."""

from __future__ import annotations

import copy
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.models import construct_instance

from trials.messaging.forms import time_zone_name
from trials.plays.models import Alert, BusinessHours, Holiday, Play
from trials.plays.plays import play_validate

WEEKDAYS = [(1, "Mon"), (2, "Tue"), (3, "Wed"), (4, "Thu"), (5, "Fri"), (6, "Sat"), (7, "Sun")]


class PlayForm(forms.ModelForm[Play]):
    """Edits a play; a bad condition tree or an unknown template variable is an error on its field."""

    condition = forms.JSONField(
        help_text="A condition tree in the segment language (JSON), as the segment builder stores it.",
        widget=forms.Textarea(attrs={"rows": 14, "class": "mono"}),
    )

    class Meta:
        model = Play
        fields = [
            "key",
            "name",
            "description",
            "condition",
            "target",
            "priority",
            "sla_business_hours",
            "cooldown_hours",
            "subject",
            "body",
            "active",
            "test_mode",
            "holdout_percent",
            "no_holdout",
            "notify_assignee",
        ]
        widgets = {"description": forms.Textarea(attrs={"rows": 3}), "body": forms.Textarea(attrs={"rows": 8})}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        candidate = construct_instance(self, copy.copy(self.instance))
        try:
            play_validate(candidate)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, errors)
        return cleaned


class SnoozeForm(forms.Form):
    until = forms.DateTimeField(
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"],
        help_text="In UTC.",
    )


class DoneForm(forms.Form):
    outcome = forms.ChoiceField(choices=[(v, label) for v, label in Alert.Outcome.choices if v])
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), max_length=5000)


class DismissForm(forms.Form):
    notes = forms.CharField(required=False, max_length=5000)


class BusinessHoursForm(forms.ModelForm[BusinessHours]):
    """Working hours in a time zone and the workdays; the SLA clock counts only these."""

    workdays = forms.TypedMultipleChoiceField(
        choices=WEEKDAYS, coerce=int, widget=forms.CheckboxSelectMultiple, help_text="At least one."
    )

    class Meta:
        model = BusinessHours
        fields = ["time_zone", "start_hour", "end_hour", "workdays"]

    def clean_time_zone(self) -> str:
        return time_zone_name(self.cleaned_data["time_zone"])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("start_hour"), cleaned.get("end_hour")
        if end is not None and end > 24:
            self.add_error("end_hour", "At most 24.")
        elif start is not None and end is not None and start >= end:
            self.add_error("end_hour", "The day must end after it starts.")
        return cleaned


class HolidayForm(forms.ModelForm[Holiday]):
    class Meta:
        model = Holiday
        fields = ["day", "name"]
        widgets = {"day": forms.DateInput(attrs={"type": "date"})}
