"""The Segment-compatible tracking API over raw HTTP: routes, auth styles, encodings, limits, bad input."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client, TestCase

from audiences.models import Account, Customer, Event, ProfileMerge, Source
from audiences.services import source_create
from integrations.tracking.models import IngestionError


@pytest.fixture
def write_key(db: Any) -> str:
    _, key = source_create(name="Web app")
    return key


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def post(route: str, body: Any, *, key: str | None = None, raw: bytes | None = None, **headers: str) -> Any:
    data = raw if raw is not None else json.dumps(body).encode()
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items() if k != "content_type"}
    if key is not None:
        extra["HTTP_AUTHORIZATION"] = basic(key)
    content_type = headers.get("content_type", "application/json")
    # Profile effects run in a task queued on commit; run it as the real commit would.
    with TestCase.captureOnCommitCallbacks(execute=True):
        return Client().post(f"/v1/{route}", data=data, content_type=content_type, **extra)  # type: ignore[arg-type]


def track(event: str = "Project Created", **fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": event, "userId": "usr_1", "properties": {"plan": "team"}, **fields}


@pytest.mark.django_db
class TestRoutes:
    @pytest.mark.parametrize(
        ("route", "body", "stored_type", "stored_name"),
        [
            ("track", {"event": "Project Created", "userId": "u"}, "track", "Project Created"),
            ("t", {"event": "Project Created", "userId": "u"}, "track", "Project Created"),
            ("identify", {"userId": "u", "traits": {"email": "U@X.test"}}, "identify", ""),
            ("i", {"userId": "u", "traits": {}}, "identify", ""),
            ("page", {"userId": "u", "name": "Pricing"}, "page", "Pricing"),
            ("p", {"userId": "u", "name": "Pricing"}, "page", "Pricing"),
            ("screen", {"userId": "u", "name": "Home"}, "screen", "Home"),
            ("s", {"userId": "u", "name": "Home"}, "screen", "Home"),
            ("group", {"userId": "u", "groupId": "g1"}, "group", ""),
            ("g", {"userId": "u", "groupId": "g1"}, "group", ""),
            ("alias", {"userId": "u", "previousId": "old"}, "alias", ""),
            ("a", {"userId": "u", "previousId": "old"}, "alias", ""),
        ],
    )
    def test_single_call_routes(
        self, write_key: str, route: str, body: dict[str, Any], stored_type: str, stored_name: str
    ) -> None:
        response = post(route, body, key=write_key)
        assert response.status_code == 200, response.content
        assert response.json() == {"success": True}
        event = Event.objects.get()
        assert (event.type, event.name) == (stored_type, stored_name)
        assert event.customer.user_id == "u"

    @pytest.mark.parametrize("route", ["batch", "import", "b"])
    def test_batch_routes(self, write_key: str, route: str) -> None:
        response = post(route, {"batch": [track(), {"type": "identify", "userId": "usr_1"}]}, key=write_key)
        assert response.json() == {
            "success": True,
            "stored": 2,
            "duplicates": 0,
            "suppressed": 0,
            "blocked": 0,
            "rejected": [],
        }
        assert Event.objects.count() == 2

    def test_unknown_route_and_wrong_method(self, write_key: str) -> None:
        assert post("nope", track(), key=write_key).status_code == 404
        assert Client().get("/v1/track").status_code == 405

    def test_cors_preflight(self, write_key: str) -> None:
        response = Client().options("/v1/t")
        assert response.status_code == 200
        assert response["Access-Control-Allow-Origin"] == "*"


@pytest.mark.django_db
class TestAuthentication:
    def test_write_key_in_the_body(self, write_key: str) -> None:
        assert post("track", {**track(), "writeKey": write_key}).status_code == 200
        assert Event.objects.count() == 1

    def test_basic_auth_only(self, write_key: str) -> None:
        assert post("track", track(), key=write_key).status_code == 200

    def test_missing_key_is_401(self, write_key: str) -> None:
        response = post("track", track())
        assert response.status_code == 401
        assert "write key" in response.json()["message"].lower()
        assert not Event.objects.exists()

    def test_wrong_key_is_401(self, write_key: str) -> None:
        response = post("track", track(), key="not-a-key")
        assert (response.status_code, response.json()["code"]) == (401, "invalid_write_key")

    def test_garbled_basic_header_is_401(self, write_key: str) -> None:
        response = Client().post(
            "/v1/track", data=json.dumps(track()), content_type="application/json", HTTP_AUTHORIZATION="Basic !!!"
        )
        assert response.status_code == 401

    def test_rotated_key_stops_working(self, write_key: str) -> None:
        from audiences.services import source_rotate_key

        new_key = source_rotate_key(source=Source.objects.get())
        assert post("track", track(), key=write_key).status_code == 401
        assert post("track", track(), key=new_key).status_code == 200


@pytest.mark.django_db
class TestEncodings:
    def test_gzip_body(self, write_key: str) -> None:
        raw = gzip.compress(json.dumps({"batch": [track(), track("Report Generated")]}).encode())
        response = post("batch", None, key=write_key, raw=raw, **{"Content-Encoding": "gzip"})
        assert response.json()["stored"] == 2

    def test_json_sent_as_text_plain(self, write_key: str) -> None:
        response = post("t", {**track(), "writeKey": write_key}, content_type="text/plain")
        assert response.status_code == 200
        assert Event.objects.get().name == "Project Created"

    def test_corrupt_gzip_is_400(self, write_key: str) -> None:
        response = post("batch", None, key=write_key, raw=b"not gzip", **{"Content-Encoding": "gzip"})
        assert response.status_code == 400
        assert "gzip" in response.json()["message"]

    def test_gzip_bomb_is_refused(self, write_key: str) -> None:
        raw = gzip.compress(b" " * (2 * 1024 * 1024))
        response = post("batch", None, key=write_key, raw=raw, **{"Content-Encoding": "gzip"})
        assert (response.status_code, response.json()["code"]) == (413, "request_too_large")

    @pytest.mark.parametrize("encoding", [None, "identity", "Identity ", "gzip"])
    def test_a_body_over_the_limit_is_413_json_whatever_its_encoding(
        self, write_key: str, encoding: str | None
    ) -> None:
        raw = json.dumps({"batch": [track(properties={"blob": "x" * 1000})] * 600}).encode()
        assert len(raw) > 500 * 1024
        if encoding == "gzip":
            raw = gzip.compress(raw)
        headers = {"Content-Encoding": encoding} if encoding else {}
        response = post("batch", None, key=write_key, raw=raw, **headers)
        assert response.status_code == 413
        assert response["Content-Type"] == "application/json"
        assert response.json()["code"] == "request_too_large"
        assert "500 KB" in response.json()["error"]
        assert not Event.objects.exists()
        assert IngestionError.objects.get().error == response.json()["error"]

    def test_a_body_far_over_the_limit_is_refused_before_it_is_read(self, write_key: str) -> None:
        # Past Django's own in-memory limit (2.5 MB) reading the body would answer an HTML 400 page.
        raw = b'{"batch": []}' + b" " * (3 * 1024 * 1024)
        response = post("batch", None, key=write_key, raw=raw, **{"Content-Encoding": "identity"})
        assert (response.status_code, response.json()["code"]) == (413, "request_too_large")


@pytest.mark.django_db
class TestValidation:
    def test_null_ids_are_allowed_when_the_other_is_present(self, write_key: str) -> None:
        assert post("track", {**track(), "userId": None, "anonymousId": "anon-1"}, key=write_key).status_code == 200
        assert post("track", {**track(), "userId": "usr_2", "anonymousId": None}, key=write_key).status_code == 200
        assert Event.objects.count() == 2

    def test_neither_id_is_400_and_logged(self, write_key: str) -> None:
        response = post("track", {**track(), "userId": None, "anonymousId": None}, key=write_key)
        assert response.status_code == 400
        assert response.json()["message"] == "userId or anonymousId is required"
        assert IngestionError.objects.get().error == "userId or anonymousId is required"

    @pytest.mark.parametrize(
        ("route", "body", "reason"),
        [
            ("track", {"userId": "u"}, "track needs an event name"),
            ("group", {"userId": "u"}, "group needs a groupId"),
            ("alias", {"userId": "u"}, "alias needs previousId and userId"),
            ("track", {"userId": "u", "event": "x", "messageId": "m" * 101}, "messageId is longer than 100"),
            ("track", {"userId": "u", "event": "x", "timestamp": "yesterday"}, "is not an ISO 8601"),
            ("track", {"userId": "u", "event": "x", "properties": [1]}, "properties must be an object"),
            ("track", {"userId": {"id": 1}, "event": "x"}, "userId must be a string"),
        ],
    )
    def test_each_missing_part_is_named(self, write_key: str, route: str, body: dict[str, Any], reason: str) -> None:
        response = post(route, body, key=write_key)
        assert response.status_code == 400
        assert reason in response.json()["message"]

    @pytest.mark.parametrize(
        ("raw", "reason"),
        [(b"{not json", "not valid JSON"), (b"[1, 2]", "JSON object"), (b"", "empty"), (b'{"batch": 5}', "batch")],
    )
    def test_bad_request_bodies(self, write_key: str, raw: bytes, reason: str) -> None:
        response = post("batch", None, key=write_key, raw=raw)
        assert response.status_code == 400
        assert reason in response.json()["message"]
        assert IngestionError.objects.filter(source__isnull=False).count() == 1

    def test_message_over_32_kb_is_rejected_alone(self, write_key: str) -> None:
        big = track(properties={"blob": "x" * (33 * 1024)})
        response = post("batch", {"batch": [track(messageId="ok-1"), big, track(messageId="ok-2")]}, key=write_key)
        body = response.json()
        assert response.status_code == 200
        assert body["stored"] == 2
        assert body["rejected"][0]["index"] == 1
        assert "32 KB" in body["rejected"][0]["error"]
        assert set(Event.objects.values_list("message_id", flat=True)) == {"ok-1", "ok-2"}

    def test_request_over_500_kb_is_413_and_stores_nothing(self, write_key: str) -> None:
        batch = [track(properties={"blob": "x" * (20 * 1024)}) for _ in range(30)]
        response = post("batch", {"batch": batch}, key=write_key)
        assert (response.status_code, response.json()["code"]) == (413, "request_too_large")
        assert not Event.objects.exists()

    def test_more_than_2500_messages_is_400(self, write_key: str) -> None:
        response = post("batch", {"batch": [{"type": "track"}] * 2501}, key=write_key)
        assert response.status_code == 400
        assert "2500" in response.json()["message"]

    def test_bad_messages_do_not_lose_their_neighbours(self, write_key: str) -> None:
        batch = [track(messageId="a"), {"type": "track", "userId": "u"}, "junk", track(messageId="b")]
        body = post("batch", {"batch": batch}, key=write_key).json()
        assert body["stored"] == 2
        assert [r["index"] for r in body["rejected"]] == [1, 2]
        assert IngestionError.objects.count() == 2


@pytest.mark.django_db
class TestDeduplicationAndTime:
    def test_a_retried_batch_stores_nothing_twice(self, write_key: str) -> None:
        batch = {"batch": [track(messageId=f"m-{i}") for i in range(5)]}
        assert post("batch", batch, key=write_key).json()["stored"] == 5
        again = post("batch", batch, key=write_key).json()
        assert (again["stored"], again["duplicates"]) == (0, 5)
        assert Event.objects.count() == 5

    def test_duplicates_inside_one_batch(self, write_key: str) -> None:
        body = post("batch", {"batch": [track(messageId="same"), track(messageId="same")]}, key=write_key).json()
        assert (body["stored"], body["duplicates"]) == (1, 1)

    def test_timestamp_is_corrected_for_client_clock_skew(self, write_key: str) -> None:
        # The client's clock runs 1 h fast: it says the event happened at 12:00 and it sent it at 12:05.
        body = {"batch": [track(timestamp="2026-01-01T12:00:00Z")], "sentAt": "2026-01-01T12:05:00Z"}
        before = datetime.now(UTC)
        post("batch", body, key=write_key)
        event = Event.objects.get()
        assert before - timedelta(minutes=5, seconds=5) <= event.timestamp <= event.received_at - timedelta(minutes=5)
        assert event.original_timestamp == datetime(2026, 1, 1, 12, tzinfo=UTC)
        assert event.sent_at == datetime(2026, 1, 1, 12, 5, tzinfo=UTC)

    def test_without_sent_at_the_client_timestamp_is_kept(self, write_key: str) -> None:
        post("track", track(timestamp="2026-01-01T12:00:00+02:00"), key=write_key)
        assert Event.objects.get().timestamp == datetime(2026, 1, 1, 10, tzinfo=UTC)

    def test_batch_context_and_integrations_merge_into_messages(self, write_key: str) -> None:
        body = {
            "batch": [track(context={"ip": "1.2.3.4"}), track(context={"library": {"name": "mine"}})],
            "context": {"library": {"name": "analytics-python"}},
            "integrations": {"All": False},
        }
        post("batch", body, key=write_key)
        contexts = [e.context for e in Event.objects.order_by("id")]
        assert contexts[0] == {"ip": "1.2.3.4", "library": {"name": "analytics-python"}, "integrations": {"All": False}}
        assert contexts[1]["library"] == {"name": "mine"}


@pytest.mark.django_db
class TestIdentity:
    def test_anonymous_history_joins_the_identified_profile(self, write_key: str) -> None:
        post("page", {"anonymousId": "anon-1", "name": "Pricing"}, key=write_key)
        post("track", {"anonymousId": "anon-1", "event": "Signed Up"}, key=write_key)
        post(
            "identify",
            {"anonymousId": "anon-1", "userId": "usr_1", "traits": {"email": "Ada@Acme.test"}},
            key=write_key,
        )
        customer = Customer.objects.get()
        assert customer.user_id == "usr_1"
        assert customer.email == "ada@acme.test"
        assert customer.events.count() == 3
        assert list(customer.anonymous_ids.values_list("anonymous_id", flat=True)) == ["anon-1"]

    def test_existing_user_absorbs_a_new_devices_anonymous_profile(self, write_key: str) -> None:
        post("identify", {"userId": "usr_1", "traits": {"name": "Ada", "plan": "team"}}, key=write_key)
        post("track", {"anonymousId": "phone", "event": "App Opened"}, key=write_key)
        post("identify", {"anonymousId": "phone", "userId": "usr_1"}, key=write_key)
        customer = Customer.objects.get()
        assert customer.events.count() == 3
        merge = ProfileMerge.objects.get()
        assert (merge.outcome, merge.customer_id, merge.linking_id) == ("merged", customer.pk, "phone")
        assert merge.detail["moved"]["audiences.Event"] == 1

    def test_a_user_seen_with_the_same_device_again_is_left_alone(self, write_key: str) -> None:
        for _ in range(3):
            post("track", {"userId": "usr_1", "anonymousId": "laptop", "event": "Clicked"}, key=write_key)
        assert Customer.objects.get().events.count() == 3
        assert not ProfileMerge.objects.exists()

    def test_merges_and_refusals_show_on_the_customer_page(self, write_key: str, admin_user: Any) -> None:
        post("track", {"anonymousId": "phone", "event": "App Opened"}, key=write_key)
        post("identify", {"anonymousId": "phone", "userId": "usr_1"}, key=write_key)
        post("identify", {"anonymousId": "phone", "userId": "usr_2"}, key=write_key)
        client = Client()
        client.force_login(admin_user)
        first = client.get(f"/customers/{Customer.objects.get(user_id='usr_1').pk}/").content.decode()
        assert "Identity history" not in first  # upgraded in place: nothing was merged
        second = client.get(f"/customers/{Customer.objects.get(user_id='usr_2').pk}/").content.decode()
        assert "Not merged" in second
        assert "phone belongs to user usr_1" in second

    def test_a_merged_profiles_stripe_link_moves_to_the_kept_one(self, write_key: str) -> None:
        post("identify", {"userId": "usr_1"}, key=write_key)
        post("track", {"anonymousId": "checkout", "event": "Paid"}, key=write_key)
        Customer.objects.filter(anonymous_ids__anonymous_id="checkout").update(stripe_customer_id="cus_9")
        post("identify", {"anonymousId": "checkout", "userId": "usr_1"}, key=write_key)
        assert Customer.objects.get().stripe_customer_id == "cus_9"

    def test_two_known_users_are_never_merged(self, write_key: str) -> None:
        post("identify", {"anonymousId": "laptop", "userId": "usr_1"}, key=write_key)
        post("identify", {"anonymousId": "laptop", "userId": "usr_2"}, key=write_key)
        assert Customer.objects.count() == 2
        refusal = ProfileMerge.objects.get()
        assert refusal.outcome == "refused"
        assert refusal.customer.user_id == "usr_2"
        assert Customer.objects.get(user_id="usr_1").events.count() == 1

    def test_alias_renames_a_user_and_keeps_the_old_id_findable(self, write_key: str) -> None:
        post("track", {"userId": "old-id", "event": "Signed Up"}, key=write_key)
        post("alias", {"previousId": "old-id", "userId": "new-id"}, key=write_key)
        post("track", {"userId": "new-id", "event": "Project Created"}, key=write_key)
        customer = Customer.objects.get()
        assert customer.user_id == "new-id"
        assert customer.events.count() == 3

    def test_alias_joins_an_anonymous_profile(self, write_key: str) -> None:
        post("track", {"anonymousId": "anon-9", "event": "Viewed"}, key=write_key)
        post("track", {"userId": "usr_9", "event": "Signed Up"}, key=write_key)
        post("alias", {"previousId": "anon-9", "userId": "usr_9"}, key=write_key)
        assert Customer.objects.get().events.count() == 3

    def test_identify_in_the_same_batch_as_anonymous_events(self, write_key: str) -> None:
        batch = [
            {"type": "page", "anonymousId": "a1", "name": "Home"},
            {"type": "identify", "anonymousId": "a1", "userId": "usr_5", "traits": {"firstName": "Grace"}},
            {"type": "track", "userId": "usr_5", "event": "Project Created"},
        ]
        post("batch", {"batch": batch}, key=write_key)
        customer = Customer.objects.get()
        assert (customer.user_id, customer.name, customer.events.count()) == ("usr_5", "Grace", 3)

    def test_group_sets_account_traits_and_membership(self, write_key: str) -> None:
        traits = {"name": "Acme", "website": "https://acme.test", "employees": 40}
        post("group", {"userId": "usr_1", "groupId": "grp_acme", "traits": traits}, key=write_key)
        post("track", {"userId": "usr_2", "event": "x", "context": {"groupId": "grp_acme"}}, key=write_key)
        account = Account.objects.get()
        assert (account.name, account.domain, account.traits["employees"]) == ("Acme", "acme.test", 40)
        assert set(account.members.values_list("user_id", flat=True)) == {"usr_1", "usr_2"}

    def test_first_and_last_seen_follow_event_time(self, write_key: str) -> None:
        post("track", track(timestamp="2026-01-02T00:00:00Z"), key=write_key)
        post("track", track(timestamp="2026-01-01T00:00:00Z"), key=write_key)
        customer = Customer.objects.get()
        assert customer.first_seen_at == datetime(2026, 1, 1, tzinfo=UTC)
        assert customer.last_seen_at == datetime(2026, 1, 2, tzinfo=UTC)


@pytest.mark.django_db
class TestFuzzerFindings:
    """Bodies the fuzzer (test_fuzz_tracking.py) found answered with a 500; each is now a 400 or a rejected call."""

    def test_a_call_nested_deeper_than_the_encoders_write_is_rejected(self, write_key: str) -> None:
        deep: Any = []
        for _ in range(300):
            deep = [deep]
        response = post("batch", {"batch": [track(properties={"deep": deep}), track("Kept")]}, key=write_key)
        assert response.status_code == 200
        assert "nested more than" in response.json()["rejected"][0]["error"]
        assert list(Event.objects.values_list("name", flat=True)) == ["Kept"]

    def test_a_type_that_is_not_a_string_is_rejected(self, write_key: str) -> None:
        response = post("batch", {"batch": [track(type=["track"]), track(type={"a": 1})]}, key=write_key)
        assert [item["index"] for item in response.json()["rejected"]] == [0, 1]

    def test_a_nul_character_is_rejected_not_sent_to_the_database(self, write_key: str) -> None:
        batch = [track(userId="usr\x00"), track(properties={"k\x00": 1}), track(messageId="m\x00"), track("Kept")]
        response = post("batch", {"batch": batch, "context": {"ip": "1.2.3.4"}}, key=write_key)
        answer = response.json()
        assert [item["index"] for item in answer["rejected"]] == [0, 1, 2]
        assert answer["rejected"][2]["messageId"] is None
        assert "NUL" in answer["rejected"][0]["error"]
        assert list(Event.objects.values_list("name", flat=True)) == ["Kept"]
        assert post("track", track(context={"x": "\x00"}), key=write_key).status_code == 400
        assert post("batch", {"batch": [track()], "context": {"x": "\x00"}}, key=write_key).status_code == 400

    @pytest.mark.parametrize(
        ("timestamp", "sent_at"),
        [("9999-12-31T00:00:00Z", "0001-01-02T00:00:00Z"), ("0001-01-01T00:00:00+05:00", None)],
    )
    def test_dates_out_of_range_are_rejected(self, write_key: str, timestamp: str, sent_at: str | None) -> None:
        response = post("track", track(timestamp=timestamp, sentAt=sent_at), key=write_key)
        assert response.status_code == 400
        assert "is not between 1970 and 3000" in response.json()["error"]


def raw_batch(*calls: str) -> bytes:
    """A batch body written by hand: json.dumps refuses what these tests send (1,000 levels, bad bytes)."""
    return ('{"batch": [' + ", ".join(calls) + "]}").encode("utf-8", "surrogateescape")


KEPT = json.dumps(track("Kept", messageId="kept-1"))
ALSO_KEPT = json.dumps(track("Also Kept", messageId="kept-2"))


@pytest.mark.django_db
class TestOneBadCallIsRejectedAlone:
    """Issue 18: whatever one call holds, the batch answers 200, that call is listed and logged with its reason,
    and its neighbours are stored."""

    def assert_rejected_alone(self, response: Any, reason: str) -> None:
        assert response.status_code == 200, response.content
        answer = response.json()
        assert answer["stored"] == 2
        assert [(item["index"], item["messageId"]) for item in answer["rejected"]] == [(1, "bad-1")]
        assert reason in answer["rejected"][0]["error"]
        assert set(Event.objects.values_list("name", flat=True)) == {"Kept", "Also Kept"}
        logged = IngestionError.objects.get()
        assert (logged.message_id, logged.error) == ("bad-1", answer["rejected"][0]["error"])
        assert "bad-1" in logged.payload

    @pytest.mark.parametrize(
        ("opening", "closing"),
        [("[", "]"), ('{"a": ', "}")],
        ids=["lists", "objects"],
    )
    @pytest.mark.parametrize("levels", [1000, 5000], ids=["1000-deep", "past-the-parsers-limit"])
    def test_a_property_nested_too_deep(self, write_key: str, opening: str, closing: str, levels: int) -> None:
        deep = opening * levels + "1" + closing * levels
        bad = '{"type": "track", "event": "Deep", "userId": "u", "messageId": "bad-1", "properties": {"d": ' + deep
        response = post("batch", None, key=write_key, raw=raw_batch(KEPT, bad + "}}", ALSO_KEPT))
        self.assert_rejected_alone(response, "nested more than 200 levels deep")

    @pytest.mark.parametrize(
        "bad_string",
        [b"caf\xe9", b"\xff\xfe", b"half \xe2\x82", b"\\ud800", b"\\udc00 alone"],
        ids=["latin-1", "junk-bytes", "cut-sequence", "high-surrogate", "low-surrogate"],
    )
    @pytest.mark.parametrize("where", ["property", "nested key", "userId", "event name", "context"])
    def test_text_that_is_not_utf8(self, write_key: str, bad_string: bytes, where: str) -> None:
        text = bad_string.decode("utf-8", "surrogateescape")
        fields = {
            "property": '"properties": {"note": "' + text + '"}',
            "nested key": '"properties": {"a": {"' + text + '": 1}}',
            "userId": '"userId": "' + text + '"',
            "event name": '"event": "' + text + '"',
            "context": '"context": {"page": {"title": "' + text + '"}}',
        }[where]
        bad = '{"type": "track", "event": "x", "userId": "u", "messageId": "bad-1", ' + fields + "}"
        response = post("batch", None, key=write_key, raw=raw_batch(KEPT, bad, ALSO_KEPT))
        self.assert_rejected_alone(response, "not valid UTF-8")

    def test_the_reason_shows_on_the_ingestion_errors_page(self, write_key: str, admin_user: Any) -> None:
        deep = "[" * 1000 + "]" * 1000
        bad = '{"type": "track", "event": "Deep", "userId": "u", "messageId": "bad-1", "properties": {"d": ' + deep
        post("batch", None, key=write_key, raw=raw_batch(KEPT, bad + "}}", ALSO_KEPT))
        client = Client()
        client.force_login(admin_user)
        page = client.get("/integrations/errors/")
        assert page.status_code == 200
        assert "message is nested more than 200 levels deep" in page.content.decode()

    def test_a_raw_nul_byte_inside_a_string(self, write_key: str) -> None:
        bad = '{"type": "track", "event": "x", "userId": "u", "messageId": "bad-1", "properties": {"k": "a\x00b"}}'
        response = post("batch", None, key=write_key, raw=raw_batch(KEPT, bad, ALSO_KEPT))
        self.assert_rejected_alone(response, "NUL")

    @pytest.mark.parametrize(
        "fields",
        [
            {"properties": {"outer": {"in\x00ner": 1}}},
            {"properties": {"list": [{"deep": ["x\x00"]}]}},
            {"type": "identify", "traits": {"email": "ada\x00@acme.test"}},
            {"type": "identify", "context": {"traits": {"na\x00me": "Ada"}}},
            {"type": "group", "groupId": "grp\x00", "traits": {}},
            {"type": "alias", "previousId": "old\x00"},
            {"type": "page", "name": "Pri\x00cing"},
            {"event": "Sign\x00ed Up"},
            {"anonymousId": "anon\x00"},
            {"context": {"groupId": "grp\x00"}},
            {"integrations": {"Mix\x00panel": False}},
        ],
    )
    def test_a_nul_anywhere_in_the_call(self, write_key: str, fields: dict[str, Any]) -> None:
        bad = json.dumps(track(messageId="bad-1", **fields))
        response = post("batch", None, key=write_key, raw=raw_batch(KEPT, bad, ALSO_KEPT))
        self.assert_rejected_alone(response, "NUL")

    def test_a_number_out_of_range_in_an_otherwise_unreadable_body(self, write_key: str) -> None:
        # The lenient parse reads numbers as orjson does: a 30-digit integer is a float, 1e400 refuses the body.
        big = json.dumps(track("Big", messageId="big-1", properties={"n": 10**30}))
        bad = '{"type": "track", "event": "x", "userId": "u", "messageId": "bad-1", "properties": {"k": "\\ud800"}}'
        answer = post("batch", None, key=write_key, raw=raw_batch(big, bad)).json()
        assert (answer["stored"], [r["index"] for r in answer["rejected"]]) == (1, [1])
        assert float(Event.objects.get().properties["n"]) == 1e30  # jsonb gives the number back as an integer
        infinite = raw_batch(bad, '{"type": "track", "event": "x", "userId": "u", "properties": {"n": 1e400}}')
        assert post("batch", None, key=write_key, raw=infinite).status_code == 400

    def test_a_write_key_that_is_not_text_is_401(self, write_key: str) -> None:
        raw = b'{"writeKey": "\\udc00", "event": "x", "userId": "u"}'
        response = post("track", None, raw=raw)
        assert (response.status_code, response.json()["code"]) == (401, "invalid_write_key")

    def test_a_single_call_with_bad_text_is_400_with_its_reason(self, write_key: str) -> None:
        response = post("track", None, key=write_key, raw=b'{"event": "x", "userId": "u\xff"}')
        assert response.status_code == 400
        assert response.json()["error"].startswith("message contains text that is not valid UTF-8")
        # The log keeps the bad byte visible as an escape, in text PostgreSQL can store.
        assert json.loads(IngestionError.objects.get().payload)["userId"] == "u\\udcff"


@pytest.mark.django_db
class TestEventTimeWindow:
    """Issue 18: the event time (after Segment's clock correction) must be from 2000 on and at most 24 hours after
    the call was received; a call outside is rejected alone, with the reason."""

    def test_a_timestamp_more_than_a_day_ahead_is_rejected_alone(self, write_key: str) -> None:
        ahead = (datetime.now(UTC) + timedelta(hours=25)).isoformat()
        batch = [track(messageId="kept-1"), track(messageId="bad-1", timestamp=ahead), track(messageId="kept-2")]
        answer = post("batch", {"batch": batch}, key=write_key).json()
        assert answer["stored"] == 2
        assert [item["index"] for item in answer["rejected"]] == [1]
        assert "more than 24 hours after the call was received" in answer["rejected"][0]["error"]
        assert IngestionError.objects.get().message_id == "bad-1"

    @pytest.mark.parametrize("timestamp", ["2999-01-01T00:00:00Z", "2500-06-01T00:00:00+02:00"])
    def test_centuries_ahead_is_rejected(self, write_key: str, timestamp: str) -> None:
        response = post("track", track(timestamp=timestamp), key=write_key)
        assert response.status_code == 400
        assert "more than 24 hours after" in response.json()["error"]
        assert not Event.objects.exists()

    def test_a_few_hours_ahead_is_accepted(self, write_key: str) -> None:
        ahead = datetime.now(UTC) + timedelta(hours=23)
        assert post("track", track(timestamp=ahead.isoformat()), key=write_key).status_code == 200
        assert Event.objects.get().timestamp == ahead

    @pytest.mark.parametrize("timestamp", ["1999-12-31T23:59:59Z", "1970-01-01T00:00:00Z"])
    def test_before_2000_is_rejected(self, write_key: str, timestamp: str) -> None:
        response = post("track", track(timestamp=timestamp), key=write_key)
        assert response.status_code == 400
        assert "is before 2000-01-01" in response.json()["error"]

    def test_the_window_applies_to_the_corrected_time(self, write_key: str) -> None:
        # A device whose clock was reset to 1970 sends both times from that clock: corrected, the event is recent.
        body = {
            "batch": [track(messageId="reset-clock", timestamp="1970-01-01T00:10:00Z")],
            "sentAt": "1970-01-01T00:15:00Z",
        }
        answer = post("batch", body, key=write_key).json()
        assert (answer["stored"], answer["rejected"]) == (1, [])
        event = Event.objects.get()
        assert timedelta(minutes=4) < event.received_at - event.timestamp < timedelta(minutes=6)
        assert event.original_timestamp == datetime(1970, 1, 1, 0, 10, tzinfo=UTC)
        # A clock that is right while sentAt is a day behind puts the corrected time a day ahead: rejected.
        skewed = {"batch": [track(messageId="skewed", timestamp=datetime.now(UTC).isoformat())]}
        skewed["sentAt"] = (datetime.now(UTC) - timedelta(days=2)).isoformat()  # type: ignore[assignment]
        answer = post("batch", skewed, key=write_key).json()
        assert "after correcting by sentAt" in answer["rejected"][0]["error"]
