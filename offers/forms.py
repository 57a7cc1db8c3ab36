"""Forms of the staff pages: offers, reasons, flows, offer rules (with a weight per offer) and flow rules.

They only validate input; saving goes through offers.configuration.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.utils import timezone

from integrations.stripe.models import Plan
from offers.models import CancellationFlow, CancellationReason, FlowRule, Offer, OfferRule
from offers.parameters import InvalidOfferParameters, offer_parameters_clean
from offers.selectors import REPORT_MAX_DAYS, ReportFilters
from segments.models import Segment

PARAMETER_HELP = (
    'JSON. discount: {"percent_off": 20, "duration": "repeating", "duration_in_months": 3, '
    '"existing_coupon": "replace"} or {"amount_off_cents": 1000, "currency": "usd", "duration": "once"}; '
    'trial_extension: {"days": 7}; pause: {"unit": "months", "count": 1} or {"until": "2026-12-31"}; '
    'plan_change: {"plan_id": 3, "proration_behavior": "create_prorations"}; '
    'redirect: {"url": "https://…", "label": "Talk to us"}.'
)


def _unique_name(model: Any, name: str, instance: Any) -> str:
    taken = model.objects.filter(name__iexact=name)
    if instance is not None and instance.pk:
        taken = taken.exclude(pk=instance.pk)
    if taken.exists():
        raise forms.ValidationError("This name is already taken.")
    return name


class OfferForm(forms.Form):
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=Offer.Kind.choices)
    parameters = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text=PARAMETER_HELP)
    headline = forms.CharField(max_length=200, required=False, help_text="What the customer is shown.")
    body = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    tags = forms.CharField(required=False, help_text="Comma-separated, e.g. win-back, annual")
    is_active = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, offer: Offer | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offer = offer

    def clean_name(self) -> str:
        return _unique_name(Offer, self.cleaned_data["name"].strip(), self.offer)

    def clean_tags(self) -> list[str]:
        return [tag.strip() for tag in self.cleaned_data["tags"].split(",") if tag.strip()]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        raw = cleaned.get("parameters")
        if raw is None or "kind" not in cleaned:
            return cleaned
        try:
            cleaned["parameters"] = offer_parameters_clean(cleaned["kind"], json.loads(raw))
        except ValueError as invalid:  # JSON errors and InvalidOfferParameters alike
            message = str(invalid) if isinstance(invalid, InvalidOfferParameters) else f"Not valid JSON: {invalid}"
            self.add_error("parameters", message)
        return cleaned


class ReasonForm(forms.ModelForm[CancellationReason]):
    class Meta:
        model = CancellationReason
        fields = ["label", "stripe_feedback", "position", "is_active"]


class FlowForm(forms.ModelForm[CancellationFlow]):
    reasons = forms.ModelMultipleChoiceField(
        queryset=CancellationReason.objects.order_by("position", "pk"),
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )
    feedback_reasons = forms.ModelMultipleChoiceField(
        queryset=CancellationReason.objects.order_by("position", "pk"),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label="Ask for feedback only after",
        help_text="A step condition: the feedback step follows only these answers; none chosen = every answer.",
    )
    logo_url = forms.URLField(
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text="An https:// image shown at the top of the hosted page (served by you, not uploaded).",
    )

    class Meta:
        model = CancellationFlow
        fields = [
            "name",
            "reasons",
            "ask_feedback",
            "feedback_prompt",
            "confirmation_message",
            "cancel_immediately",
            "brand_name",
            "brand_color",
            "logo_url",
            "language",
            "feedback_reasons",
            "is_active",
            "is_draft",
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        outside = set(cleaned.get("feedback_reasons") or []) - set(cleaned.get("reasons") or [])
        if outside:
            names = ", ".join(sorted(reason.label for reason in outside))
            self.add_error("feedback_reasons", f"Not a reason of this flow: {names}.")
        return cleaned


def _segment_field() -> forms.ModelMultipleChoiceField[Segment]:
    return forms.ModelMultipleChoiceField(
        queryset=Segment.objects.order_by("name"),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="The customer is in any of them; none chosen = every customer.",
    )


class OfferRuleForm(forms.Form):
    """An offer rule; each active offer gets a weight field (0 = not offered by this rule)."""

    name = forms.CharField(max_length=200, required=False)
    applies_to = forms.ChoiceField(
        choices=OfferRule.AppliesTo.choices,
        initial=OfferRule.AppliesTo.CANCELLATION,
        required=False,
        help_text="Win-back rules ignore reasons and offer only discounts, trial extensions or a redirect.",
    )
    segments = _segment_field()
    reasons = forms.ModelMultipleChoiceField(
        queryset=CancellationReason.objects.order_by("position", "pk"),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="The answer is any of them; none chosen = any answer.",
    )
    no_offer = forms.BooleanField(required=False, help_text="Matching customers see no offer.")
    allow_repeat = forms.BooleanField(
        required=False, help_text="Offer even if the customer accepted an offer within the window below."
    )
    repeat_window_days = forms.IntegerField(min_value=1, initial=90)
    is_active = forms.BooleanField(required=False, initial=True)
    is_draft = forms.BooleanField(required=False, initial=True, help_text="Drafts apply to test customers only.")

    def __init__(self, *args: Any, rule: OfferRule | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rule = rule
        weights = {entry.offer_id: entry.weight for entry in rule.weighted_offers.all()} if rule else {}
        self.offer_fields: list[tuple[str, Offer]] = []
        for offer in Offer.objects.filter(is_active=True).order_by("name"):
            name = f"weight_{offer.pk}"
            self.fields[name] = forms.IntegerField(
                min_value=0, initial=weights.get(offer.pk, 0), label=f"{offer.name} (weight)", required=False
            )
            self.offer_fields.append((name, offer))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        offers = [(offer, cleaned.get(name) or 0) for name, offer in self.offer_fields]
        cleaned["offers"] = [(offer, weight) for offer, weight in offers if weight > 0]
        if cleaned.get("no_offer") and cleaned["offers"]:
            raise forms.ValidationError("A 'no offer' rule cannot also give offers a weight.")
        if not cleaned.get("no_offer") and not cleaned["offers"]:
            raise forms.ValidationError("Give at least one offer a weight, or choose 'no offer'.")
        return cleaned


class FlowRuleForm(forms.ModelForm[FlowRule]):
    segments = _segment_field()

    class Meta:
        model = FlowRule
        fields = ["name", "segments", "flow", "is_active", "is_draft"]


TRUE_WORDS = frozenset({"on", "true", "1", "yes"})
FALSE_WORDS = frozenset({"", "off", "false", "0", "no"})


class ReportFilterForm(forms.Form):
    """The filters of the retention report, its CSV exports and the reports API: a period (the last `days`
    days, or `since`…`until`), a flow, a presented offer, a plan, and whether test sessions count."""

    days = forms.IntegerField(min_value=1, max_value=REPORT_MAX_DAYS, required=False)
    since = forms.DateField(required=False, help_text="First day (YYYY-MM-DD); overrides days.")
    until = forms.DateField(required=False, help_text="Last day (YYYY-MM-DD); default today.")
    flow = forms.ModelChoiceField(queryset=CancellationFlow.objects.order_by("name"), required=False)
    offer = forms.ModelChoiceField(queryset=Offer.objects.order_by("name"), required=False)
    plan = forms.ModelChoiceField(queryset=Plan.objects.order_by("name"), required=False)
    include_test = forms.BooleanField(required=False)

    def clean_include_test(self) -> bool:
        """The checkbox sends "on"; API callers send true/false words. Anything else is an error, not True."""
        raw = self.data.get(self.add_prefix("include_test"))
        word = str(raw).strip().lower() if raw is not None else ""
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise forms.ValidationError("Use true or false.")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since is not None and since > timezone.localdate():
            self.add_error("since", "The first day is in the future.")
        if until is not None and since is None:
            self.add_error("since", "Give the first day too.")
        if since is not None and until is not None:
            if since > until:
                self.add_error("until", "The last day is before the first day.")
            elif (until - since).days + 1 > REPORT_MAX_DAYS:
                self.add_error("since", f"At most {REPORT_MAX_DAYS} days.")
        return cleaned

    def filters(self) -> ReportFilters:
        """The validated filters (call after is_valid())."""
        data = self.cleaned_data
        return ReportFilters(
            days=data.get("days") or 30,
            first_day=data.get("since"),
            last_day=data.get("until"),
            flow_id=data["flow"].pk if data.get("flow") else None,
            offer_id=data["offer"].pk if data.get("offer") else None,
            plan_id=data["plan"].pk if data.get("plan") else None,
            include_test=bool(data.get("include_test")),
        )
