"""The one place that reads the environment.

Every setting that can differ between a laptop, CI and production is read here, through django-environ.
Development falls back to embedded defaults that need no server (SQLite, a file-system Celery broker);
production settings call :func:`require` so a missing value stops start-up instead of running half-configured.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

VAR_DIR = Path(env.str("TRIALLOOP_VAR_DIR", default=str(BASE_DIR / "var")))


def require(name: str) -> str:
    """Return a required variable or fail loudly (used by production settings)."""
    value = env.str(name, default="")
    if not value:
        raise environ.ImproperlyConfigured(f"Set the {name} environment variable.")
    return str(value)


def local_secret(name: str, *, nbytes: int = 48) -> str:
    """A per-installation secret for development: read from the environment, else generated once into var/.

    Keeps secrets out of the repository while letting `make run` work on a fresh clone.
    """
    value = env.str(name, default="")
    if value:
        return str(value)
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    path = VAR_DIR / f"{name.lower()}.txt"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(nbytes))
        path.chmod(0o600)
    return path.read_text().strip()


def database_config() -> dict[str, Any]:
    """DATABASE_URL when given (postgres://… for PostgreSQL), else an embedded SQLite file in WAL mode."""
    default_sqlite = f"sqlite:///{VAR_DIR / 'trialloop.sqlite3'}"
    config: dict[str, Any] = env.db_url("DATABASE_URL", default=default_sqlite)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        Path(config["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        config["OPTIONS"] = {
            # WAL lets the web process read while the worker writes; the busy timeout and IMMEDIATE
            # transactions turn lock contention into short waits instead of "database is locked".
            "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;PRAGMA busy_timeout=20000",
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
        }
    else:
        config.setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
        config["CONN_HEALTH_CHECKS"] = True
        if prepared_statements_enabled():
            # Django turns psycopg's prepared statements off; this turns them on for the statements that ask
            # (the tracking API's, see audiences.prepared.postgres_rows) and for nothing else, and has
            # PostgreSQL plan them once: left to choose, it re-planned the event INSERT for every batch (0.6 ms of
            # its CPU) although the statement has one sensible plan.
            options = config.setdefault("OPTIONS", {})
            options["prepare_threshold"] = PREPARE_ONLY_WHEN_ASKED
            options["options"] = f"{options.get('options', '')} -c plan_cache_mode=force_generic_plan".strip()
    return config


PREPARE_ONLY_WHEN_ASKED = 2**31 - 1  # psycopg's count of runs before it prepares a statement by itself


def prepared_statements_enabled() -> bool:
    """DATABASE_PREPARED_STATEMENTS (default on); off behind PgBouncer, which refuses the connection option that
    comes with it and, in transaction pooling before 1.21, cannot carry prepared statements."""
    return bool(env.bool("DATABASE_PREPARED_STATEMENTS", default=True))


def celery_broker() -> tuple[str, dict[str, Any]]:
    """CELERY_BROKER_URL when given (redis://… or amqp://…), else a file-system broker under var/."""
    url = env.str("CELERY_BROKER_URL", default="filesystem://")
    options: dict[str, Any] = {}
    if url.startswith("filesystem://"):
        queue_dir = VAR_DIR / "celery" / "queue"
        processed_dir = VAR_DIR / "celery" / "processed"
        control_dir = VAR_DIR / "celery" / "control"  # exchange tables; kombu's default is ./control in the cwd
        for folder in (queue_dir, processed_dir, control_dir):
            folder.mkdir(parents=True, exist_ok=True)
        options = {
            "data_folder_in": str(queue_dir),
            "data_folder_out": str(queue_dir),
            "processed_folder": str(processed_dir),
            "control_folder": str(control_dir),
            "store_processed": False,
        }
    return str(url), options


def email_config() -> dict[str, Any]:
    """EMAIL_URL (smtp://user:pass@host:port, smtp+tls://… or smtp+ssl://…) when given, else EMAIL_HOST/PORT
    when EMAIL_HOST is set, else Django's console backend (the embedded default: messages go to the log)."""
    url = env.str("EMAIL_URL", default="")
    if url:
        return dict(env.email_url("EMAIL_URL"))
    host = env.str("EMAIL_HOST", default="")
    if host:
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": host,
            "EMAIL_PORT": env.int("EMAIL_PORT", default=25),
            "EMAIL_HOST_USER": env.str("EMAIL_HOST_USER", default=""),
            "EMAIL_HOST_PASSWORD": env.str("EMAIL_HOST_PASSWORD", default=""),
            "EMAIL_USE_TLS": env.bool("EMAIL_USE_TLS", default=False),
            "EMAIL_USE_SSL": env.bool("EMAIL_USE_SSL", default=False),
        }
    return {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
