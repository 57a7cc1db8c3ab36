"""Forms of the trial loop settings (activation and habit definition, score settings, fit rules) and of the billing
settings (workspace currency, currency rates, account mapping)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from integrations.stripe.models import BillingSettings
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


CURRENCY_CODE = r"^[A-Za-z]{3}$"


class BillingSettingsForm(forms.ModelForm[BillingSettings]):
    """The workspace currency (a three-letter ISO code) and the account mapping rule."""

    currency = forms.RegexField(
        regex=CURRENCY_CODE,
        label="Workspace currency",
        error_messages={"invalid": "Give a three-letter ISO currency code, e.g. usd, eur or jpy."},
        help_text="MRR totals are shown in this currency. Changing it removes the rates, which were relative to it.",
    )

    class Meta:
        model = BillingSettings
        fields = ["currency", "account_metadata_key", "account_by_email_domain"]

    def clean_currency(self) -> str:
        return str(self.cleaned_data["currency"]).lower()

    def clean_account_metadata_key(self) -> str:
        key = str(self.cleaned_data["account_metadata_key"]).strip()
        if key and not key.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise ValidationError("Letters, digits, _, - and . only, as Stripe metadata keys are written.")
        return key


class CurrencyRateForm(forms.Form):
    """One rate: what 1 unit of `currency` is worth in the workspace currency."""

    currency = forms.RegexField(
        regex=CURRENCY_CODE, error_messages={"invalid": "Give a three-letter ISO currency code, e.g. eur."}
    )
    rate = forms.DecimalField(
        max_digits=20,
        decimal_places=10,
        min_value=Decimal("0.0000000001"),
        help_text="Units of the workspace currency for 1 unit of this currency (e.g. 1.08 for EUR in a USD workspace).",
    )

    def __init__(self, *args: Any, workspace_currency: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workspace_currency = workspace_currency.lower()

    def clean_currency(self) -> str:
        code = str(self.cleaned_data["currency"]).lower()
        if code == self.workspace_currency:
            raise ValidationError(f"{code.upper()} is the workspace currency: it needs no rate.")
        return code
