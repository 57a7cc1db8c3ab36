"""The Segment-compatible tracking API: `POST /v1/<call>`, answered once the accepted calls are durable.

A thin view: parse and authenticate (integrations.tracking.segment), store (audiences.ingestion.messages_ingest), log
what was rejected (integrations.tracking.services). Plain Django rather than DRF, because this is the hot path.
"""

from __future__ import annotations

from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from audiences.ingestion import messages_ingest
from audiences.models import Source
from audiences.selectors import source_for_write_key
from integrations.tracking import segment
from integrations.tracking.plans import tracking_plan_apply, violations_record
from integrations.tracking.services import ingestion_errors_record

BATCH_ROUTES = {"batch", "import", "b"}
SINGLE_ROUTES = {**{t: t for t in segment.MESSAGE_TYPES}, **segment.SHORT_ROUTES}
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Content-Encoding",
    "Access-Control-Max-Age": "86400",
}


def _json(data: dict[str, Any], status: int = 200) -> HttpResponse:
    response = HttpResponse(orjson.dumps(data), content_type="application/json", status=status)
    for header, value in CORS_HEADERS.items():
        response[header] = value
    return response


def _error(message: str, *, status: int, code: str) -> HttpResponse:
    # `code` and `message` are what Segment's libraries read; `error` is what our other endpoints answer.
    return _json({"success": False, "code": code, "message": message, "error": message}, status=status)


def _declared_length(request: HttpRequest) -> int:
    """The body's Content-Length (0 when absent or garbled: the body read is then checked for its real size)."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


@csrf_exempt
def tracking_call(request: HttpRequest, route: str) -> HttpResponse:
    """Accept one call (`/v1/track`, `/v1/t`, ...) or a batch (`/v1/batch`, `/v1/import`, `/v1/b`)."""
    if route not in BATCH_ROUTES and route not in SINGLE_ROUTES:
        return _error(f"Unknown route /v1/{route}.", status=404, code="not_found")
    if request.method == "OPTIONS":
        return _json({})
    if request.method != "POST":
        return _error("Use POST.", status=405, code="method_not_allowed")
    received_at = timezone.now()
    call_type = None if route in BATCH_ROUTES else SINGLE_ROUTES[route]
    authorization = request.headers.get("Authorization", "")
    source: Source | None = None
    try:
        if authorization.lower().startswith("basic "):
            source = source_for_write_key(segment.write_key_from(authorization, {}))
        if _declared_length(request) > segment.MAX_REQUEST_BYTES:
            raise segment.too_large()  # refused before the body is read, whatever its Content-Encoding
        body = segment.parse_request_body(request.body, request.headers.get("Content-Encoding", ""))
        if source is None:
            source = source_for_write_key(segment.write_key_from(authorization, body))
        if source is None:
            return _error("Invalid write key.", status=401, code="invalid_write_key")
        accepted, rejected = segment.split_batch(body, call_type=call_type, received_at=received_at)
    except segment.RequestRejected as rejection:
        if source is not None:
            ingestion_errors_record(source=source, route=route, received_at=received_at, request_error=rejection)
        return _error(rejection.message, status=rejection.status, code=rejection.code)

    if rejected:
        ingestion_errors_record(source=source, route=route, received_at=received_at, rejected=rejected)
    if call_type is not None and rejected:
        return _error(rejected[0].error, status=400, code="invalid_message")
    plan = tracking_plan_apply(source=source, messages=accepted, received_at=received_at)
    violations_record(plan.violations)
    result = messages_ingest(source=source, messages=plan.kept) if plan.kept else None
    response: dict[str, Any] = {"success": True}
    if call_type is None:
        response["stored"] = result.stored if result else 0
        response["duplicates"] = result.duplicates if result else 0
        response["suppressed"] = result.suppressed if result else 0
        response["blocked"] = len(plan.blocked)
        response["rejected"] = [{"index": r.index, "messageId": r.message_id, "error": r.error} for r in rejected]
    return _json(response)
