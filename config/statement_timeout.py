"""A time limit on every SQL statement of the web process (PostgreSQL), and of no other process.

A request stuck behind a slow query or a lock holds a gunicorn thread and a database connection for as long as
it waits; with `statement_timeout` PostgreSQL cancels the statement, Django raises OperationalError, and
config.request_guard answers 503 with Retry-After. Celery workers (backfills, segment evaluation, imports) and
management commands (migrations) legitimately run long statements, so the limit is set per connection by a
`connection_created` receiver that only the web entry points (config/wsgi.py, config/asgi.py) connect — every
WSGI/ASGI server loads those modules and no other process imports them. Not chosen: a `-c statement_timeout`
connection option (it would reach every process, and PgBouncer refuses startup options) or a gunicorn hook (it
would miss `runserver` and any other server).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created


def statement_timeout_for_this_process() -> None:
    """Give every database connection this process opens from now on the web statement timeout."""
    connection_created.connect(statement_timeout_set, dispatch_uid=__name__)


def statement_timeout_set(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """connection_created receiver: `DATABASE_STATEMENT_TIMEOUT_MS` for the session (0 leaves it off)."""
    timeout_ms: int = settings.DATABASE_STATEMENT_TIMEOUT_MS
    if connection.vendor != "postgresql" or timeout_ms <= 0:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('statement_timeout', %s, false)", [f"{timeout_ms}ms"])
