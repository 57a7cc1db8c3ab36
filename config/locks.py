"""Job locks: one holder of a named lock at a time, so a slow run never overlaps the next tick.

On PostgreSQL the lock is an advisory lock keyed by a 64-bit hash of its name, held by the database session:
a worker that crashes or loses its connection frees it at once — no lease to wait out, no row to clean up.
Outside a transaction the session-level lock (`pg_try_advisory_lock`) is taken and unlocked when the block ends.
Inside a transaction the transaction-level variant (`pg_try_advisory_xact_lock`) is taken instead: the COMMIT
or ROLLBACK that ends the transaction releases it, so a transaction aborted by an error — where no statement,
an unlock included, may run any more — cannot leave the lock behind. The lock then lasts until the transaction
ends, a little longer than the block, never shorter.

On any other database (SQLite, the embedded default) the lock is a lease row in `TaskLock`, taken with a
conditional UPDATE or an INSERT on its primary key: it expires after `ttl`, so a crashed holder blocks the job
at most that long (housekeeping deletes expired rows).

Not re-entrant, on purpose: PostgreSQL grants a session a lock it already holds, so the names held by this
thread's connection are kept here too, and a second acquisition in the same session (a nested call, a test
holding the lock around the job) is refused like a second worker's.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from config.models import TaskLock

logger = logging.getLogger(__name__)

DEFAULT_TTL = timedelta(minutes=10)


class _Held(threading.local):
    """The lock names this thread (whose database connection is its own) holds now."""

    def __init__(self) -> None:
        self.names: set[str] = set()


_held = _Held()


def lock_key(name: str) -> int:
    """The advisory lock key of a name: a stable signed 64-bit hash (the same in every process)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@contextmanager
def task_lock(name: str, *, ttl: timedelta = DEFAULT_TTL) -> Iterator[bool]:
    """Hold the named lock for the duration of the block; yields False when someone else holds it (another
    worker, or this very session further up the stack). `ttl` only bounds the SQLite lease of a crashed holder;
    a PostgreSQL lock is freed when its holder's session ends."""
    if name in _held.names:
        yield False
        return
    holder = _advisory(name) if connection.vendor == "postgresql" else _lease(name, ttl)
    with holder as acquired:
        if not acquired:
            yield False
            return
        _held.names.add(name)
        try:
            yield True
        finally:
            _held.names.discard(name)


@contextmanager
def _advisory(name: str) -> Iterator[bool]:
    key = lock_key(name)
    if connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [key])
            row = cursor.fetchone()
        yield bool(row and row[0])  # released by the end of the transaction, committed or rolled back
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        row = cursor.fetchone()
    acquired = bool(row and row[0])
    try:
        yield acquired
    finally:
        if acquired:
            _unlock(key, name)


def _unlock(key: int, name: str) -> None:
    """Release a session lock. A connection that broke meanwhile took the lock with it: nothing to release."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
    except DatabaseError:
        logger.warning("job lock %r: the session ended before the unlock (the server released it)", name)


@contextmanager
def _lease(name: str, ttl: timedelta) -> Iterator[bool]:
    holder = uuid.uuid4().hex
    acquired = _lease_take(name, holder, ttl)
    try:
        yield acquired
    finally:
        if acquired:
            TaskLock.objects.filter(name=name, holder=holder).delete()


def _lease_take(name: str, holder: str, ttl: timedelta) -> bool:
    now = timezone.now()
    with transaction.atomic():
        taken = TaskLock.objects.filter(name=name, expires_at__lte=now).update(holder=holder, expires_at=now + ttl)
        if taken:
            return True
        try:
            with transaction.atomic():
                TaskLock.objects.create(name=name, holder=holder, expires_at=now + ttl)
        except IntegrityError:
            return False
    return True
