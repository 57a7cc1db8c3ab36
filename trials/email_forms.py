"""The lifecycle template editor's form: the model's fields plus the same validation as message_template_save."""

from __future__ import annotations

import copy
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.models import construct_instance

from trials.emails import message_template_validate
from trials.models import MessageTemplate


class MessageTemplateForm(forms.ModelForm[MessageTemplate]):
    """Edits a template; unknown variables, tags or filters and bad conditions are errors on their fields."""

    condition = forms.JSONField(required=False, help_text="A condition tree in the segment language (JSON).")

    class Meta:
        model = MessageTemplate
        fields = [
            "name",
            "active",
            "subject",
            "html_body",
            "text_body",
            "trigger",
            "trigger_event",
            "trigger_segment",
            "trigger_number",
            "condition",
            "priority",
            "throttle_hours",
            "holdout_percent",
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        candidate = construct_instance(self, copy.copy(self.instance))
        try:
            message_template_validate(candidate)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, errors)
        return cleaned
