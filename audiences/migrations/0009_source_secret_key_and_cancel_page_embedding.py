"""Every source gets a secret key (tlsk_…, stored encrypted, with its SHA-256 for lookups) and the list of origins
allowed to embed its hosted cancellation page. Sources that exist before this migration are given a new secret
key here; an admin sees it by rotating it on Integrations → Sources (it is never shown otherwise)."""

import hashlib
import secrets
from typing import Any

from django.db import migrations, models

import config.fields


def give_existing_sources_a_secret(apps: Any, schema_editor: Any) -> None:
    Source = apps.get_model("audiences", "Source")
    for source_id in Source.objects.filter(secret_key_digest__isnull=True).values_list("pk", flat=True):
        secret_key = "tlsk_" + secrets.token_urlsafe(32)
        Source.objects.filter(pk=source_id).update(
            secret_key=secret_key,  # encrypted by the field, as the model writes it
            secret_key_digest=hashlib.sha256(secret_key.encode()).hexdigest(),
            secret_key_prefix=secret_key[:10],
        )


class Migration(migrations.Migration):
    dependencies = [
        ("audiences", "0008_erasure_redacted_rows"),
    ]

    operations = [
        migrations.AddField(
            model_name="source",
            name="secret_key",
            field=config.fields.EncryptedTextField(default="", editable=False),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="source",
            name="secret_key_digest",
            field=models.CharField(max_length=64, null=True, editable=False),
        ),
        migrations.AddField(
            model_name="source",
            name="secret_key_prefix",
            field=models.CharField(
                default="",
                editable=False,
                help_text="First characters of the secret key, for recognising it.",
                max_length=12,
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="source",
            name="previous_secret_key",
            field=config.fields.EncryptedTextField(blank=True, editable=False),
        ),
        migrations.AddField(
            model_name="source",
            name="previous_secret_key_digest",
            field=models.CharField(blank=True, db_index=True, editable=False, max_length=64),
        ),
        migrations.AddField(
            model_name="source",
            name="secret_rotated_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="source",
            name="cancel_page_frame_ancestors",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="Origins (https://… or 'self') allowed to embed the hosted cancellation page; empty: none.",
            ),
        ),
        migrations.RunPython(give_existing_sources_a_secret, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="source",
            name="secret_key_digest",
            field=models.CharField(editable=False, max_length=64, unique=True),
        ),
    ]
