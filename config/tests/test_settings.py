"""Settings: the production profile passes Django's deployment checks and refuses to start without secrets; the
embedded profile `make run` serves runs with DEBUG off, a generated secret key and the app's own error pages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.http import Http404
from django.test import Client, RequestFactory
from django.views.defaults import bad_request, page_not_found, permission_denied, server_error

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "ALLOWED_HOSTS"}}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


def test_production_settings_pass_check_deploy() -> None:
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_SETTINGS_MODULE="config.settings.prod",
        SECRET_KEY="a-real-deployment-would-use-a-long-random-value-" + "x" * 40,
        ALLOWED_HOSTS="trialloop.example.com",
    )
    assert result.returncode == 0, result.stderr + result.stdout


def test_production_settings_refuse_to_start_without_a_secret_key() -> None:
    result = run_manage("check", DJANGO_SETTINGS_MODULE="config.settings.prod", ALLOWED_HOSTS="x.example.com")
    assert result.returncode != 0
    assert "Set the SECRET_KEY environment variable" in result.stderr


def _entry_point_settings(tmp_path: Path, entry: str, **env: str) -> list[str]:
    """DEBUG and SECRET_KEY as an entry point (`manage.py`, `config.wsgi`, `config.celery`) starts without
    DJANGO_SETTINGS_MODULE, on a data folder of its own."""
    environment = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DJANGO_SETTINGS_MODULE"}}
    environment.update({"TRIALLOOP_VAR_DIR": str(tmp_path), **env})
    code = "from django.conf import settings; print('settings:', settings.DEBUG, settings.SECRET_KEY)"
    if entry != "manage.py":
        code = f"import {entry}; {code}"
    command = (
        [sys.executable, "manage.py", "shell", "-c", code] if entry == "manage.py" else [sys.executable, "-c", code]
    )
    result = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return next(line for line in result.stdout.splitlines() if line.startswith("settings: ")).split()[1:]


@pytest.mark.parametrize("entry", ["manage.py", "config.wsgi", "config.celery"])
def test_make_run_serves_with_debug_off_and_a_secret_key_kept_in_the_data_folder(tmp_path: Path, entry: str) -> None:
    debug, secret_key = _entry_point_settings(tmp_path, entry)

    assert debug == "False"
    key_file = tmp_path / "secret_key.txt"
    assert key_file.read_text().strip() == secret_key and len(secret_key) >= 50
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert _entry_point_settings(tmp_path, entry)[1] == secret_key, "the next start keeps the key"


def test_debug_only_when_a_developer_asks(tmp_path: Path) -> None:
    assert _entry_point_settings(tmp_path, "config.wsgi", DEBUG="1")[0] == "True"
    assert _entry_point_settings(tmp_path, "config.wsgi", DEBUG="0")[0] == "False"


class TestErrorPages:
    """With DEBUG off visitors see the app's own pages, styled like the rest of it, for every error Django
    renders a template for."""

    def test_server_error(self, rf: RequestFactory) -> None:
        page = server_error(rf.get("/")).content.decode()
        assert "Something went wrong" in page and "css/trialloop.css" in page

    def test_bad_request(self, rf: RequestFactory) -> None:
        page = bad_request(rf.get("/"), SuspiciousOperation("bad host")).content.decode()
        assert "Bad request" in page and "css/trialloop.css" in page

    @pytest.mark.django_db
    def test_not_found_and_forbidden(self, rf: RequestFactory) -> None:
        request = rf.get("/nothing/")
        request.user = AnonymousUser()
        assert "css/trialloop.css" in page_not_found(request, Http404()).content.decode()
        assert "css/trialloop.css" in permission_denied(request, PermissionDenied()).content.decode()

    def test_an_unhandled_exception_shows_the_app_page(self, client: Client, settings: Any) -> None:
        settings.DEBUG = False
        client.raise_request_exception = False
        response = client.get("/integrations/debugger/", HTTP_HOST="evil.example")
        assert response.status_code == 400
        assert "Bad request" in response.content.decode()
