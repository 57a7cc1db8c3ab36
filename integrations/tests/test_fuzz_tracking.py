"""Hypothesis against the Segment-compatible tracking API (`/v1/...`, docs/ingestion.md).

Arbitrary JSON, wrong types in every field, extreme dates, huge and nested values, bad encodings, gzip garbage,
odd content types, good and bad write keys: every answer is one docs/ingestion.md documents (200, or 400, 401
or 413 with the JSON error shape), never a 500; valid calls are stored next to garbage; and a batch's counts add up.
`FUZZ_EXAMPLES` raises the number of examples (see docs/security.md).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from types import FrameType
from typing import Any

import orjson
import pytest
from django.test import Client, TestCase
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiences.models import Event, Source
from audiences.services import source_create
from integrations.tracking import segment

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
HANG_SECONDS = 30.0
FUZZ = settings(
    max_examples=EXAMPLES * 10,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
ROUTES = sorted(segment.MESSAGE_TYPES | set(segment.SHORT_ROUTES) | {"batch", "import", "b"})
FIELDS = [
    "type", "userId", "anonymousId", "messageId", "event", "name", "properties", "traits", "context",
    "integrations", "timestamp", "sentAt", "groupId", "previousId", "writeKey", "batch",
]  # fmt: skip

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
offsets = st.integers(min_value=-23 * 60, max_value=23 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
instants = st.datetimes(timezones=offsets | st.just(UTC)).map(lambda moment: moment.isoformat())
ids = st.text(min_size=1, max_size=300) | st.integers() | st.floats() | st.just("")
field_values: dict[str, st.SearchStrategy[Any]] = {
    "type": st.sampled_from(sorted(segment.MESSAGE_TYPES)) | json_values,
    "userId": ids | json_values,
    "anonymousId": ids | json_values,
    "messageId": st.text(max_size=120) | json_values,
    "event": st.text(max_size=250) | json_values,
    "name": st.text(max_size=250) | json_values,
    "properties": st.dictionaries(st.text(max_size=10), json_values, max_size=4) | json_values,
    "traits": st.dictionaries(st.sampled_from(["email", "name", "plan", "title"]), json_values) | json_values,
    "context": st.fixed_dictionaries({}, optional={"groupId": ids, "traits": json_values}) | json_values,
    "integrations": json_values,
    "timestamp": instants | st.text(max_size=30) | json_values,
    "sentAt": instants | st.text(max_size=30) | json_values,
    "groupId": ids | json_values,
    "previousId": ids | json_values,
}
messages = st.fixed_dictionaries({}, optional=field_values)
bodies = (
    messages
    | st.fixed_dictionaries({"batch": st.lists(messages | json_values, max_size=6)}, optional=field_values)
    | json_values
)


@st.composite
def raw_requests(draw: st.DrawFn) -> tuple[bytes, str, str]:
    """A request body, its Content-Type and Content-Encoding: mostly JSON (plain or gzip), sometimes garbage."""
    encoded = json.dumps(draw(bodies), allow_nan=True).encode()
    kinds = ["json", "gzip", "truncated-gzip", "gzip-unsaid", "bytes", "latin-1", "deep", "bad-utf8", "surrogate"]
    kind = draw(st.sampled_from(kinds))
    encoding = ""
    if kind == "gzip":
        encoded, encoding = gzip.compress(encoded), "gzip"
    elif kind == "truncated-gzip":
        encoded, encoding = (
            gzip.compress(encoded)[: draw(st.integers(0, 20))],
            draw(st.sampled_from(["gzip", "deflate"])),
        )
    elif kind == "gzip-unsaid":
        encoded = gzip.compress(encoded)
    elif kind == "bytes":
        encoded, encoding = draw(st.binary(max_size=200)), draw(st.sampled_from(["", "gzip", "br", "deflate", "x"]))
    elif kind == "latin-1":
        encoded = '{"userId": "é", "event": "Ünïcödé", "type": "track"}'.encode("latin-1")
    elif kind == "bad-utf8":  # a byte that is not UTF-8 inside the first string of the document
        encoded = encoded.replace(b'"', b'"' + draw(st.binary(min_size=1, max_size=2)) + b"\xff", 1)
    elif kind == "surrogate":  # an escape for half a surrogate pair
        encoded = encoded.replace(b'"', b'"\\ud83d', 1)
    elif kind == "deep":
        depth = draw(st.integers(min_value=100, max_value=5000))
        encoded = (
            '{"userId": "u", "event": "e", "type": "track", "properties": ' + "[" * depth + "]" * depth + "}"
        ).encode()
    content_type = draw(
        st.sampled_from(
            [
                "application/json",
                "text/plain",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=x",
                "",
            ]
        )
    )
    return encoded, content_type, encoding


@contextmanager
def answered_within(seconds: float) -> Iterator[None]:
    """Fail a request that hangs instead of hanging the suite: SIGALRM interrupts it after `seconds`."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def is_strict_json(value: Any) -> bool:
    """Whether `value` encodes as standard JSON (no NaN or Infinity, which the API rightly refuses)."""
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        return False
    return True


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def post(
    route: str, body: bytes, *, authorization: str = "", content_type: str = "application/json", encoding: str = ""
) -> Any:
    extra = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    if encoding:
        extra["HTTP_CONTENT_ENCODING"] = encoding
    # Profile effects run in a task queued on commit; run it as the real commit would, so it is fuzzed too.
    with answered_within(HANG_SECONDS), TestCase.captureOnCommitCallbacks(execute=True):
        return Client().post(f"/v1/{route}", data=body, content_type=content_type, **extra)  # type: ignore[arg-type]


def assert_documented(response: Any, route: str) -> dict[str, Any]:
    """docs/ingestion.md: 200 with the batch counts on batch routes, or 400/401/413 with the JSON error shape."""
    assert response.status_code in (200, 400, 401, 413), (response.status_code, response.content[:300])
    answer: dict[str, Any] = orjson.loads(response.content)
    if response.status_code == 200:
        assert answer["success"] is True
        if route in {"batch", "import", "b"}:
            assert {"stored", "duplicates", "suppressed", "blocked", "rejected"} <= answer.keys()
    else:
        assert answer["success"] is False
        assert isinstance(answer["code"], str)
        assert isinstance(answer["message"], str) and answer["message"]
    return answer


@pytest.fixture
def write_key(db: Any, settings: Any) -> str:
    # A crash surfaces as the exception with its traceback rather than as a bare 500.
    settings.DEBUG_PROPAGATE_EXCEPTIONS = True
    _, key = source_create(name="Fuzzed app")
    return key


def test_any_request_gets_a_documented_answer(write_key: str) -> None:
    @FUZZ
    @given(
        route=st.sampled_from(ROUTES),
        request=raw_requests(),
        auth=st.sampled_from(["basic", "body", "wrong", "none", "garbage"]),
    )
    def answers(route: str, request: tuple[bytes, str, str], auth: str) -> None:
        body, content_type, encoding = request
        authorization = {
            "basic": basic(write_key),
            "wrong": basic("not-a-key"),
            "garbage": "Basic ***not base64***",
        }.get(auth, "")
        if auth == "body" and not encoding and body.startswith(b"{") and len(body) > 2:
            body = b'{"writeKey": ' + orjson.dumps(write_key) + b", " + body[1:]
        response = post(route, body, authorization=authorization, content_type=content_type, encoding=encoding)
        assert_documented(response, route)
        if auth in ("wrong", "none", "garbage"):
            assert response.status_code != 200

    answers()


# Text PostgreSQL can store (no NUL), for calls that must be accepted.
storable_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30)
valid_messages = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["track", "identify", "page", "screen", "group", "alias"]),
        "userId": storable_text.filter(bool),
    },
    optional={
        "anonymousId": storable_text.filter(bool),
        "messageId": storable_text.filter(bool).map(lambda text: text[:12]),
        # The accepted window: from 2000 to a day after receipt (a little less, for the time the test takes).
        "timestamp": st.datetimes(
            min_value=datetime(2000, 1, 1),
            max_value=datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=20),
            timezones=st.just(UTC),
        ).map(datetime.isoformat),
        "properties": st.dictionaries(
            storable_text,
            st.none()
            | st.booleans()
            | st.integers(-(2**63), 2**63 - 1)
            | st.floats(allow_nan=False, allow_infinity=False)
            | storable_text,
            max_size=3,
        ),
    },
).map(lambda message: {**message, "event": "Fuzzed", "groupId": "grp_fuzz", "previousId": "prev_fuzz"})


def test_valid_calls_are_stored_next_to_garbage(write_key: str) -> None:
    source = Source.objects.get(name="Fuzzed app")

    @FUZZ
    @given(
        valid=st.lists(valid_messages, min_size=1, max_size=5),
        garbage=st.lists(
            (
                json_values.filter(lambda value: not isinstance(value, dict))
                | st.fixed_dictionaries({"userId": st.none() | st.booleans() | st.lists(json_scalars, max_size=2)})
            ).filter(is_strict_json),
            min_size=1,
            max_size=5,
        ),
        shuffle=st.randoms(use_true_random=False),
    )
    def stored(valid: list[dict[str, Any]], garbage: list[Any], shuffle: Any) -> None:
        marked = [{**message, "messageId": f"fz-{uuid.uuid4()}"} for message in valid]
        batch: list[Any] = [*marked, *garbage]
        shuffle.shuffle(batch)
        response = post("batch", json.dumps({"batch": batch}).encode(), authorization=basic(write_key))
        answer = assert_documented(response, "batch")
        assert response.status_code == 200, answer
        garbage_at = sorted(
            index
            for index, raw in enumerate(batch)
            if not (isinstance(raw, dict) and str(raw.get("messageId", "")).startswith("fz-"))
        )
        assert [rejected["index"] for rejected in answer["rejected"]] == garbage_at
        assert answer["stored"] == len(marked)
        stored_ids = set(
            Event.objects.filter(source=source, message_id__in=[m["messageId"] for m in marked]).values_list(
                "message_id", flat=True
            )
        )
        assert stored_ids == {message["messageId"] for message in marked}

    stored()


def test_a_batch_accounts_for_every_call(write_key: str) -> None:
    """stored + duplicates + suppressed + blocked + rejected == sent, whatever mix of calls a batch holds."""

    @FUZZ
    @given(batch=st.lists(valid_messages | messages, min_size=1, max_size=8))
    def adds_up(batch: list[dict[str, Any]]) -> None:
        response = post("batch", json.dumps({"batch": batch}, allow_nan=True).encode(), authorization=basic(write_key))
        answer = assert_documented(response, "batch")
        if response.status_code == 200:
            counted = answer["stored"] + answer["duplicates"] + answer["suppressed"] + answer["blocked"]
            assert counted + len(answer["rejected"]) == len(batch), answer

    adds_up()
