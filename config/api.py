"""API plumbing shared by every endpoint: errors always come back as JSON with a readable message."""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler


def json_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, with a top-level `error` string added so clients can show one message."""
    response = exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(data, dict) and "detail" in data:
        message = str(data["detail"])
    elif isinstance(data, dict):
        message = "; ".join(
            f"{field}: {' '.join(map(str, errors)) if isinstance(errors, list) else errors}"
            for field, errors in data.items()
        )
    else:
        message = " ".join(map(str, data)) if isinstance(data, list) else str(data)
    response.data = {"error": message, "details": data}
    return response
