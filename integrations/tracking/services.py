"""Writes of the intake layer: the log of calls the tracking API could not accept."""

from __future__ import annotations

from datetime import datetime

import orjson

from audiences.models import Source
from integrations.tracking.models import IngestionError
from integrations.tracking.segment import RejectedMessage, RequestRejected

# How deep the logged copy of a payload orjson cannot write goes; deeper containers are shown as "…".
PAYLOAD_LOG_DEPTH = 20


def _loggable(value: object, depth: int = 0) -> object:
    """A copy of a rejected call that orjson can always write: containers past PAYLOAD_LOG_DEPTH become "…", text
    that is not valid Unicode keeps its bad characters as backslash escapes, integers past 64 bits become text."""
    if isinstance(value, dict | list) and depth >= PAYLOAD_LOG_DEPTH:
        return "…"
    if isinstance(value, dict):
        return {str(_loggable(key, depth + 1)): _loggable(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_loggable(item, depth + 1) for item in value]
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode()
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return str(value)
    return value


def _truncated(payload: object) -> str:
    """The payload as JSON text for the log, cut to MAX_PAYLOAD_CHARS. orjson writes NUL as the escape `\\u0000`,
    which a text column stores; a payload too deep for it, or holding text that is not Unicode (only a rejected
    call can), is logged through _loggable."""
    try:
        text = orjson.dumps(payload).decode()
    except orjson.JSONEncodeError:
        text = orjson.dumps(_loggable(payload)).decode()
    return text[: IngestionError.MAX_PAYLOAD_CHARS]


def ingestion_errors_record(
    *,
    source: Source,
    route: str,
    received_at: datetime,
    rejected: list[RejectedMessage] | None = None,
    request_error: RequestRejected | None = None,
) -> int:
    """Log rejected calls (or a rejected request) in one INSERT, so the sender's developer can see why."""
    rows = [
        IngestionError(
            source=source,
            route=route,
            received_at=received_at,
            message_id=(item.message_id or "")[:100],
            error=item.error,
            payload=_truncated(item.payload),
        )
        for item in rejected or []
    ]
    if request_error is not None:
        rows.append(IngestionError(source=source, route=route, received_at=received_at, error=request_error.message))
    IngestionError.objects.bulk_create(rows)
    return len(rows)
