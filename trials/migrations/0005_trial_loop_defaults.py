"""Seed the activation definition, score settings and default fit rules (matching the demo data and the seeds'
numbers); a database that already has them keeps its own."""

from __future__ import annotations

from typing import Any

from django.db import migrations

from trials.loop.defaults import DEFINITION, FIT_RULES

def seed(apps: Any, schema_editor: Any) -> None:
    definition = apps.get_model("trials", "ActivationDefinition")
    settings = apps.get_model("trials", "ScoreSettings")
    rule = apps.get_model("trials", "FitRule")
    definition.objects.get_or_create(pk=1, defaults=DEFINITION)
    settings.objects.get_or_create(pk=1)
    if not rule.objects.exists():
        rule.objects.bulk_create([rule(**row) for row in FIT_RULES])


class Migration(migrations.Migration):
    dependencies = [("trials", "0004_trial_loop")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
