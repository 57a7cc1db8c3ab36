"""What GDPR erasure (audiences.privacy) does with what came in: the tracking API's error log and uploaded
import files.

Error-log rows are deleted whole (their payloads hold far more than the ids that found them: whatever the product
sent). Import uploads keep their row numbering: the person's rows are blanked in place, so a job that resumes
still starts at the right row.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings
from django.db import models

from audiences.privacy.rules import Action, ErasureRule, FileRewrite
from audiences.privacy.traces import PersonTraces
from integrations.tracking.models import ImportJob, IngestionError


def _ingestion_errors(traces: PersonTraces) -> models.QuerySet[Any]:
    return IngestionError.objects.all()


ERASURE_RULES = [
    ErasureRule("integrations.IngestionError", action=Action.DELETE, searched=_ingestion_errors),
]


def _mentions(traces: PersonTraces, value: Any) -> bool:
    return bool(traces.redact_json(value) != value)


def _csv_rewrite(source: Path, target: Path, traces: PersonTraces) -> int:
    blanked = 0
    with source.open(newline="", encoding="utf-8-sig") as reading, target.open("w", newline="") as writing:
        rows, out = csv.reader(reading), csv.writer(writing)
        header = next(rows, None)
        if header is None:
            return 0
        out.writerow(header)
        for row in rows:
            if row and _mentions(traces, dict(zip(header, row, strict=False))):
                row, blanked = [""] * len(row), blanked + 1
            out.writerow(row)
    return blanked


def _ndjson_rewrite(source: Path, target: Path, traces: PersonTraces) -> int:
    blanked = 0
    with source.open(encoding="utf-8-sig") as reading, target.open("w") as writing:
        for line in reading:
            if line.strip():
                try:
                    mentioned = _mentions(traces, orjson.loads(line))
                except orjson.JSONDecodeError:
                    mentioned = traces.redact_text(line) != line
                if mentioned:
                    # An empty call keeps the line's number; imported later, it is rejected for lack of an id.
                    line, blanked = "{}\n", blanked + 1
            writing.write(line)
    return blanked


def import_files_sweep(traces: PersonTraces) -> list[FileRewrite]:
    """Uploaded import files (under IMPORT_DIR; a file the command imported from elsewhere is the operator's)
    with the person's rows blanked, prepared next to each file for the erasure to swap in."""
    uploads = Path(settings.IMPORT_DIR).resolve()
    rewrites: list[FileRewrite] = []
    prepared: Path | None = None
    try:
        for path_text, file_format in ImportJob.objects.values_list("file_path", "file_format").distinct():
            path = Path(path_text).resolve()
            if not path.is_file() or not path.is_relative_to(uploads):
                continue
            prepared = path.with_name(f"{path.name}.erasing")
            rewrite = _csv_rewrite if file_format == ImportJob.Format.CSV else _ndjson_rewrite
            if rewrite(path, prepared, traces):
                rewrites.append(FileRewrite(label="integrations.ImportJob file", path=path, prepared=prepared))
            else:
                prepared.unlink()
            prepared = None
    except BaseException:
        for leftover in [*(rewrite.prepared for rewrite in rewrites), *([prepared] if prepared else [])]:
            leftover.unlink(missing_ok=True)
        raise
    return rewrites
