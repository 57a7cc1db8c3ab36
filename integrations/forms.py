"""Forms of the integrations pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from audiences.models import Source
from audiences.services import frame_ancestors_clean
from config.facts import FactKind
from integrations.destinations import DestinationInvalid, kinds_check
from integrations.models import (
    Destination,
    ImportJob,
    SourceTrackingPlan,
    TrackingPlan,
    consent_category_validator,
)
from integrations.outbound_http import UnsafeUrl, url_check
from integrations.tracking_plans import InvalidSchema, schema_check


class SourceForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="For example the product's name and platform: “Web app”.")
    kind = forms.ChoiceField(choices=Source.Kind.choices, initial=Source.Kind.TRACKING_API)

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if Source.objects.filter(name__iexact=name).exists():
            raise forms.ValidationError("A source with this name already exists.")
        return name


class SourceCancelPageForm(forms.Form):
    """The origins allowed to embed a source's hosted cancellation page, one per line (or space-separated)."""

    origins = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
        help_text="https://app.example.com or 'self', one per line; empty: the page cannot be embedded.",
    )

    def __init__(self, *args: Any, source: Source, **kwargs: Any) -> None:
        kwargs.setdefault("prefix", f"s{source.pk}")
        kwargs.setdefault("initial", {"origins": "\n".join(source.cancel_page_frame_ancestors)})
        super().__init__(*args, **kwargs)
        self.source = source

    def clean_origins(self) -> list[str]:
        try:
            return frame_ancestors_clean(self.cleaned_data["origins"].replace(",", " ").split())
        except ValidationError as invalid:
            raise forms.ValidationError(invalid.messages) from invalid


class SchemaField(forms.JSONField):
    """A JSON Schema typed into a textarea: must parse, and must be a valid schema."""

    widget = forms.Textarea(attrs={"rows": 8, "spellcheck": "false"})

    def validate(self, value: Any) -> None:
        super().validate(value)
        if value in (None, ""):
            return
        try:
            schema_check(value)
        except InvalidSchema as error:
            raise forms.ValidationError(str(error)) from error


class TrackingPlanForm(forms.ModelForm[TrackingPlan]):
    identify_schema = SchemaField(
        required=False, help_text="JSON Schema for identify traits. Leave {} to not check traits."
    )

    class Meta:
        model = TrackingPlan
        fields = ["name", "description", "identify_schema"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

    def clean_identify_schema(self) -> Any:
        return self.cleaned_data["identify_schema"] or {}


class TrackingPlanEventForm(forms.Form):
    event_name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    properties_schema = SchemaField(
        required=False,
        initial={"type": "object", "properties": {}},
        help_text='JSON Schema for the properties, e.g. {"type": "object", "required": ["plan"]}.',
    )

    def clean_properties_schema(self) -> Any:
        return self.cleaned_data["properties_schema"] or {}


class SourcePlanForm(forms.Form):
    source = forms.ModelChoiceField(queryset=Source.objects.order_by("name"))
    mode = forms.ChoiceField(
        choices=[*SourceTrackingPlan.Mode.choices, ("disconnect", "Disconnect from this plan")],
        initial=SourceTrackingPlan.Mode.FLAG,
    )


class ImportForm(forms.Form):
    file = forms.FileField(help_text="A .csv, .ndjson or .jsonl file.")
    kind = forms.ChoiceField(choices=ImportJob.Kind.choices)
    source = forms.ModelChoiceField(queryset=Source.objects.order_by("name"))


class DestinationForm(forms.Form):
    """A destination's settings; the URL is checked for safety (scheme, resolvable, not private) right here,
    so a refused URL is a message beside the field rather than a failure later. The kind is fixed once
    created, and an empty write key on edit keeps the stored one."""

    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=Destination.Kind.choices, initial=Destination.Kind.WEBHOOK)
    url = forms.URLField(
        max_length=500,
        assume_scheme="https",
        label="URL",
        widget=forms.URLInput(attrs={"size": 70}),
        help_text="Webhook: the URL each message is POSTed to. Segment: the API's base URL, e.g. "
        "https://api.segment.io (batches go to /v1/batch).",
    )
    write_key = forms.CharField(
        max_length=255,
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Segment kind only: the write key of the receiving source. Leave empty to keep the stored one.",
    )
    kinds = forms.MultipleChoiceField(
        choices=FactKind.choices,
        widget=forms.CheckboxSelectMultiple,
        label="Messages",
        help_text="Segment destinations take audience, trait and billing messages.",
    )
    consent_category = forms.CharField(
        max_length=50,
        initial=Destination.DEFAULT_CONSENT_CATEGORY,
        validators=[consent_category_validator],
        help_text="Customers whose consent for this category is false are not sent.",
    )

    def __init__(self, *args: Any, instance: Destination | None = None, **kwargs: Any) -> None:
        self.instance = instance
        if instance is not None:
            kwargs.setdefault(
                "initial",
                {
                    "name": instance.name,
                    "kind": instance.kind,
                    "url": instance.url,
                    "kinds": instance.kinds,
                    "consent_category": instance.consent_category,
                },
            )
        super().__init__(*args, **kwargs)
        if instance is not None:
            self.fields["kind"].disabled = True
            self.fields["kind"].help_text = "Fixed once created: create another destination for another kind."

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        others = Destination.objects.filter(name__iexact=name)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise forms.ValidationError("A destination with this name already exists.")
        return name

    def clean_url(self) -> str:
        url: str = self.cleaned_data["url"]
        try:
            url_check(url)
        except UnsafeUrl as unsafe:
            raise forms.ValidationError(str(unsafe)) from unsafe
        return url

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        kind = self.instance.kind if self.instance is not None else cleaned.get("kind")
        stored_key = self.instance.write_key if self.instance is not None else ""
        if kind == Destination.Kind.SEGMENT and not cleaned.get("write_key") and not stored_key:
            self.add_error("write_key", "A Segment destination needs the write key of the receiving source.")
        if kind and "kinds" in cleaned:
            try:
                cleaned["kinds"] = kinds_check(kind=kind, kinds=cleaned["kinds"])
            except DestinationInvalid as invalid:
                self.add_error("kinds", invalid.message)
        return cleaned
