"""Forms of the intake pages: sources, tracking plans and their events, imports."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from audiences.models import Source
from audiences.services import frame_ancestors_clean
from integrations.tracking.models import ImportJob, SourceTrackingPlan, TrackingPlan
from integrations.tracking.plans import InvalidSchema, schema_check


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
