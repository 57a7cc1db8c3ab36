"""Business hours and the four sales-assist plays from the seeds, as editable defaults."""

from typing import Any

from django.db import migrations

from trials.plays.defaults import PLAYS


def seed(apps: Any, schema_editor: Any) -> None:
    BusinessHours = apps.get_model("trials", "BusinessHours")
    Play = apps.get_model("trials", "Play")
    BusinessHours.objects.get_or_create(pk=1, defaults={"workdays": [1, 2, 3, 4, 5]})
    for row in PLAYS:
        Play.objects.get_or_create(key=row["key"], defaults=row)


class Migration(migrations.Migration):
    dependencies = [("trials", "0009_plays_and_alerts")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
