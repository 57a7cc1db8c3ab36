"""The lifecycle template editor's form: the model's fields plus the same validation as message_template_save."""

from __future__ import annotations

import copy
from email.utils import parseaddr
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.forms.models import construct_instance

from trials.messaging.models import EmailSettings, MessageTemplate
from trials.messaging.templates import message_template_validate


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
            "send_at_local_time",
            "condition",
            "priority",
            "throttle_hours",
            "when_outranked",
            "holdout_percent",
            "no_holdout",
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


class MessageTemplateCreateForm(MessageTemplateForm):
    """A new template: the editor's fields plus the key and the channel, which are fixed once created."""

    class Meta(MessageTemplateForm.Meta):
        fields = ["key", "channel", *MessageTemplateForm.Meta.fields]


def time_zone_name(value: object) -> str:
    """A time zone field's value, stripped, or a form error naming it when it is not an IANA zone."""
    name = str(value).strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"Unknown time zone {name!r} (use an IANA name such as Europe/Paris).") from exc
    return name


class EmailSettingsForm(forms.ModelForm[EmailSettings]):
    """The workspace's throttle window, priority window, quiet hours, default time zone and sender."""

    class Meta:
        model = EmailSettings
        fields = [
            "throttle_hours",
            "priority_window_minutes",
            "quiet_start_hour",
            "quiet_end_hour",
            "default_time_zone",
            "from_email",
        ]

    def clean_quiet_start_hour(self) -> int:
        return _hour(self.cleaned_data["quiet_start_hour"])

    def clean_quiet_end_hour(self) -> int:
        return _hour(self.cleaned_data["quiet_end_hour"])

    def clean_default_time_zone(self) -> str:
        return time_zone_name(self.cleaned_data["default_time_zone"])

    def clean_from_email(self) -> str:
        value = str(self.cleaned_data["from_email"]).strip()
        if value:
            _, address = parseaddr(value)
            try:
                validate_email(address)
            except ValidationError as exc:
                raise ValidationError("Give an address, optionally with a name: Team <team@example.com>.") from exc
        return value


def _hour(value: int) -> int:
    if not 0 <= value <= 23:
        raise ValidationError("An hour of the day, 0 to 23.")
    return value


class PriorityForm(forms.ModelForm[MessageTemplate]):
    """One template's priority in the settings page's list (lower wins)."""

    class Meta:
        model = MessageTemplate
        fields = ["priority"]


PriorityFormSet = forms.modelformset_factory(MessageTemplate, form=PriorityForm, extra=0)
