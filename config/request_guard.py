"""The project-wide guard every HTTP request passes, so no input and no database outage turns into a 500.

Before the view: a body over `DATA_UPLOAD_MAX_MEMORY_SIZE` is answered 413 whatever its Content-Encoding (DRF
reads a JSON body straight from the stream, past Django's own check); a URL, query string or form body holding a
NUL character or bytes that are not UTF-8 is answered 400 (PostgreSQL cannot store U+0000 in text, and Django
would quietly turn broken bytes into U+FFFD). When the view fails: the database being unreachable or too slow
(`OperationalError`, which is also how PostgreSQL's `statement_timeout` surfaces, and `InterfaceError`) is a 503
with `Retry-After`, so Segment's libraries and other clients retry; a body too large for Django's own check (a
multipart field) is a 413; a NUL that PostgreSQL refused from where no check looks (a multipart field, a header)
and input nested so deep that Python's parser recursed out (a JSON form field) are 400s.

API callers (`/api/`, the tracking API `/v1/`, webhooks) get JSON; people get a plain HTML page that needs no
database. The URL map's error handlers (`bad_request`, `page_not_found`, `server_error`) answer API callers in
JSON too, and turn a database outage met outside any view (in a middleware) into the same 503.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import DataError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views import defaults

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
API_PREFIXES = ("/api/", "/webhooks/")
TRACKING_PREFIX = "/v1/"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
MULTIPART_CONTENT_TYPE = "multipart/form-data"
UNTRANSLATABLE_CHARACTER = "22P05"
NUL_REFUSED = "The input contains a NUL character (\\u0000), which cannot be stored."
TITLES = {
    400: "Bad request",
    413: "Request too large",
    500: "Something went wrong",
    503: "Temporarily unavailable",
}


def _is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith((*API_PREFIXES, TRACKING_PREFIX))


def refusal(
    request: HttpRequest, *, status: int, code: str, message: str, retry_after: int | None = None
) -> HttpResponse:
    """The answer to a request that cannot be served: JSON `{"error", "code"}` for API callers (the tracking API's
    own shape on `/v1/`), else a self-contained HTML page rendered without the request, so without the database."""
    path = request.path_info
    response: HttpResponse
    if path.startswith(TRACKING_PREFIX):
        response = JsonResponse({"success": False, "code": code, "message": message, "error": message}, status=status)
        # analytics.js posts from customers' pages: without this a browser hides the answer from it.
        response["Access-Control-Allow-Origin"] = "*"
    elif path.startswith(API_PREFIXES):
        response = JsonResponse({"error": message, "code": code}, status=status)
    else:
        page = render_to_string("error.html", {"title": TITLES.get(status, "Error"), "message": message})
        response = HttpResponse(page, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def database_unavailable(request: HttpRequest, error: Exception) -> HttpResponse:
    """503 with Retry-After for a database that is down, restarting, refusing connections or too slow."""
    logger.warning("Database unavailable during %s %s: %s", request.method, request.path, error)
    return refusal(
        request,
        status=503,
        code="temporarily_unavailable",
        message="The service is temporarily unavailable; try again shortly.",
        retry_after=RETRY_AFTER_SECONDS,
    )


def request_too_large(request: HttpRequest) -> HttpResponse:
    limit_kb = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 1024
    return refusal(
        request, status=413, code="request_too_large", message=f"The request body is larger than {limit_kb} KB."
    )


def _text_problem(text: bytes, where: str) -> str | None:
    """Why the bytes of a URL, query string or form body (percent-decoded) cannot be used, or None."""
    if b"\x00" in text:
        return f"The {where} contains a NUL character (%00), which is never valid."
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return f"The {where} is not valid UTF-8."
    return None


def _input_problem(request: HttpRequest) -> str | None:
    # Django keeps the bytes of a path that are not UTF-8 as %XX escapes: decoding once more finds them (and a NUL).
    problem = _text_problem(unquote_to_bytes(request.path_info), "URL")
    query = request.META.get("QUERY_STRING", "")
    if problem is None and query:
        problem = _text_problem(unquote_to_bytes(query.encode("latin-1", errors="replace")), "query string")
    if problem is None and request.content_type == FORM_CONTENT_TYPE:
        problem = _text_problem(unquote_to_bytes(request.body.replace(b"+", b" ")), "form body")
    return problem


def _is_nul_refusal(error: DataError) -> bool:
    """psycopg refuses a NUL in a text parameter itself; PostgreSQL refuses `\\u0000` in jsonb (SQLSTATE 22P05)."""
    return "NUL (0x00)" in str(error) or getattr(error.__cause__, "sqlstate", None) == UNTRANSLATABLE_CHARACTER


def _too_large(request: HttpRequest) -> bool:
    """Django's own rule (every body but multipart uploads), checked before anything reads the body."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is None or request.content_type == MULTIPART_CONTENT_TYPE:
        return False
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0) > limit
    except ValueError:
        return False


class RequestGuardMiddleware:
    """Answers bad input and database outages with a clear 4xx/503 (module docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _too_large(request):
            return request_too_large(request)
        problem = _input_problem(request)
        if problem is not None:
            return refusal(request, status=400, code="invalid_input", message=problem)
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DATABASE_UNAVAILABLE):
            return database_unavailable(request, exception)
        if isinstance(exception, RequestDataTooBig):
            return request_too_large(request)
        if isinstance(exception, TooManyFieldsSent | TooManyFilesSent):
            return refusal(request, status=400, code="invalid_input", message=str(exception))
        if isinstance(exception, DataError) and _is_nul_refusal(exception):
            return refusal(request, status=400, code="invalid_input", message=NUL_REFUSED)
        if isinstance(exception, RecursionError):
            logger.warning("Input nested too deeply on %s %s", request.method, request.path)
            return refusal(request, status=400, code="invalid_input", message="The input is nested too deeply.")
        return None


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400 (a suspicious request Django refused before or outside a view): JSON for API callers."""
    if not _is_api(request):
        return defaults.bad_request(request, exception)
    return refusal(request, status=400, code="invalid_input", message="The request cannot be processed.")


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: an address no route matches is a JSON 404 for API callers, the 404 page for people."""
    if not _is_api(request):
        return defaults.page_not_found(request, exception)
    return refusal(request, status=404, code="not_found", message=f"There is nothing at {request.path}.")


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a database outage met outside a view (in a middleware) is still a 503; anything else is a 500
    in the caller's format (JSON for API callers)."""
    error = sys.exc_info()[1]
    if isinstance(error, DATABASE_UNAVAILABLE):
        return database_unavailable(request, error)
    return refusal(
        request, status=500, code="server_error", message="Something went wrong on our side; it has been logged."
    )
