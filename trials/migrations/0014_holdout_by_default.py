"""Every template and play gets a holdout by default (10%); 0 stays only where someone explicitly chose it.

What "explicit" means for rows saved before this migration: the old default was 0 and the editors showed 0
pre-filled, so a row created with 0 says nothing about anyone's wish. A holdout above 0 was typed by someone; a
0 is explicit only when the audit log records a change *to* 0 (someone edited the holdout down to 0). Those
rows keep 0 and get `no_holdout` ticked; every other 0 becomes 10%. Each row changed here is recorded in the
audit log (via "system"), so the team can see why the number moved. Going back removes `no_holdout` and keeps
the percentages as they are (10% stays 10%).
"""

from typing import Any

from django.db import migrations, models
from django.utils import timezone

DEFAULT_HOLDOUT_PERCENT = 10  # trials.models.DEFAULT_HOLDOUT_PERCENT when this migration was written
MIGRATION = "trials.0014_holdout_by_default"  # the audit entries' author


def holdout_by_default(apps: Any, schema_editor: Any) -> None:
    AuditEntry = apps.get_model("project", "AuditEntry")
    now = timezone.now()
    entries = []
    for label in ("trials.MessageTemplate", "trials.Play"):
        model = apps.get_model(label)
        zero = model.objects.filter(holdout_percent=0)
        chosen = set(
            AuditEntry.objects.filter(model=label, action="changed", changes__holdout_percent__1=0).values_list(
                "object_id", flat=True
            )
        )
        explicit = [pk for pk in zero.values_list("pk", flat=True) if str(pk) in chosen]
        for pk, name in zero.values_list("pk", "name"):
            change = (
                {"no_holdout": [False, True]} if pk in explicit else {"holdout_percent": [0, DEFAULT_HOLDOUT_PERCENT]}
            )
            entries.append(
                AuditEntry(
                    at=now,
                    actor_name=MIGRATION,
                    via="system",
                    action="changed",
                    model=label,
                    object_id=str(pk),
                    object_repr=str(name)[:200],
                    changes=change,
                )
            )
        zero.filter(pk__in=explicit).update(no_holdout=True)
        zero.exclude(pk__in=explicit).update(holdout_percent=DEFAULT_HOLDOUT_PERCENT)
    AuditEntry.objects.bulk_create(entries, batch_size=500)


class Migration(migrations.Migration):
    dependencies = [
        ("project", "0003_audit_log"),
        ("segments", "0006_segment_evaluation_failure"),
        ("trials", "0013_message_priority_window"),
    ]

    operations = [
        migrations.AddField(
            model_name="messagetemplate",
            name="no_holdout",
            field=models.BooleanField(
                default=False, help_text="Nobody held out (holdout 0): the email's effect cannot be measured."
            ),
        ),
        migrations.AddField(
            model_name="play",
            name="no_holdout",
            field=models.BooleanField(
                default=False, help_text="Nobody held out (holdout 0): the play's effect cannot be measured."
            ),
        ),
        migrations.AlterField(
            model_name="messagetemplate",
            name="holdout_percent",
            field=models.PositiveSmallIntegerField(
                default=10, help_text="Customers held out (the control group), chosen per customer."
            ),
        ),
        migrations.AlterField(
            model_name="play",
            name="holdout_percent",
            field=models.PositiveSmallIntegerField(
                default=10, help_text="Customers (or accounts) held out (the control group)."
            ),
        ),
        migrations.RunPython(holdout_by_default, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="messagetemplate",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("holdout_percent", 0), ("no_holdout", True)),
                    models.Q(("holdout_percent__gt", 0), ("no_holdout", False)),
                    _connector="OR",
                ),
                name="message_template_holdout_explicit_zero",
            ),
        ),
        migrations.AddConstraint(
            model_name="play",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("holdout_percent", 0), ("no_holdout", True)),
                    models.Q(("holdout_percent__gt", 0), ("no_holdout", False)),
                    _connector="OR",
                ),
                name="play_holdout_explicit_zero",
            ),
        ),
    ]
