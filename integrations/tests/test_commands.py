"""`manage.py create_source`: prints a working write key and secret key once; refuses a duplicate name."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from audiences.models import Source
from audiences.selectors import source_for_secret_key, source_for_write_key


@pytest.mark.django_db
def test_create_source_prints_a_working_write_key_then_secret_key(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("create_source", "Backend")
    write_key, secret_key = capsys.readouterr().out.split()
    source = Source.objects.get(name="Backend")
    assert source_for_write_key(write_key) == source
    assert secret_key.startswith("tlsk_")
    assert source_for_secret_key(secret_key) == source


@pytest.mark.django_db
def test_create_source_refuses_a_taken_name() -> None:
    call_command("create_source", "Backend")
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_source", "backend")
    assert Source.objects.count() == 1
