"""The computed trait form: plain fields whose rules live in computed_trait_save (InvalidTrait becomes the named
field's error), so the UI and the API accept exactly the same definitions."""

from __future__ import annotations

from typing import Any

from django import forms

from audiences.models import ComputedTrait
from segments.catalogue import EVENT_FILTER_OPERATORS
from segments.traits.definitions import InvalidTrait
from segments.traits.kinds import PROPERTY_KINDS

FILTERS_HELP = (
    'Only events whose properties match, e.g. [{"property": "plan", "operator": "equals", "value": "pro"}]. '
    f"Operators: {', '.join(sorted(EVENT_FILTER_OPERATORS))}. Leave [] for every event."
)


class ComputedTraitForm(forms.Form):
    key = forms.CharField(
        max_length=100,
        help_text="Segments compare on computed.<key>; letters, digits and _. Renaming breaks segments using it.",
    )
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    kind = forms.ChoiceField(choices=ComputedTrait.Kind.choices)
    event = forms.CharField(
        max_length=200,
        required=False,
        help_text="The event it is computed from; empty: any event the customer performed (track, page and screen "
        "calls), for the kinds that read no property. Not for trial days remaining.",
    )
    property = forms.CharField(
        max_length=200,
        required=False,
        help_text="The event property read — only for: "
        + ", ".join(str(label).lower() for value, label in ComputedTrait.Kind.choices if value in PROPERTY_KINDS)
        + ".",
    )
    where = forms.JSONField(
        required=False,
        label="Filters",
        initial=list,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=FILTERS_HELP,
    )
    window_days = forms.IntegerField(
        required=False, label="Window (days)", help_text="Only events of the last N days count; empty for all time."
    )
    since_trial_start = forms.BooleanField(
        required=False,
        label="Since the trial started",
        help_text="Only events since the start of the customer's current trial count (instead of a window in days).",
    )

    def definition(self) -> dict[str, Any]:
        """The cleaned fields as computed_trait_save's keyword arguments."""
        data = dict(self.cleaned_data)
        data["where"] = data.get("where") or []
        return data

    def add_invalid(self, invalid: InvalidTrait) -> None:
        """Show the engine's refusal on the field it names (or above the form)."""
        self.add_error(invalid.field if invalid.field in self.fields else None, invalid.message)

    @classmethod
    def initial_for(cls, trait: ComputedTrait) -> dict[str, Any]:
        return {name: getattr(trait, name) for name in cls.base_fields}
