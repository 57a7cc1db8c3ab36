"""Forms of the trial loop settings: the activation and habit definition, score settings and fit rules."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from segments.conditions import parse_tree, to_json
from trials.loop.models import ActivationDefinition, FitRule, ScoreSettings


class ActivationDefinitionForm(forms.ModelForm[ActivationDefinition]):
    """Habit events as one comma-separated field; the condition as JSON in the segment language (validated by
    segments.conditions.parse_tree, the same parser segments use)."""

    habit_events_text = forms.CharField(
        label="High-intent (habit) events", help_text="Comma-separated event names.", required=False
    )
    condition_text = forms.CharField(
        label="Also require (condition JSON)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Optional: a condition tree in the segment language that must hold too; empty for none.",
    )

    class Meta:
        model = ActivationDefinition
        fields = [
            "activation_event", "activation_count", "activation_within_hours", "habit_threshold",
            "habit_window_days", "signup_event", "trial_days", "recover_window_days",
        ]  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.fields["habit_events_text"].initial = ", ".join(self.instance.habit_events or [])
            condition = self.instance.activation_condition
            self.fields["condition_text"].initial = json.dumps(condition, indent=1) if condition else ""

    def clean_habit_events_text(self) -> list[str]:
        return [name.strip() for name in self.cleaned_data["habit_events_text"].split(",") if name.strip()]

    def clean_condition_text(self) -> dict[str, Any] | None:
        text = self.cleaned_data["condition_text"].strip()
        if not text:
            return None
        try:
            return to_json(parse_tree(json.loads(text)))
        except ValueError as error:  # InvalidCondition and malformed JSON alike
            raise ValidationError(f"Not a valid condition: {error}") from error

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        if cleaned is not None and not cleaned.get("activation_event") and not cleaned.get("condition_text"):
            raise ValidationError("Name an activation event or a condition.")
        return cleaned


class ScoreSettingsForm(forms.ModelForm[ScoreSettings]):
    class Meta:
        model = ScoreSettings
        fields = [
            "base_fit", "fit_weight", "behaviour_weight", "activation_points", "action_points",
            "decay_half_life_days", "pql_threshold", "high_fit", "medium_fit", "free_mail_domains",
        ]  # fmt: skip
        widgets = {"free_mail_domains": forms.Textarea(attrs={"rows": 2})}

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        if cleaned is not None and cleaned.get("fit_weight", 0) + cleaned.get("behaviour_weight", 0) != 100:
            raise ValidationError("The fit and behaviour weights must add up to 100.")
        return cleaned


class FitRuleForm(forms.ModelForm[FitRule]):
    """A fit rule: label, points and the condition as JSON in the segment language (validated by
    segments.conditions.parse_tree, as the activation definition's condition is)."""

    condition_text = forms.CharField(
        label="When (condition JSON)",
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text='A condition tree in the segment language, e.g. {"type": "condition", "property": '
        '"account.trait.employees", "operator": "gte", "value": 1001}.',
    )

    class Meta:
        model = FitRule
        fields = ["label", "points"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound and self.instance.condition:
            self.fields["condition_text"].initial = json.dumps(self.instance.condition, indent=1)

    def clean_condition_text(self) -> dict[str, Any]:
        try:
            return to_json(parse_tree(json.loads(self.cleaned_data["condition_text"])))
        except ValueError as error:  # InvalidCondition and malformed JSON alike
            raise ValidationError(f"Not a valid condition: {error}") from error
