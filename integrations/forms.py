"""Forms of the integrations pages."""

from __future__ import annotations

from django import forms

from audiences.models import Source


class SourceForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="For example the product's name and platform: “Web app”.")
    kind = forms.ChoiceField(choices=Source.Kind.choices, initial=Source.Kind.TRACKING_API)

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if Source.objects.filter(name__iexact=name).exists():
            raise forms.ValidationError("A source with this name already exists.")
        return name
