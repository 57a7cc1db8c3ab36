"""Forms of the billing settings page: the workspace currency, the account mapping rule and the currency rates.

They validate only; integrations.stripe.billing_settings applies a change and its consequences (re-valued MRR,
remapped accounts).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from integrations.stripe.models import BillingSettings

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
