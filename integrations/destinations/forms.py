"""The destination form of the outbound pages."""

from __future__ import annotations

from typing import Any

from django import forms

from config.facts import FactKind
from integrations.destinations.models import Destination, consent_category_validator
from integrations.destinations.outbound_http import UnsafeUrl, url_check
from integrations.destinations.services import DestinationInvalid, kinds_check


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
