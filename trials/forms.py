"""Forms of the trial loop settings (activation and habit definition, score settings, fit rules); the billing
settings' forms are the Stripe mirror's (integrations.stripe.forms)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from segments.conditions import parse_tree, to_json
from trials.models import ActivationDefinition, FitRule, ScoreSettings


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
            import json

            self.fields["habit_events_text"].initial = ", ".join(self.instance.habit_events or [])
            condition = self.instance.activation_condition
            self.fields["condition_text"].initial = json.dumps(condition, indent=1) if condition else ""

    def clean_habit_events_text(self) -> list[str]:
        return [name.strip() for name in self.cleaned_data["habit_events_text"].split(",") if name.strip()]

    def clean_condition_text(self) -> dict[str, Any] | None:
        import json

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
    class Meta:
        model = FitRule
        fields = ["label", "attribute", "operator", "value", "points"]
        help_texts = {"attribute": "A customer or account trait (e.g. employees, industry, role), or email_domain."}
