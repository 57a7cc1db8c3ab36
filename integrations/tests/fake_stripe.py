"""A local fake of the Stripe HTTP API (v1) for tests: a real HTTP server on 127.0.0.1 that the stripe library talks to.

Why: code under test uses the real `stripe` library (`StripeClient`, list pagination, expansion, retries,
idempotency keys), so stubbing Python methods would leave the wire format untested, and tests must never reach
api.stripe.com. The fake holds objects built with `stripe_payloads` (current API shapes) in memory and serves:

- `GET /v1/<collection>` for customers, products, prices, subscriptions, invoices, charges, coupons, events,
  refunds and disputes, newest first (by `created`, then id), with Stripe's list shape and `limit` (1-100,
  default 10), `starting_after`, `ending_before`, `created[gt|gte|lt|lte]`, `customer`, and per collection
  `status` (subscriptions without `status` exclude canceled ones, `status=all` includes them, `ended` means
  canceled or incomplete_expired), `price`, `subscription`, `product`, `active`, `email`, `charge`,
  `payment_intent`, `type` (with `*` wildcards) and `types[]` for events;
- `GET /v1/<collection>/<id>`, with `expand[]` (for lists `data.`-prefixed): every id met along an expansion
  path (`discounts`, `discounts.source.coupon`, `items.data.price.product`, `customer`, `latest_invoice`,
  `parent.subscription_details.subscription`, ...) is replaced by the stored object when there is one;
- `POST /v1/subscriptions/<id>` (update: cancel_at_period_end, cancel_at, trial_end, pause_collection,
  discounts, items, metadata, cancellation_details, proration_behavior, default_payment_method, ...) and
  `DELETE /v1/subscriptions/<id>` (cancel now, with cancellation_details), each recording a
  `customer.subscription.updated` / `.deleted` event in `events` like Stripe does.

Like Stripe it answers 401 without a `Bearer sk_test_...`/`rk_test_...` key, 404 `resource_missing` for unknown
ids (and for canceling a canceled subscription), 400 for parameters the endpoint does not take (the list is read
from `stripe.params`, so parameters removed from the API are caught), replays a POST with a seen
`Idempotency-Key` and rejects the key's reuse with other parameters. `fail_next(n, status)` makes the next
requests fail to exercise retries. Every request is recorded in `requests` (method, path, decoded params,
headers, status).

Pointing the stripe library at it (stripe 16.x)::

    with FakeStripe() as fake:
        fake.add(stripe_payloads.customer("cus_1"))
        # a client (what integrations.stripe.sync uses):
        client = fake.client()  # == stripe.StripeClient("sk_test_fake", base_addresses={...: fake.url},
                                #                         max_network_retries=0)
        client.v1.customers.list({"limit": 100}).auto_paging_iter()
        client.v1.subscriptions.update("sub_1", {"cancel_at_period_end": True})
        client.v1.subscriptions.cancel("sub_1", {"cancellation_details": {"comment": "too pricey"}})
        # or the module-level API, restored afterwards:
        with fake.configure_stripe_module():  # stripe.api_key = "sk_test_fake"; stripe.api_base = fake.url; ...
            stripe.Subscription.modify("sub_1", pause_collection={"behavior": "void"})
        # or the app's settings (pytest-django `settings` fixture):
        settings.STRIPE_API_KEY, settings.STRIPE_API_BASE = "sk_test_fake", fake.url

All four base addresses (api, files, connect, meter_events) point at the fake, so no request can leave the
machine; `max_network_retries` defaults to 0 so a failure surfaces at once. The `fake_stripe` fixture below
does all of this (import it into a conftest or test module).
"""

from __future__ import annotations

import copy
import fnmatch
import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

import pytest
import stripe
import stripe.params

from integrations.tests import stripe_payloads as payloads

TEST_API_KEY = "sk_test_fake"

StripeDict = dict[str, Any]

COLLECTION_OF_TYPE: dict[str, str] = {
    "charge": "charges",
    "coupon": "coupons",
    "customer": "customers",
    "discount": "discounts",
    "dispute": "disputes",
    "event": "events",
    "invoice": "invoices",
    "price": "prices",
    "product": "products",
    "refund": "refunds",
    "subscription": "subscriptions",
}
"""Storable object types and their collection; discounts are stored (for expansion) but not listable."""

LISTABLE: dict[str, str] = {
    "charges": "Charge",
    "coupons": "Coupon",
    "customers": "Customer",
    "disputes": "Dispute",
    "events": "Event",
    "invoices": "Invoice",
    "prices": "Price",
    "products": "Product",
    "refunds": "Refund",
    "subscriptions": "Subscription",
}
"""Collections served under /v1/<name>, with the stripe.params class prefix that lists their parameters."""

_REQUEST_OPTIONS = frozenset(
    {
        "api_key",
        "content_type",
        "headers",
        "idempotency_key",
        "max_network_retries",
        "stripe_account",
        "stripe_context",
        "stripe_version",
    }
)
_PRORATION_BEHAVIORS = ("always_invoice", "create_prorations", "none")
_PAUSE_BEHAVIORS = ("keep_as_draft", "mark_uncollectible", "void")
_KEY_PATTERN = re.compile(r"^Bearer ((?:sk|rk)_test_\S+)$")


def _accepted(params_class: str) -> frozenset[str]:
    """The parameters an endpoint takes, from the library's TypedDict (minus client-side request options)."""
    annotations = getattr(stripe.params, params_class).__annotations__
    return frozenset(annotations) - _REQUEST_OPTIONS


class StripeApiError(Exception):
    """An error answer in Stripe's shape; raised inside the fake and turned into the HTTP response."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.headers = dict(headers or {})

    def body(self) -> StripeDict:
        error: StripeDict = {"message": self.message, "type": self.type}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        return {"error": error}


def _missing(object_type: str, object_id: str, param: str = "id") -> StripeApiError:
    return StripeApiError(
        404, f"No such {object_type.replace('_', ' ')}: '{object_id}'", code="resource_missing", param=param
    )


# --- Form decoding ------------------------------------------------------------------------------------------

_KEY_PARTS = re.compile(r"\[([^\[\]]*)\]")


def _listify(node: Any) -> Any:
    if isinstance(node, dict):
        converted = {key: _listify(value) for key, value in node.items()}
        if converted and all(key.isdigit() for key in converted):
            return [converted[key] for key in sorted(converted, key=int)]
        return converted
    return node


def decode_params(pairs: Iterable[tuple[str, str]]) -> StripeDict:
    """Stripe's form encoding back into nested values: `items[0][price]=p` -> `{"items": [{"price": "p"}]}`.

    Indexed and `[]` keys become lists, other bracketed keys dicts; values stay strings (`""` means "unset").
    """
    root: StripeDict = {}
    for key, value in pairs:
        head = key.split("[", 1)[0]
        parts = [head, *_KEY_PARTS.findall(key[len(head) :])]
        node = root
        for index, part in enumerate(parts):
            name = part if part != "" else str(len(node))
            if index == len(parts) - 1:
                node[name] = value
            else:
                child = node.get(name)
                if not isinstance(child, dict):
                    child = node[name] = {}
                node = child
    return cast(StripeDict, _listify(root))


def _as_list(value: Any) -> list[Any]:
    if value in (None, ""):
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    return [value]


def _boolean(value: Any, param: str) -> bool:
    if value in (True, "true"):
        return True
    if value in (False, "false"):
        return False
    raise StripeApiError(400, f"Invalid boolean: {value}", param=param)


def _integer(value: Any, param: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StripeApiError(400, f"Invalid integer: {value}", param=param) from None


# --- Recorded requests --------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request as the fake received it, for assertions (`params` are decoded from query and body)."""

    method: str
    path: str
    query: str
    params: StripeDict
    headers: dict[str, str]
    body: str
    status: int = 0
    replayed: bool = False

    def header(self, name: str) -> str | None:
        """A request header, case-insensitively."""
        lowered = name.lower()
        return next((value for key, value in self.headers.items() if key.lower() == lowered), None)

    @property
    def idempotency_key(self) -> str | None:
        return self.header("Idempotency-Key")

    @property
    def api_key(self) -> str | None:
        match = _KEY_PATTERN.match(self.header("Authorization") or "")
        return match.group(1) if match else None


@dataclass
class _Failure:
    status: int
    should_retry: bool | None


@dataclass
class _Replay:
    signature: tuple[str, str, str]
    status: int
    payload: StripeDict


# --- The fake -----------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: FakeStripe


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeStripe/1.0"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8") if length else ""
        fake = cast(_Server, self.server).fake
        status, headers, content = fake.handle(self.command, self.path, dict(self.headers.items()), body)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(content)
        self.close_connection = True

    do_GET = do_POST = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the requests are in `FakeStripe.requests`."""


class FakeStripe:
    """In-memory Stripe v1 API on an ephemeral 127.0.0.1 port; a context manager (start/stop).

    `api_key`, when given, is the only key accepted (else any test key is); `emit_events` records
    `customer.subscription.*` events for the changes made through the API, as Stripe would.
    """

    def __init__(self, *, api_key: str | None = None, emit_events: bool = True) -> None:
        self.api_key = api_key
        self.emit_events = emit_events
        self.requests: list[RecordedRequest] = []
        self.errors: list[Exception] = []
        self._store: dict[str, dict[str, StripeDict]] = {name: {} for name in COLLECTION_OF_TYPE.values()}
        self._index: dict[str, tuple[str, str]] = {}
        self._failures: deque[_Failure] = deque()
        self._replays: dict[str, _Replay] = {}
        self._counters: dict[str, itertools.count[int]] = {}
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> FakeStripe:
        """Listen on 127.0.0.1 on a free port, serving from a daemon thread."""
        if self._server is None:
            server = _Server(("127.0.0.1", 0), _Handler)
            server.fake = self
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-stripe", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base address to give the stripe library (`http://127.0.0.1:<port>`)."""
        if self._server is None:
            raise RuntimeError("FakeStripe is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # Pointing the stripe library here ----------------------------------------------------------------------

    def client(
        self, api_key: str = TEST_API_KEY, *, max_network_retries: int = 0, **options: Any
    ) -> stripe.StripeClient:
        """A `stripe.StripeClient` whose every base address is this fake.

        Set `stripe.enable_telemetry = False` in tests (the fixture does), or the library writes a telemetry id
        file under ~/.config/stripe on its first request.
        """
        base = self.url
        return stripe.StripeClient(
            api_key,
            base_addresses={"api": base, "files": base, "connect": base, "meter_events": base},
            max_network_retries=max_network_retries,
            **options,
        )

    @contextmanager
    def configure_stripe_module(self, api_key: str = TEST_API_KEY, *, max_network_retries: int = 0) -> Iterator[None]:
        """Point the module-level API (`stripe.Customer.list()`, ...) here; restore the previous settings after.

        Also turns telemetry off, so the library neither adds client metrics nor writes its telemetry id file.
        """
        names = (
            "api_key",
            "api_base",
            "connect_api_base",
            "upload_api_base",
            "meter_events_api_base",
            "max_network_retries",
            "enable_telemetry",
        )
        saved = {name: getattr(stripe, name) for name in names}
        values: dict[str, Any] = dict.fromkeys(
            ("api_base", "connect_api_base", "upload_api_base", "meter_events_api_base"), self.url
        )
        values |= {"api_key": api_key, "max_network_retries": max_network_retries, "enable_telemetry": False}
        for name, value in values.items():
            setattr(stripe, name, value)
        try:
            yield
        finally:
            for name, value in saved.items():
                setattr(stripe, name, value)

    # Data ---------------------------------------------------------------------------------------------------

    def add(self, obj: Mapping[str, Any]) -> StripeDict:
        """Store a copy of a Stripe object (by its `object` type) and return the stored form.

        Nested objects are stored too and replaced by their ids as the API returns them unexpanded: a
        subscription's expanded discounts and customer, a discount's coupon, a price's product, the products of
        a subscription's item prices. Ids are kept as they are, so a subscription built with discount ids needs
        its discounts added too (or build it with `expand_discounts=True`). Adding a known id replaces it.
        """
        with self._lock:
            stored = copy.deepcopy(dict(obj))
            object_type = stored.get("object")
            if object_type not in COLLECTION_OF_TYPE:
                raise ValueError(f"FakeStripe cannot store objects of type {object_type!r}")
            self._collapse_nested(stored)
            self._put(stored)
            return copy.deepcopy(stored)

    def add_many(self, objects: Iterable[Mapping[str, Any]]) -> None:
        """`add` each object."""
        for obj in objects:
            self.add(obj)

    def get(self, object_id: str) -> StripeDict:
        """A copy of the stored object with this id (KeyError if none)."""
        with self._lock:
            collection, _ = self._index[object_id]
            return copy.deepcopy(self._store[collection][object_id])

    def objects(self, collection: str) -> list[StripeDict]:
        """Copies of a collection's objects, newest first as the API lists them."""
        with self._lock:
            return [copy.deepcopy(obj) for obj in self._sorted(self._store[collection].values())]

    def fail_next(self, n: int = 1, status: int = 500, *, should_retry: bool | None = None) -> None:
        """Make the next `n` requests (any endpoint) fail with `status` before doing anything.

        The stripe library retries 409 and 5xx (up to `max_network_retries`) and not 429 unless the answer
        says `Stripe-Should-Retry: true`; `should_retry` sends that header with the given value.
        """
        with self._lock:
            self._failures.extend(_Failure(status, should_retry) for _ in range(n))

    def requests_to(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """The recorded requests, optionally only of one method and/or path (path prefix when it ends in /)."""
        with self._lock:
            return [
                request
                for request in self.requests
                if (method is None or request.method == method.upper())
                and (path is None or request.path == path or (path.endswith("/") and request.path.startswith(path)))
            ]

    # Request handling (also callable without HTTP) ----------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: str
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer one request: `(status, headers, JSON body)`; records it in `requests`."""
        split = urlsplit(target)
        pairs = parse_qsl(split.query, keep_blank_values=True)
        if method == "POST" and body:
            pairs += parse_qsl(body, keep_blank_values=True)
        params = decode_params(pairs)
        record = RecordedRequest(method, split.path, split.query, params, dict(headers), body)
        with self._lock:
            self.requests.append(record)
            request_id = self._new_id("req")
            extra: dict[str, str] = {}
            try:
                status, payload, extra = self._dispatch(record, request_id)
            except StripeApiError as error:
                status, payload, extra = error.status, error.body(), error.headers
                payload["error"]["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
            except Exception as error:  # a bug or gap in the fake: answer (not retryable) instead of hanging up
                self.errors.append(error)
                unexpected = StripeApiError(
                    500, f"FakeStripe failed: {error!r}", type="api_error", headers={"Stripe-Should-Retry": "false"}
                )
                status, payload, extra = unexpected.status, unexpected.body(), unexpected.headers
            record.status = status
        response_headers = {
            "Content-Type": "application/json",
            "Request-Id": request_id,
            "Stripe-Version": record.header("Stripe-Version") or payloads.API_VERSION,
            **extra,
        }
        if record.idempotency_key:
            response_headers["Idempotency-Key"] = record.idempotency_key
        return status, response_headers, json.dumps(payload).encode("utf-8")

    def _dispatch(self, record: RecordedRequest, request_id: str) -> tuple[int, StripeDict, dict[str, str]]:
        if self._failures:
            failure = self._failures.popleft()
            raise self._failure_error(failure)
        self._authenticate(record)
        key = record.idempotency_key if record.method == "POST" else None
        signature = (record.method, record.path, json.dumps(record.params, sort_keys=True))
        if key and key in self._replays:
            replay = self._replays[key]
            if replay.signature != signature:
                raise StripeApiError(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters they were first used "
                    f"with. Try using a key other than '{key}' if you meant to execute a different request.",
                    type="idempotency_error",
                )
            record.replayed = True
            return replay.status, copy.deepcopy(replay.payload), {"Idempotent-Replayed": "true"}
        payload = self._route(record, request_id)
        if key:
            self._replays[key] = _Replay(signature, 200, copy.deepcopy(payload))
        return 200, payload, {}

    @staticmethod
    def _failure_error(failure: _Failure) -> StripeApiError:
        headers = {}
        if failure.should_retry is not None:
            headers["Stripe-Should-Retry"] = "true" if failure.should_retry else "false"
        if failure.status == 429:
            return StripeApiError(
                429,
                "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
                code="rate_limit",
                headers=headers,
            )
        if failure.status == 409:
            return StripeApiError(
                409, "Request conflicts with another concurrent request.", code="lock_timeout", headers=headers
            )
        return StripeApiError(
            failure.status,
            "An unknown error occurred (injected by FakeStripe.fail_next).",
            type="api_error",
            headers=headers,
        )

    def _authenticate(self, record: RecordedRequest) -> None:
        authorization = record.header("Authorization")
        if not authorization:
            raise StripeApiError(
                401,
                "You did not provide an API key. You need to provide your API key in the Authorization header, "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        key = record.api_key
        if key is None or (self.api_key is not None and key != self.api_key):
            shown = authorization.removeprefix("Bearer ")
            raise StripeApiError(
                401, f"Invalid API Key provided: {shown[:8]}{'*' * max(len(shown) - 12, 4)}{shown[-4:]}"
            )

    def _route(self, record: RecordedRequest, request_id: str) -> StripeDict:
        parts = record.path.strip("/").split("/")
        method, params = record.method, record.params
        if len(parts) == 2 and parts[0] == "v1" and parts[1] in LISTABLE and method == "GET":
            return self._list(parts[1], params, record.path)
        if len(parts) == 3 and parts[0] == "v1" and parts[1] in LISTABLE:
            collection, object_id = parts[1], parts[2]
            if method == "GET":
                self._check_params(params, frozenset({"expand"}))
                return self._render(self._require(collection, object_id), params.get("expand"))
            if collection == "subscriptions" and method == "POST":
                return self._update_subscription(object_id, params, record, request_id)
            if collection == "subscriptions" and method == "DELETE":
                return self._cancel_subscription(object_id, params, record, request_id)
        raise StripeApiError(
            404,
            f"Unrecognized request URL ({method}: {record.path}). Please see https://stripe.com/docs or we can "
            "help at https://support.stripe.com/.",
        )

    # Storage helpers ----------------------------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        counter = self._counters.setdefault(prefix, itertools.count(1))
        return f"{prefix}_fake{next(counter):010d}"

    def _put(self, obj: StripeDict) -> None:
        collection = COLLECTION_OF_TYPE[obj["object"]]
        self._store[collection][obj["id"]] = obj
        self._index[obj["id"]] = (collection, obj["object"])

    def _collapse(self, value: Any) -> Any:
        """Store an embedded object and return its id; ids and unknown values are returned as they are."""
        if isinstance(value, Mapping) and value.get("object") in COLLECTION_OF_TYPE and "id" in value:
            nested = copy.deepcopy(dict(value))
            self._collapse_nested(nested)
            self._put(nested)
            return nested["id"]
        return value

    def _collapse_nested(self, obj: StripeDict) -> None:
        object_type = obj.get("object")
        if object_type in ("subscription", "invoice", "charge", "discount") and isinstance(
            obj.get("customer"), Mapping
        ):
            obj["customer"] = self._collapse(obj["customer"])
        if object_type in ("subscription", "invoice"):
            obj["discounts"] = [self._collapse(entry) for entry in obj.get("discounts") or []]
        if object_type == "subscription":
            for item in (obj.get("items") or {}).get("data", []):
                item["discounts"] = [self._collapse(entry) for entry in item.get("discounts") or []]
                if isinstance(item.get("price"), Mapping):
                    item["price"]["product"] = self._collapse(item["price"].get("product"))
        if object_type == "discount" and isinstance(obj.get("source"), dict):
            obj["source"]["coupon"] = self._collapse(obj["source"].get("coupon"))
        if object_type == "price":
            obj["product"] = self._collapse(obj.get("product"))

    def _require(self, collection: str, object_id: str, param: str = "id") -> StripeDict:
        obj = self._store[collection].get(object_id)
        if obj is None:
            singular = next(kind for kind, name in COLLECTION_OF_TYPE.items() if name == collection)
            raise _missing(singular, object_id, param)
        return obj

    @staticmethod
    def _sort_key(obj: Mapping[str, Any]) -> tuple[int, str]:
        return int(obj.get("created") or 0), str(obj["id"])

    def _sorted(self, objects: Iterable[StripeDict]) -> list[StripeDict]:
        return sorted(objects, key=self._sort_key, reverse=True)

    # Rendering and expansion -------------------------------------------------------------------------------

    def _render(self, obj: Mapping[str, Any], expand: Any, *, prefix: str = "") -> StripeDict:
        rendered = copy.deepcopy(dict(obj))
        for path in _as_list(expand):
            if not isinstance(path, str):
                continue
            if prefix:
                if not path.startswith(prefix):
                    continue
                path = path[len(prefix) :]
            rendered = cast(StripeDict, self._expand(rendered, path.split(".")))
        return rendered

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, str) and value in self._index:
            collection, _ = self._index[value]
            return copy.deepcopy(self._store[collection][value])
        return value

    def _expand(self, value: Any, parts: Sequence[str]) -> Any:
        """Replace the ids along `parts` by stored objects (lists are walked element by element)."""
        if not parts:
            return value
        if isinstance(value, list):
            return [self._expand(entry, parts) for entry in value]
        if not isinstance(value, dict) or parts[0] not in value:
            return value
        child = value[parts[0]]
        child = [self._resolve(entry) for entry in child] if isinstance(child, list) else self._resolve(child)
        value[parts[0]] = self._expand(child, parts[1:])
        return value

    # Lists --------------------------------------------------------------------------------------------------

    def _check_params(self, params: Mapping[str, Any], accepted: frozenset[str]) -> None:
        for name in params:
            if name not in accepted:
                raise StripeApiError(400, f"Received unknown parameter: {name}", param=name)

    def _list(self, collection: str, params: StripeDict, path: str) -> StripeDict:
        self._check_params(params, _accepted(f"{LISTABLE[collection]}ListParams"))
        limit = _integer(params.get("limit", 10), "limit")
        if not 1 <= limit <= 100:
            raise StripeApiError(400, "This value must be between 1 and 100 (inclusive).", param="limit")
        if params.get("starting_after") and params.get("ending_before"):
            raise StripeApiError(400, "You may only specify one of these parameters: ending_before, starting_after.")
        matching = self._sorted(
            obj for obj in self._store[collection].values() if self._matches(collection, obj, params)
        )
        if params.get("starting_after"):
            cursor = self._cursor(collection, str(params["starting_after"]), "starting_after")
            older = [obj for obj in matching if self._sort_key(obj) < cursor]
            page, has_more = older[:limit], len(older) > limit
        elif params.get("ending_before"):
            cursor = self._cursor(collection, str(params["ending_before"]), "ending_before")
            newer = [obj for obj in matching if self._sort_key(obj) > cursor]
            page, has_more = newer[-limit:], len(newer) > limit
        else:
            page, has_more = matching[:limit], len(matching) > limit
        return {
            "object": "list",
            "data": [self._render(obj, params.get("expand"), prefix="data.") for obj in page],
            "has_more": has_more,
            "url": path,
        }

    def _cursor(self, collection: str, object_id: str, param: str) -> tuple[int, str]:
        return self._sort_key(self._require(collection, object_id, param))

    def _matches(self, collection: str, obj: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
        if "created" in params and not _in_range(int(obj.get("created") or 0), params["created"]):
            return False
        for name in ("customer", "charge", "payment_intent", "email", "product", "currency", "collection_method"):
            if params.get(name) not in (None, "") and obj.get(name) != params[name]:
                return False
        if "active" in params and obj.get("active") != _boolean(params["active"], "active"):
            return False
        if collection in ("prices", "products") and params.get("type") and obj.get("type") != params["type"]:
            return False
        if collection == "subscriptions":
            return _subscription_matches(obj, params)
        if collection == "invoices":
            parent = obj.get("parent") or {}
            owner = (parent.get("subscription_details") or {}).get("subscription")
            if params.get("subscription") and owner != params["subscription"]:
                return False
            return not params.get("status") or obj.get("status") == params["status"]
        if collection == "events":
            if params.get("type") and not fnmatch.fnmatchcase(str(obj.get("type")), str(params["type"])):
                return False
            types = _as_list(params.get("types"))
            return not types or obj.get("type") in types
        if collection == "prices":
            lookup_keys = _as_list(params.get("lookup_keys"))
            return not lookup_keys or obj.get("lookup_key") in lookup_keys
        if collection == "products":
            ids = _as_list(params.get("ids"))
            return not ids or obj.get("id") in ids
        return True

    # Subscriptions ------------------------------------------------------------------------------------------

    def _update_subscription(
        self, subscription_id: str, params: StripeDict, record: RecordedRequest, request_id: str
    ) -> StripeDict:
        self._check_params(params, _accepted("SubscriptionUpdateParams"))
        before = self._require("subscriptions", subscription_id)
        if before["status"] == "canceled" and set(params) - {"cancellation_details", "metadata", "expand"}:
            raise StripeApiError(400, "A canceled subscription can only update its cancellation_details and metadata.")
        sub = copy.deepcopy(before)
        at = int(time.time())
        items = sub["items"]["data"]
        if "proration_behavior" in params and params["proration_behavior"] not in _PRORATION_BEHAVIORS:
            raise StripeApiError(
                400,
                "Invalid proration_behavior: must be one of always_invoice, create_prorations, or none",
                param="proration_behavior",
            )
        if "items" in params:
            self._apply_items(sub, _as_list(params["items"]), at)
        if "discounts" in params:
            sub["discounts"] = self._discount_ids(sub, _as_list(params["discounts"]))
        if "trial_end" in params:
            self._apply_trial_end(sub, params["trial_end"], at)
        period_end = max((int(item["current_period_end"]) for item in items), default=at)
        if "cancel_at_period_end" in params:
            if _boolean(params["cancel_at_period_end"], "cancel_at_period_end"):
                sub |= {"cancel_at_period_end": True, "cancel_at": period_end, "canceled_at": at}
                sub["cancellation_details"]["reason"] = "cancellation_requested"
            else:
                sub |= {"cancel_at_period_end": False, "cancel_at": None, "canceled_at": None}
                sub["cancellation_details"] = payloads.cancellation_details()
        if "cancel_at" in params:
            value = params["cancel_at"]
            if value == "":
                sub |= {"cancel_at_period_end": False, "cancel_at": None, "canceled_at": None}
                sub["cancellation_details"] = payloads.cancellation_details()
            else:
                ends = [int(item["current_period_end"]) for item in items] or [period_end]
                if value == "min_period_end":
                    cancel_at = min(ends)
                elif value == "max_period_end":
                    cancel_at = max(ends)
                else:
                    cancel_at = _integer(value, "cancel_at")
                sub |= {"cancel_at_period_end": False, "cancel_at": cancel_at, "canceled_at": at}
                sub["cancellation_details"]["reason"] = "cancellation_requested"
        if "cancellation_details" in params:
            sub["cancellation_details"] = _cancellation_details(
                sub["cancellation_details"], params["cancellation_details"]
            )
        if "pause_collection" in params:
            sub["pause_collection"] = _pause_collection(params["pause_collection"])
        if "metadata" in params:
            sub["metadata"] = _metadata(sub["metadata"], params["metadata"])
        for name in ("default_payment_method", "description", "collection_method"):
            if name in params:
                sub[name] = params[name] or None
        if "days_until_due" in params:
            sub["days_until_due"] = _integer(params["days_until_due"], "days_until_due")
        self._put(sub)
        changed = {name: before[name] for name in before if before[name] != sub[name]}
        if changed:
            self._record_event("customer.subscription.updated", sub, record, request_id, changed)
        return self._render(sub, params.get("expand"))

    def _apply_items(self, sub: StripeDict, entries: list[Any], at: int) -> None:
        items: list[StripeDict] = sub["items"]["data"]
        for index, entry in enumerate(entries):
            prefix = f"items[{index}]"
            if not isinstance(entry, dict):
                raise StripeApiError(400, f"Invalid object: {prefix}", param=prefix)
            if entry.get("id"):
                item = next((item for item in items if item["id"] == entry["id"]), None)
                if item is None:
                    raise _missing("subscription_item", str(entry["id"]), f"{prefix}[id]")
                if entry.get("deleted") and _boolean(entry["deleted"], f"{prefix}[deleted]"):
                    items.remove(item)
                    continue
            else:
                if not entry.get("price"):
                    raise StripeApiError(400, f"Missing required param: {prefix}[price].", param=f"{prefix}[price]")
                first = items[0] if items else None
                item = payloads.subscription_item(
                    self._require("prices", str(entry["price"]), f"{prefix}[price]"),
                    1,
                    id=self._new_id("si"),
                    subscription=sub["id"],
                    current_period_start=int(first["current_period_start"]) if first else at,
                    current_period_end=int(first["current_period_end"]) if first else at,
                    created=at,
                )
                items.append(item)
            if entry.get("price"):
                price = copy.deepcopy(self._require("prices", str(entry["price"]), f"{prefix}[price]"))
                item["price"], item["plan"] = price, payloads.plan_from_price(price)
            if "quantity" in entry:
                item["quantity"] = _integer(entry["quantity"], f"{prefix}[quantity]")
            if "metadata" in entry:
                item["metadata"] = _metadata(item["metadata"], entry["metadata"])
        if not items:
            raise StripeApiError(400, "A subscription must have at least one active plan.", param="items")
        sub["items"]["total_count"] = len(items)

    def _discount_ids(self, sub: StripeDict, entries: list[Any]) -> list[str]:
        ids: list[str] = []
        for index, entry in enumerate(entries):
            prefix = f"discounts[{index}]"
            if not isinstance(entry, dict):
                raise StripeApiError(400, f"Invalid object: {prefix}", param=prefix)
            if entry.get("discount"):
                ids.append(self._require("discounts", str(entry["discount"]), f"{prefix}[discount]")["id"])
            elif entry.get("coupon"):
                coupon = self._require("coupons", str(entry["coupon"]), f"{prefix}[coupon]")
                new = payloads.discount(
                    self._new_id("di"), coupon=coupon, customer=sub["customer"], subscription=sub["id"]
                )
                self._put(new)
                ids.append(new["id"])
            elif entry.get("promotion_code"):
                raise _missing("promotion_code", str(entry["promotion_code"]), f"{prefix}[promotion_code]")
            else:
                raise StripeApiError(400, f"Missing required param: {prefix}[coupon].", param=f"{prefix}[coupon]")
        return ids

    @staticmethod
    def _apply_trial_end(sub: StripeDict, value: Any, at: int) -> None:
        items: list[StripeDict] = sub["items"]["data"]
        if value == "now":
            sub["trial_end"] = at
            if sub["status"] == "trialing":
                sub["status"] = "active"
            for item in items:
                recurring = item["price"].get("recurring") or {"interval": "month", "interval_count": 1}
                end = payloads.add_interval(at, recurring["interval"], int(recurring["interval_count"]))
                item |= {"current_period_start": at, "current_period_end": end}
            sub["billing_cycle_anchor"] = at
            return
        trial_end = _integer(value, "trial_end")
        if trial_end <= at:
            raise StripeApiError(
                400, "Invalid timestamp: must be an integer Unix timestamp in the future.", param="trial_end"
            )
        if sub["status"] != "trialing":
            sub["trial_start"] = at
            for item in items:
                item["current_period_start"] = at
        sub |= {"trial_end": trial_end, "status": "trialing", "billing_cycle_anchor": trial_end}
        for item in items:
            item["current_period_end"] = trial_end

    def _cancel_subscription(
        self, subscription_id: str, params: StripeDict, record: RecordedRequest, request_id: str
    ) -> StripeDict:
        self._check_params(params, _accepted("SubscriptionCancelParams"))
        before = self._require("subscriptions", subscription_id)
        if before["status"] == "canceled":
            raise _missing("subscription", subscription_id)  # what Stripe answers for a canceled subscription
        at = int(time.time())
        sub = copy.deepcopy(before)
        sub |= {"status": "canceled", "canceled_at": at, "ended_at": at, "cancel_at_period_end": False}
        details = payloads.cancellation_details(reason="cancellation_requested")
        sub["cancellation_details"] = _cancellation_details(details, params.get("cancellation_details") or {})
        self._put(sub)
        self._record_event("customer.subscription.deleted", sub, record, request_id, None)
        return self._render(sub, params.get("expand"))

    def _record_event(
        self,
        type: str,
        obj: StripeDict,
        record: RecordedRequest,
        request_id: str,
        previous_attributes: Mapping[str, Any] | None,
    ) -> None:
        if not self.emit_events:
            return
        new = payloads.event(
            type,
            obj,
            id=self._new_id("evt"),
            previous_attributes=previous_attributes,
            request_id=request_id,
            idempotency_key=record.idempotency_key,
        )
        self._put(new)


def _in_range(value: int, spec: Any) -> bool:
    if not isinstance(spec, dict):
        return value == _integer(spec, "created")
    checks = {
        "gt": lambda bound: value > bound,
        "gte": lambda bound: value >= bound,
        "lt": lambda bound: value < bound,
        "lte": lambda bound: value <= bound,
    }
    for name, bound in spec.items():
        if name not in checks:
            raise StripeApiError(400, f"Received unknown parameter: created[{name}]", param=f"created[{name}]")
        if not checks[name](_integer(bound, f"created[{name}]")):
            return False
    return True


def _subscription_matches(obj: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    status = params.get("status")
    if status in (None, ""):
        if obj.get("status") == "canceled":
            return False
    elif status == "ended":
        if obj.get("status") not in ("canceled", "incomplete_expired"):
            return False
    elif status != "all" and obj.get("status") != status:
        return False
    wanted = params.get("price") or params.get("plan")
    if wanted:
        return any(item["price"]["id"] == wanted for item in obj["items"]["data"])
    return True


def _metadata(current: Mapping[str, Any], update: Any) -> StripeDict:
    if update == "":
        return {}
    merged = dict(current)
    for key, value in (update or {}).items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _cancellation_details(current: Mapping[str, Any], update: Any) -> StripeDict:
    details = dict(current)
    if isinstance(update, dict):
        for name in ("comment", "feedback"):
            if name in update:
                details[name] = update[name] or None
    return details


def _pause_collection(value: Any) -> StripeDict | None:
    if value == "":
        return None
    if not isinstance(value, dict) or value.get("behavior") not in _PAUSE_BEHAVIORS:
        raise StripeApiError(
            400,
            "Invalid pause_collection[behavior]: must be one of keep_as_draft, mark_uncollectible, or void",
            param="pause_collection[behavior]",
        )
    resumes_at = value.get("resumes_at")
    return {
        "behavior": value["behavior"],
        "resumes_at": None if resumes_at in (None, "") else _integer(resumes_at, "pause_collection[resumes_at]"),
    }


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    """A started `FakeStripe`, with the module-level stripe API pointed at it for the test (restored after).

    Import it where it is needed (`from integrations.tests.fake_stripe import fake_stripe as fake_stripe`, the
    re-export form keeps ruff quiet) or list this module in the root conftest's `pytest_plugins`. For code that
    builds its own client from settings, also set `settings.STRIPE_API_KEY = TEST_API_KEY` and
    `settings.STRIPE_API_BASE = fake_stripe.url`.
    """
    with FakeStripe() as fake, fake.configure_stripe_module():
        yield fake
