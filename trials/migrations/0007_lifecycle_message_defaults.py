"""The workspace email settings and the four lifecycle templates from the product brief, as editable defaults."""

from typing import Any

from django.db import migrations

from trials.messaging.defaults import MESSAGE_TEMPLATES


def seed(apps: Any, schema_editor: Any) -> None:
    EmailSettings = apps.get_model("trials", "EmailSettings")
    MessageTemplate = apps.get_model("trials", "MessageTemplate")
    EmailSettings.objects.get_or_create(pk=1)
    for row in MESSAGE_TEMPLATES:
        MessageTemplate.objects.get_or_create(key=row["key"], defaults=row)


class Migration(migrations.Migration):
    dependencies = [("trials", "0006_lifecycle_messages")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
