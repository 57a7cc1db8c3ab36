"""The tracking API's hot-path statements on psycopg's own cursor: server-side binding, arrays sent in binary,
prepared once per connection. Identity resolution (audiences.identity) and event insertion (audiences.ingestion)
both run theirs through it; nothing else does (config.env turns prepared statements on only for those that ask).
"""

from __future__ import annotations

from typing import Any

import psycopg
from django.db import connection
from psycopg.types.numeric import Int8BinaryDumper, Int8Dumper


def postgres_rows(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """Run a query on psycopg's own cursor: server-side binding, arrays sent in binary (the hot path).

    The few statements of the hot path are prepared on each connection (Django prepares none of its own) and
    run on their generic plans (config.env.database_config): planning them for every batch cost PostgreSQL
    about 0.8 ms of CPU per batch, a sixth of its share.
    DATABASE_PREPARED_STATEMENTS=false (config.env) turns this off: psycopg then ignores `prepare`.
    """
    connection.ensure_connection()
    # Django's wrapper turns psycopg's errors into its own (a deadlock into OperationalError, a unique violation into
    # IntegrityError), which messages_ingest retries.
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        # Every int as bigint: left to itself psycopg sends the smallest type that holds the values (smallint[] while
        # ids are below 32768, integer[] after), and each new type is another statement to prepare and plan.
        cursor.adapters.register_dumper(int, Int8BinaryDumper)
        cursor.adapters.register_dumper(int, Int8Dumper)
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall()
