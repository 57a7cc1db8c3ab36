"""Destination secrets are ciphertext in the database and clear text in Python; old keys still decrypt; the
migration encrypts values stored before it."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from config.fields import decrypt, encrypt
from integrations.destinations.models import Destination
from integrations.destinations.services import destination_create


@pytest.fixture(autouse=True)
def receivers_on_loopback(settings: Any) -> None:
    settings.DESTINATIONS_ALLOW_PRIVATE_URLS = True


def _raw(destination_id: int) -> tuple[str, str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT signing_secret, previous_signing_secret, write_key FROM integrations_destination WHERE id = %s",
            [destination_id],
        )
        row = cursor.fetchone()
    assert row is not None
    return row[0], row[1], row[2]


@pytest.mark.django_db
class TestEncryptedSecrets:
    def test_the_database_holds_ciphertext_and_python_the_secret(self) -> None:
        destination = destination_create(
            name="Segment",
            kind="segment",
            url="http://127.0.0.1:9",
            kinds=["audience_entered"],
            write_key="wk_live_123",
        )
        signing, previous, write_key = _raw(destination.pk)

        assert destination.signing_secret not in signing and signing.startswith("gAAAAA")
        assert previous == ""  # nothing to hide
        assert "wk_live_123" not in write_key
        fresh = Destination.objects.get(pk=destination.pk)
        assert (fresh.signing_secret, fresh.write_key) == (destination.signing_secret, "wk_live_123")

    def test_a_rotated_secret_key_still_decrypts_through_the_fallbacks(self, settings: Any) -> None:
        token = encrypt("tlsec_abc")
        settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
        settings.SECRET_KEY = "a-brand-new-secret-key-of-sufficient-length-0123456789"
        assert decrypt(token) == "tlsec_abc"

        settings.SECRET_KEY_FALLBACKS = []
        with pytest.raises(ImproperlyConfigured, match="SECRET_KEY_FALLBACKS"):
            decrypt(token)


@pytest.mark.django_db(transaction=True)
def test_the_migration_encrypts_values_stored_in_clear() -> None:
    executor = MigrationExecutor(connection)
    before = [("integrations", "0006_destinations")]
    after = [("integrations", "0007_encrypt_destination_secrets")]
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    OldDestination = old_apps.get_model("integrations", "Destination")
    old = OldDestination.objects.create(
        name="Old", kind="webhook", url="http://127.0.0.1:9/hook", signing_secret="tlsec_old", kinds=[]
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)

    signing, _, _ = _raw(old.pk)
    assert signing != "tlsec_old"
    assert decrypt(signing) == "tlsec_old"
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    # Later migrations keep the key, in the Standard Webhooks form (integrations.0011).
    assert Destination.objects.get(pk=old.pk).signing_secret == "whsec_" + base64.b64encode(b"tlsec_old").decode()
