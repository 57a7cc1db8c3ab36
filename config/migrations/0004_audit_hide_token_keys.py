"""Audit entries of API tokens named the token by its key (a token's primary key is the key itself): rewrite
them to name the token's user instead, as config.audit now records them."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def hide_token_keys(apps: Any, schema_editor: Any) -> None:
    AuditEntry = apps.get_model("project", "AuditEntry")
    for entry in AuditEntry.objects.filter(model="authtoken.Token"):
        owner = next((value for value in entry.changes.get("user_id", []) if value is not None), None)
        entry.object_id = str(owner) if owner is not None else "unknown"
        entry.object_repr = f"Token of user {entry.object_id}"
        entry.save(update_fields=["object_id", "object_repr"])


class Migration(migrations.Migration):
    dependencies = [("project", "0003_audit_log")]

    operations = [migrations.RunPython(hide_token_keys, migrations.RunPython.noop)]
