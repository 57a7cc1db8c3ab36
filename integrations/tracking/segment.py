"""The Segment tracking-API wire format: parsing, limits and validation of incoming calls.

Pure functions with no database access: the HTTP view reads the body through `parse_request_body`, turns each
call into an `IncomingMessage` with `normalise_message` (or learns why it cannot), and hands the valid ones to
`audiences.ingestion.messages_ingest`. Facts mirrored from Segment's HTTP API and its official libraries:
write key as HTTP Basic user name or `writeKey` in the body, gzip bodies, JSON sent as text/plain, 32 KB per
call, 500 KB per request, and `timestamp = receivedAt − (sentAt − originalTimestamp)`.

One bad call never costs its neighbours: whatever a call holds that cannot be stored (nesting past the limit at any
depth, NUL, invalid UTF-8, unpaired surrogates, a time outside the accepted window) rejects that call alone, with
its reason. Only a body that is not JSON at all, or is too large, is refused as a whole.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from django.utils.dateparse import parse_datetime

from audiences.api_auth import basic_user
from audiences.ingestion import IncomingMessage

MAX_MESSAGE_BYTES = 32 * 1024
MAX_REQUEST_BYTES = 500 * 1024
MAX_BATCH_MESSAGES = 2500
MAX_MESSAGE_ID_LENGTH = 100
MAX_ID_LENGTH = 255
MAX_EVENT_NAME_LENGTH = 200
# Any date-time a client sends must parse within these years (so the clock correction cannot leave datetime's range)…
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(3000, 1, 1, tzinfo=UTC)
# …and the event time stored (after the correction) must fall in this window: a broken clock would otherwise plant
# events decades ahead, where they would sit at the top of every timeline and inside no time window ever.
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
MAX_FUTURE = timedelta(hours=24)
ORJSON_MAX_NESTING = 254
NESTING_HEADROOM = 54
MAX_NESTING = ORJSON_MAX_NESTING - NESTING_HEADROOM
# A body orjson refuses is read again by a lenient parser (see parse_json) after every container nested deeper
# than this is replaced by null: the call holding it is more than MAX_NESTING deep either way, so it is rejected
# alone, and the parser's recursion stays far from Python's limit.
LENIENT_NESTING_CUT = MAX_NESTING + 8
# Strings and brackets of a JSON text, for finding the containers nested past LENIENT_NESTING_CUT.
JSON_STRUCTURE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
# `\u0000` in encoded JSON, unless its backslash is itself escaped (an odd run of backslashes before `u0000`).
ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
ESCAPED_NUL_SEQUENCE = rb"\u0000"

MESSAGE_TYPES = {"track", "identify", "page", "screen", "group", "alias"}
# analytics.js's short routes and their call types; `b` is its batch route.
SHORT_ROUTES = {"t": "track", "i": "identify", "p": "page", "s": "screen", "g": "group", "a": "alias"}


class RequestRejected(Exception):
    """The whole request is unusable (bad JSON, too large, no write key): answered with `status`, nothing stored."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


@dataclass
class RejectedMessage:
    """A call inside a batch that could not be accepted, with the reason; its neighbours are still stored."""

    index: int
    message_id: str | None
    error: str
    payload: Any


def decompress(body: bytes, content_encoding: str) -> bytes:
    """Undo `Content-Encoding: gzip` (or deflate), refusing bodies that inflate past the request limit."""
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise RequestRejected(f"Unsupported Content-Encoding {content_encoding!r}; send gzip or no encoding.")
    try:
        inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
        data = inflater.decompress(body, MAX_REQUEST_BYTES + 1)
    except (zlib.error, gzip.BadGzipFile) as error:
        raise RequestRejected(f"The body is not valid {encoding} data ({error}).") from error
    if len(data) > MAX_REQUEST_BYTES or inflater.unconsumed_tail:
        raise too_large()
    return data


def too_large() -> RequestRejected:
    """The refusal of a body over MAX_REQUEST_BYTES, as sent or once decompressed (413: Segment's libraries do not
    retry it)."""
    return RequestRejected(
        f"The request is larger than {MAX_REQUEST_BYTES // 1024} KB.", status=413, code="request_too_large"
    )


def _cut_deep_containers(text: str) -> str:
    """The JSON text with every container that opens deeper than LENIENT_NESTING_CUT replaced by null."""
    pieces: list[str] = []
    depth = kept_from = 0
    cut_start: int | None = None
    for token in JSON_STRUCTURE.finditer(text):
        symbol = token.group()
        if symbol in "[{":
            depth += 1
            if depth == LENIENT_NESTING_CUT + 1 and cut_start is None:
                cut_start = token.start()
        elif symbol in "]}":
            if depth == LENIENT_NESTING_CUT + 1 and cut_start is not None:
                pieces += [text[kept_from:cut_start], "null"]
                kept_from, cut_start = token.end(), None
            depth -= 1
    pieces.append(text[kept_from:])
    return "".join(pieces)


def _json_number(text: str) -> int | float:
    """A number as orjson reads it: an integer within 64 bits stays one, anything else is a finite float."""
    if "." not in text and "e" not in text.lower() and len(text) <= 20:
        value = int(text)
        if -(2**63) <= value < 2**64:
            return value
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"the number {text[:30]} is out of range")
    return number


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def parse_json(data: bytes) -> Any:
    """A request's JSON, read so that one bad call cannot make the whole batch unreadable.

    orjson reads almost every body. What it refuses for the whole document although the damage sits inside one
    call — nesting past its 1,024 levels, bytes that are not UTF-8, a `\\ud800` escape without its pair, raw control
    characters in a string — is read again by the standard library on a lenient copy: invalid bytes become lone
    surrogates (which the call's encoding check then rejects, see EncodedSize), over-deep containers become null
    (the call is rejected for its depth), control characters are kept. A body still unreadable is refused.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        fast_error = error
    try:
        text = _cut_deep_containers(data.decode("utf-8", "surrogateescape"))
        return json.loads(
            text, strict=False, parse_int=_json_number, parse_float=_json_number, parse_constant=_refuse_constant
        )
    except (ValueError, RecursionError):
        raise RequestRejected(f"The body is not valid JSON: {fast_error}.") from fast_error


def parse_request_body(body: bytes, content_encoding: str = "") -> dict[str, Any]:
    """Bytes of a request (JSON, possibly gzip, whatever the Content-Type says) to its top-level JSON object."""
    if len(body) > MAX_REQUEST_BYTES:
        raise too_large()
    data = decompress(body, content_encoding)
    if not data.strip():
        raise RequestRejected("The request body is empty; send a JSON object.")
    parsed = parse_json(data)
    if not isinstance(parsed, dict):
        raise RequestRejected("The body must be a JSON object.")
    return parsed


def write_key_from(authorization: str, body: dict[str, Any]) -> str:
    """The write key: HTTP Basic user name (password empty), else `writeKey` in the body."""
    try:
        user = basic_user(authorization)
    except ValueError as error:
        raise RequestRejected(str(error), status=401) from error
    if user:
        return user
    write_key = body.get("writeKey")
    if isinstance(write_key, str) and write_key:
        if not write_key.isascii():  # keys are URL-safe base64; anything else (a lone surrogate too) is no key
            raise RequestRejected("Invalid write key.", status=401, code="invalid_write_key")
        return write_key
    raise RequestRejected(
        "No write key: send it as the HTTP Basic user name or as writeKey in the body.",
        status=401,
        code="missing_write_key",
    )


def _id(value: Any, field_name: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{field_name} must be a string")
    text = str(value)
    if len(text) > MAX_ID_LENGTH:
        raise ValueError(f"{field_name} is longer than {MAX_ID_LENGTH} characters")
    return text


def _time(value: Any, field_name: str) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field_name} must be an ISO 8601 date-time string")
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise ValueError(f"{field_name} {value!r} is not an ISO 8601 date-time")
    if parsed.tzinfo is None:
        raise ValueError(f"{field_name} {value!r} has no time zone")
    # Bounded so that the clock correction below and the conversion to UTC cannot leave datetime's range.
    if not EARLIEST_TIME <= parsed < LATEST_TIME:
        raise ValueError(f"{field_name} {value!r} is not between {EARLIEST_TIME.year} and {LATEST_TIME.year}")
    return parsed


def _unencodable(field_name: str, error: orjson.JSONEncodeError) -> str:
    """Why orjson cannot write a parsed value back: too deep, or text that is not Unicode (only the lenient
    parse of parse_json can produce it, from invalid UTF-8 or an unpaired surrogate escape)."""
    if "surrogates" in str(error) or "UTF-8" in str(error):
        return f"{field_name} contains text that is not valid UTF-8 (an invalid byte or an unpaired surrogate)"
    return f"{field_name} is nested more than {MAX_NESTING} levels deep"


def _check_event_time(timestamp: datetime, received_at: datetime, *, corrected: bool) -> None:
    """Refuse an event time (after the clock correction) before 2000 or more than 24 hours after it was received."""
    how = " after correcting by sentAt" if corrected else ""
    if timestamp < EARLIEST_EVENT_TIME:
        raise ValueError(f"timestamp {timestamp.isoformat()}{how} is before {EARLIEST_EVENT_TIME.date().isoformat()}")
    if timestamp > received_at + MAX_FUTURE:
        raise ValueError(
            f"timestamp {timestamp.isoformat()}{how} is more than 24 hours after the call was received"
            f" ({received_at.isoformat(timespec='seconds')}); check the sender's clock"
        )


class EncodedSize:
    """Bytes of a value as JSON, refusing what the database or the encoders downstream cannot hold.

    The parser accepts 1,024 levels but orjson writes only 254, and stored calls are written again inside
    exports and destination payloads: encoding the value under NESTING_HEADROOM extra levels proves it still
    fits in those envelopes, at no extra walk over the data. The envelope is built once per instance (one per
    request) and each value is slotted into its centre. PostgreSQL text and jsonb refuse the NUL character and
    text that is not UTF-8, so a call holding either is refused here, with its reason, instead of failing the
    whole batch.
    """

    def __init__(self) -> None:
        self._centre: list[Any] = [None]
        envelope: list[Any] = self._centre
        for _ in range(NESTING_HEADROOM - 1):
            envelope = [envelope]
        self._envelope = envelope

    def __call__(self, value: Any, field_name: str) -> int:
        self._centre[0] = value
        try:
            encoded = orjson.dumps(self._envelope)
        except orjson.JSONEncodeError as error:
            raise ValueError(_unencodable(field_name, error)) from error
        finally:
            self._centre[0] = None
        # The substring test is a fast scan; the pattern (which tells an escaped backslash from an escape) is
        # about fifty times slower and only runs on the rare call that holds the sequence at all.
        if ESCAPED_NUL_SEQUENCE in encoded and ESCAPED_NUL.search(encoded):
            raise ValueError(f"{field_name} contains a NUL character (\\u0000), which cannot be stored")
        return len(encoded) - 2 * NESTING_HEADROOM


def _storable_text(text: str) -> bool:
    """Whether PostgreSQL can store this string in a text column: no NUL, and valid Unicode (no lone surrogate)."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _object(value: Any, field_name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{field_name} must be an object")
    return value


def normalise_message(
    raw: Any,
    *,
    call_type: str | None,
    received_at: datetime,
    batch_context: dict[str, Any] | None = None,
    batch_integrations: dict[str, Any] | None = None,
    batch_sent_at: datetime | None = None,
    encoded_size: EncodedSize | None = None,
) -> IncomingMessage:
    """Validate one call and convert it; raises ValueError with a readable reason when it cannot be accepted.

    `call_type` is the route's type (None inside a batch, where each call names its own). The batch envelope's
    `context` and `integrations` are merged under the message's own, and its `sentAt` is used when the call
    has none. `encoded_size` lets a batch share one size check.
    """
    if not isinstance(raw, dict):
        raise ValueError("each message must be a JSON object")
    if (encoded_size or EncodedSize())(raw, "message") > MAX_MESSAGE_BYTES:
        raise ValueError(f"message is larger than {MAX_MESSAGE_BYTES // 1024} KB")
    message_type = call_type or raw.get("type")
    if not isinstance(message_type, str) or message_type not in MESSAGE_TYPES:
        raise ValueError(f"type must be one of {', '.join(sorted(MESSAGE_TYPES))}")

    user_id = _id(raw.get("userId"), "userId")
    anonymous_id = _id(raw.get("anonymousId"), "anonymousId")
    if user_id is None and anonymous_id is None:
        raise ValueError("userId or anonymousId is required")

    message_id = raw.get("messageId")
    if message_id is None or message_id == "":
        message_id = f"tl-{uuid.uuid4()}"
    elif not isinstance(message_id, str):
        raise ValueError("messageId must be a string")
    elif len(message_id) > MAX_MESSAGE_ID_LENGTH:
        raise ValueError(f"messageId is longer than {MAX_MESSAGE_ID_LENGTH} characters")

    context = {**_object(batch_context, "context"), **_object(raw.get("context"), "context")}
    integrations = {**_object(batch_integrations, "integrations"), **_object(raw.get("integrations"), "integrations")}
    if integrations:
        context["integrations"] = integrations

    original = _time(raw.get("timestamp"), "timestamp")
    sent_at = _time(raw.get("sentAt"), "sentAt") or batch_sent_at
    if original is not None and sent_at is not None:
        timestamp = received_at - (sent_at - original)
    else:
        timestamp = original or received_at
    _check_event_time(timestamp, received_at, corrected=original is not None and sent_at is not None)

    name = ""
    properties: dict[str, Any] = {}
    traits: dict[str, Any] = {}
    group_id = previous_id = None
    if message_type == "track":
        event = raw.get("event")
        if not isinstance(event, str) or not event.strip():
            raise ValueError("track needs an event name")
        name = event.strip()
        properties = _object(raw.get("properties"), "properties")
    elif message_type in ("page", "screen"):
        page_name = raw.get("name")
        name = page_name if isinstance(page_name, str) else ""
        properties = _object(raw.get("properties"), "properties")
    elif message_type == "identify":
        traits = _object(raw.get("traits"), "traits") or _object(context.get("traits"), "context.traits")
        properties = traits
    elif message_type == "group":
        group_id = _id(raw.get("groupId"), "groupId")
        if group_id is None:
            raise ValueError("group needs a groupId")
        traits = _object(raw.get("traits"), "traits")
        properties = traits
    else:  # alias
        previous_id = _id(raw.get("previousId"), "previousId")
        if previous_id is None or user_id is None:
            raise ValueError("alias needs previousId and userId")
    if len(name) > MAX_EVENT_NAME_LENGTH:
        raise ValueError(f"event name is longer than {MAX_EVENT_NAME_LENGTH} characters")
    if group_id is None and message_type != "group":
        group_id = _id(context.get("groupId"), "context.groupId")

    return IncomingMessage(
        type=message_type,
        message_id=message_id,
        user_id=user_id,
        anonymous_id=anonymous_id,
        name=name,
        properties=properties,
        context=context,
        timestamp=timestamp,
        received_at=received_at,
        original_timestamp=original,
        sent_at=sent_at,
        group_id=group_id,
        previous_id=previous_id,
        traits=traits,
    )


def split_batch(
    body: dict[str, Any], *, call_type: str | None, received_at: datetime
) -> tuple[list[IncomingMessage], list[RejectedMessage]]:
    """A request body to its accepted and rejected calls: one call for single routes, `batch` for batch routes."""
    encoded_size = EncodedSize()
    if call_type is not None:
        raw_messages: list[Any] = [body]
        context = integrations = None
        sent_at = None
    else:
        raw_messages = body.get("batch")  # type: ignore[assignment]
        if not isinstance(raw_messages, list):
            raise RequestRejected("A batch request needs a `batch` array of messages.")
        if len(raw_messages) > MAX_BATCH_MESSAGES:
            raise RequestRejected(f"A batch may hold at most {MAX_BATCH_MESSAGES} messages.", code="batch_too_large")
        context, integrations = body.get("context"), body.get("integrations")
        try:
            sent_at = _time(body.get("sentAt"), "sentAt")
            _object(context, "context")
            _object(integrations, "integrations")
            encoded_size([context, integrations], "context or integrations")
        except ValueError as error:
            raise RequestRejected(f"Batch envelope: {error}.") from error
    accepted: list[IncomingMessage] = []
    rejected: list[RejectedMessage] = []
    for index, raw in enumerate(raw_messages):
        try:
            accepted.append(
                normalise_message(
                    raw,
                    call_type=call_type,
                    received_at=received_at,
                    batch_context=context,
                    batch_integrations=integrations,
                    batch_sent_at=sent_at,
                    encoded_size=encoded_size,
                )
            )
        except ValueError as error:
            message_id = raw.get("messageId") if isinstance(raw, dict) else None
            rejected.append(
                RejectedMessage(
                    index=index,
                    message_id=message_id if isinstance(message_id, str) and _storable_text(message_id) else None,
                    error=str(error),
                    payload=raw,
                )
            )
    return accepted, rejected
