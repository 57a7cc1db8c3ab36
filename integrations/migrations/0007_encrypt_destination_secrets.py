"""Destination secrets move to encrypted columns: the columns become text, then each stored value is encrypted
in place (raw SQL, because the field now expects ciphertext when it reads). Reversible: decrypt back."""

from typing import Any

from django.db import migrations

import config.fields
import integrations.destinations.models

_COLUMNS = ("signing_secret", "previous_signing_secret", "write_key")


def _rewrite(apps: Any, schema_editor: Any, convert: Any) -> None:
    table = apps.get_model("integrations", "Destination")._meta.db_table
    quote = schema_editor.quote_name
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"SELECT id, {', '.join(quote(c) for c in _COLUMNS)} FROM {quote(table)}")
        for row_id, *values in cursor.fetchall():
            converted = [convert(value) if value else value for value in values]
            assignments = ", ".join(f"{quote(c)} = %s" for c in _COLUMNS)
            cursor.execute(f"UPDATE {quote(table)} SET {assignments} WHERE id = %s", [*converted, row_id])


def encrypt_existing(apps: Any, schema_editor: Any) -> None:
    _rewrite(apps, schema_editor, config.fields.encrypt)


def decrypt_existing(apps: Any, schema_editor: Any) -> None:
    _rewrite(apps, schema_editor, config.fields.decrypt)


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0006_destinations"),
    ]

    operations = [
        migrations.AlterField(
            model_name="destination",
            name="previous_signing_secret",
            field=config.fields.EncryptedTextField(blank=True),
        ),
        migrations.AlterField(
            model_name="destination",
            name="signing_secret",
            field=config.fields.EncryptedTextField(default=integrations.destinations.models.signing_secret_generate),
        ),
        migrations.AlterField(
            model_name="destination",
            name="write_key",
            field=config.fields.EncryptedTextField(
                blank=True, help_text="Segment kind: the receiving source's write key."
            ),
        ),
        migrations.RunPython(encrypt_existing, decrypt_existing),
    ]
