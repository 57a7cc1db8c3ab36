"""Seed the activation definition, score settings and default fit rules (matching the demo data and the seeds'
numbers); a database that already has them keeps its own."""

from __future__ import annotations

from typing import Any

from django.db import migrations

from trials.loop.defaults import DEFINITION

# The default rules in the mini-language of this migration's time (trials.0017 converts them to condition trees);
# frozen here so the migration keeps seeding what its schema holds.
FIT_RULES: tuple[dict[str, Any], ...] = (
    {"attribute": "employees", "operator": "between", "value": "11-1000", "points": 40, "label": "11–1000 employees"},
    {"attribute": "employees", "operator": "gte", "value": "1001", "points": 20, "label": "Over 1000 employees"},
    {
        "attribute": "industry",
        "operator": "one_of",
        "value": "SaaS, Fintech, E-commerce, Media",
        "points": 25,
        "label": "Target industry",
    },
    {
        "attribute": "role",
        "operator": "one_of",
        "value": "executive, engineering, product, data",
        "points": 25,
        "label": "Decision maker",
    },
    {"attribute": "email_domain", "operator": "free_mail", "value": "", "points": -40, "label": "Free-mail address"},
    {"attribute": "email_domain", "operator": "ends_with", "value": ".edu", "points": -40, "label": ".edu address"},
)

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
