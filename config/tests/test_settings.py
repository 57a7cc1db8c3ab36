"""Settings: the production profile passes Django's deployment checks and refuses to start without secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
