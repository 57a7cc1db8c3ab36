"""Historical import of events and customers from CSV or NDJSON files.

Every row becomes a Segment-style call and goes through the same validation (integrations.tracking.segment) and the
same store (audiences.ingestion) as live traffic, in chunks. A row without a messageId gets one derived from
its content, so importing a file twice stores nothing twice; the job's position advances in the same
transaction as each chunk, so a run that stops resumes where it left off.
"""

from __future__ import annotations

import csv
import hashlib
import uuid
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from audiences.ingestion import IncomingMessage, messages_ingest
from audiences.models import Source
from integrations.tracking import segment
from integrations.tracking.models import ImportJob

CHUNK_ROWS = 1000
# CSV columns that map onto the call itself; any other column of a customers file is a trait.
CALL_COLUMNS = {
    "type": "type",
    "event": "event",
    "name": "name",
    "userid": "userId",
    "user_id": "userId",
    "anonymousid": "anonymousId",
    "anonymous_id": "anonymousId",
    "messageid": "messageId",
    "message_id": "messageId",
    "timestamp": "timestamp",
    "groupid": "groupId",
    "group_id": "groupId",
    "previousid": "previousId",
    "previous_id": "previousId",
}
JSON_COLUMNS = {"properties", "traits", "context"}


class ImportRejected(ValueError):
    """A file that cannot be imported at all (unknown format, unreadable); the message says why."""


def detect_format(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix == ".csv":
        return ImportJob.Format.CSV
    if suffix in (".ndjson", ".jsonl", ".json"):
        return ImportJob.Format.NDJSON
    raise ImportRejected(f"Cannot tell the format of {name!r}: use a .csv, .ndjson or .jsonl file.")


def _rows(path: Path, file_format: str) -> Iterator[tuple[int, Any]]:
    """(row number, raw row) for every data row; a line that is not JSON yields its error text instead."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        if file_format == ImportJob.Format.CSV:
            for number, row in enumerate(csv.DictReader(handle), start=1):
                yield number, row
            return
        number = 0
        for line in handle:
            if not line.strip():
                continue
            number += 1
            try:
                yield number, orjson.loads(line)
            except orjson.JSONDecodeError as error:
                yield number, ValueError(f"not valid JSON ({error})")


def count_rows(path: Path, file_format: str) -> int:
    """Data rows in the file (read once, before importing, for the progress bar)."""
    return sum(1 for _ in _rows(path, file_format))


def _from_csv(row: dict[str, str | None], kind: str) -> dict[str, Any]:
    call: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for column, value in row.items():
        if column is None or value is None or value == "":
            continue
        key = column.strip()
        lowered = key.lower()
        if lowered in CALL_COLUMNS:
            call[CALL_COLUMNS[lowered]] = value
        elif lowered in JSON_COLUMNS:
            try:
                call[lowered] = orjson.loads(value)
            except orjson.JSONDecodeError as error:
                raise ValueError(f"column {key} is not valid JSON ({error})") from error
        elif lowered.startswith(("properties.", "traits.")):
            extra[key.split(".", 1)[1]] = value
        else:
            extra[key] = value
    if kind == ImportJob.Kind.CUSTOMERS:
        call["traits"] = {**extra, **call.get("traits", {})}
    elif extra:
        call["properties"] = {**extra, **call.get("properties", {})}
    return call


def row_to_call(raw: Any, kind: str, file_format: str) -> dict[str, Any]:
    """A file row as a Segment call: customers rows become identify calls, events rows keep their type."""
    if isinstance(raw, ValueError):
        raise raw
    if file_format == ImportJob.Format.CSV:
        call = _from_csv(raw, kind)
    elif isinstance(raw, dict):
        call = dict(raw)
        if kind == ImportJob.Kind.CUSTOMERS and "traits" not in call:
            ids = {"userId", "anonymousId", "messageId", "timestamp", "type"}
            call = {
                **{k: v for k, v in call.items() if k in ids},
                "traits": {k: v for k, v in call.items() if k not in ids},
            }
    else:
        raise ValueError("each line must be a JSON object")
    if kind == ImportJob.Kind.CUSTOMERS:
        call["type"] = "identify"
    else:
        call.setdefault("type", "track")
    if not call.get("messageId"):
        digest = hashlib.sha256(orjson.dumps(call, option=orjson.OPT_SORT_KEYS)).hexdigest()[:40]
        call["messageId"] = f"import-{digest}"
    return call


def import_job_create(
    *, source: Source, kind: str, path: Path, original_name: str, created_by: Any = None
) -> ImportJob:
    """Register a file for import after checking that it can be read; counts its rows for the progress bar."""
    file_format = detect_format(original_name)
    try:
        total = count_rows(path, file_format)
    except (UnicodeDecodeError, csv.Error) as error:
        raise ImportRejected(f"Cannot read {original_name!r}: {error}") from error
    return ImportJob.objects.create(
        source=source,
        kind=kind,
        file_format=file_format,
        file_path=str(path),
        original_name=original_name,
        total_rows=total,
        created_by=created_by,
    )


def import_upload_store(upload: UploadedFile) -> Path:
    """Save an uploaded file under IMPORT_DIR with a unique name; returns its path."""
    directory = Path(settings.IMPORT_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{uuid.uuid4().hex}-{Path(upload.name or 'upload').name}"
    with path.open("wb") as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
    return path


def _chunks(job: ImportJob) -> Iterator[list[tuple[int, Any]]]:
    rows = islice(_rows(Path(job.file_path), job.file_format), job.processed_rows, None)
    while chunk := list(islice(rows, CHUNK_ROWS)):
        yield chunk


def import_job_run(*, job: ImportJob, on_progress: Callable[[ImportJob], None] | None = None) -> ImportJob:
    """Import the rows not imported yet, a chunk per transaction; safe to run again after a failure."""
    job.status, job.started_at, job.error = ImportJob.Status.RUNNING, job.started_at or timezone.now(), ""
    job.save(update_fields=["status", "started_at", "error", "updated_at"])
    try:
        for chunk in _chunks(job):
            received_at = timezone.now()
            messages: list[IncomingMessage] = []
            rejected: list[dict[str, Any]] = []
            for number, raw in chunk:
                try:
                    call = row_to_call(raw, job.kind, job.file_format)
                    messages.append(segment.normalise_message(call, call_type=None, received_at=received_at))
                except ValueError as error:
                    rejected.append({"row": number, "error": str(error)})
            with transaction.atomic():
                result = messages_ingest(source=job.source, messages=messages) if messages else None
                job.processed_rows += len(chunk)
                job.stored += result.stored if result else 0
                job.duplicates += result.duplicates if result else 0
                job.rejected_count += len(rejected)
                room = ImportJob.MAX_REJECTED_KEPT - len(job.rejected)
                job.rejected = [*job.rejected, *rejected[: max(room, 0)]]
                job.save()
            if on_progress is not None:
                on_progress(job)
    except Exception as error:
        job.status, job.error = ImportJob.Status.FAILED, f"{type(error).__name__}: {error}"
        job.save(update_fields=["status", "error", "updated_at"])
        raise
    job.status, job.finished_at = ImportJob.Status.DONE, timezone.now()
    job.save(update_fields=["status", "finished_at", "updated_at"])
    return job
