"""The segment form: name, description, tags and the tree the builder edits (validated by segment_save)."""

from __future__ import annotations

from typing import Any

from django import forms

from segments.conditions import InvalidCondition, parse_tree
from segments.models import Segment


class SegmentForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    tags = forms.CharField(required=False, help_text="Comma-separated, e.g. revenue, at-risk")
    conditions = forms.JSONField(widget=forms.HiddenInput)

    def __init__(self, *args: Any, segment: Segment | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.segment = segment

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        taken = Segment.objects.filter(name__iexact=name)
        if self.segment is not None:
            taken = taken.exclude(pk=self.segment.pk)
        if taken.exists():
            raise forms.ValidationError("A segment with this name already exists.")
        return name

    def clean_tags(self) -> list[str]:
        return [tag.strip() for tag in self.cleaned_data["tags"].split(",") if tag.strip()]

    def clean_conditions(self) -> Any:
        conditions = self.cleaned_data["conditions"]
        try:
            parse_tree(conditions, segment_id=self.segment.pk if self.segment is not None else None)
        except InvalidCondition as invalid:
            raise forms.ValidationError(str(invalid)) from invalid
        return conditions
