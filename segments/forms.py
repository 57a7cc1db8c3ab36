"""The segment form: name, description, tags and the tree the builder edits (validated by segment_save)."""

from __future__ import annotations

from typing import Any

from django import forms

from audiences.models import Customer
from segments.conditions import InvalidCondition, parse_tree
from segments.models import Segment


class SegmentForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    tags = forms.CharField(required=False, help_text="Comma-separated, e.g. revenue, at-risk")
    conditions = forms.JSONField(widget=forms.HiddenInput)
    test_customers = forms.CharField(
        required=False,
        help_text="Drafts only: user ids of test customers to count in the draft whatever the conditions.",
    )

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

    def clean_test_customers(self) -> list[int]:

        wanted = [value.strip() for value in self.cleaned_data["test_customers"].split(",") if value.strip()]
        found = dict(Customer.objects.filter(user_id__in=wanted, is_test=True).values_list("user_id", "pk"))
        missing = [value for value in wanted if value not in found]
        if missing:
            raise forms.ValidationError(f"Not test customers (or unknown): {', '.join(missing)}.")
        return list(found.values())

    def clean_conditions(self) -> Any:
        conditions = self.cleaned_data["conditions"]
        try:
            parse_tree(conditions, segment_id=self.segment.pk if self.segment is not None else None)
        except InvalidCondition as invalid:
            raise forms.ValidationError(str(invalid)) from invalid
        return conditions
