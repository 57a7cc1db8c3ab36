"""Writes of the integrations layer: the log of calls the tracking API could not accept."""

from __future__ import annotations

from datetime import datetime

import orjson

from audiences.models import Source
from integrations.models import IngestionError
from integrations.segment import RejectedMessage, RequestRejected


def _truncated(payload: object) -> str:
    try:
        text = orjson.dumps(payload).decode()
    except TypeError:
        text = repr(payload)
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
