"""Webhook signing secrets in the Standard Webhooks form.

Secrets made before (`tlsec_…`) were used as text for the HMAC key. Standard Webhooks libraries take
`whsec_<base64 of the key bytes>`, so each stored secret (and a previous one still signing after a rotation)
becomes `whsec_` + base64 of its text: the same key bytes, in the form a receiver's library reads. Going back
restores the converted ones; a secret made after the upgrade must be rotated after a downgrade.
"""

import base64
from collections.abc import Callable
from typing import Any

from django.db import migrations


def _standardised(secret: str) -> str:
    if not secret or secret.startswith("whsec_"):
        return secret
    return f"whsec_{base64.b64encode(secret.encode()).decode()}"


def _textual(secret: str) -> str:
    """Back to the text a converted secret was; a secret made after the upgrade (random bytes) stays as it is."""
    if not secret.startswith("whsec_"):
        return secret
    try:
        text = base64.b64decode(secret.removeprefix("whsec_")).decode()
    except UnicodeDecodeError:
        return secret
    return text if text.startswith("tlsec_") else secret


def _convert(apps: Any, convert: Callable[[str], str]) -> None:
    Destination = apps.get_model("integrations", "Destination")
    for destination in Destination.objects.only("signing_secret", "previous_signing_secret").iterator():
        destination.signing_secret = convert(destination.signing_secret)
        destination.previous_signing_secret = convert(destination.previous_signing_secret)
        destination.save(update_fields=["signing_secret", "previous_signing_secret"])


def forwards(apps: Any, schema_editor: Any) -> None:
    _convert(apps, _standardised)


def backwards(apps: Any, schema_editor: Any) -> None:
    _convert(apps, _textual)


class Migration(migrations.Migration):
    dependencies = [("integrations", "0010_stripe_delivery_signature_not_stored")]

    operations = [migrations.RunPython(forwards, backwards)]
