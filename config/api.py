"""API plumbing shared by every endpoint: errors always come back as JSON with a readable message, and JSON
bodies are read within the limits of config.json_input."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import exception_handler

from config.json_input import JSONRejected, json_load


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser on orjson with the shared limits: a body nested too deep, holding a NUL, or not valid
    UTF-8 JSON is a 400 with the reason, instead of a RecursionError (500) or a database error on save.

    The body's size is bounded before any view runs (config.request_guard answers 413)."""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            return json_load(stream.read())
        except JSONRejected as error:
            raise ParseError(str(error)) from error


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
