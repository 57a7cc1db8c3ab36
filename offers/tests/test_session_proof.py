"""Proof of who asks (issue 18 §1): a write key alone starts nothing, an auth_hash proves one user id, the secret
key starts from the server, and every later call — API or hosted page — needs the session token the start
answered: bound to its session, expiring, and unable to apply a final move twice."""

from __future__ import annotations

import base64
import hashlib
import threading
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.db import connection, connections
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from audiences.models import Source
from audiences.services import auth_hash, source_create, source_rotate_secret
from offers.access import SESSION_TOKEN_PREFIX
from offers.models import CancellationSession, SessionToken
from offers.tests.conftest import SESSIONS, SUBSCRIPTION_ID, ProductAPI, ProductKeys, post, start, stripe_subscription

pytestmark = pytest.mark.django_db


def basic(write_key: str) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


def browser_start(keys: ProductKeys, body: dict[str, Any]) -> Any:
    """A start as a browser sends it: the write key, and whatever body the test gives (auth_hash or not)."""
    return APIClient().post(SESSIONS, body, format="json", HTTP_AUTHORIZATION=basic(keys.write_key))


class TestBrowserStart:
    def test_a_write_key_alone_cannot_start_a_session_for_any_user_id(self, bob, flow, product_keys):
        answer = browser_start(product_keys, {"user_id": "usr_bob"})

        assert answer.status_code == 401
        body = answer.json()
        assert body["code"] == "auth_hash_missing"
        assert "auth_hash" in body["error"] and "Bearer <secret key>" in body["error"]
        assert answer["WWW-Authenticate"]
        assert not CancellationSession.objects.exists()

    def test_a_wrong_auth_hash_is_refused(self, bob, tess, flow, product_keys):
        other, _ = source_create(name="Other product")
        for wrong in (
            "0" * 64,
            auth_hash(product_keys.secret_key, "usr_tess"),  # a hash for another customer
            auth_hash(other.secret_key, "usr_bob"),  # signed with another source's key
            "not hex at all",
        ):
            answer = browser_start(product_keys, {"user_id": "usr_bob", "auth_hash": wrong})
            assert answer.status_code == 403, wrong
            assert answer.json()["code"] == "auth_hash_invalid"
        assert not CancellationSession.objects.exists()

    def test_the_correct_hash_starts_the_session_and_answers_its_token(self, bob, flow, product_keys):
        signed = auth_hash(product_keys.secret_key, "usr_bob")
        answer = browser_start(product_keys, {"user_id": "usr_bob", "auth_hash": signed.upper()})

        assert answer.status_code == 201
        body = answer.json()
        assert body["session_token"].startswith(SESSION_TOKEN_PREFIX)
        assert body["session_token"] in body["hosted_url"]
        session = CancellationSession.objects.get(token=body["token"])
        assert (session.customer, session.source) == (bob, product_keys.source)

    def test_an_auth_hash_proves_a_user_id_not_a_subscription(self, bob, flow, product_keys):
        signed = auth_hash(product_keys.secret_key, "usr_bob")
        answer = browser_start(product_keys, {"subscription_id": SUBSCRIPTION_ID, "auth_hash": signed})
        assert (answer.status_code, answer.json()["code"]) == (401, "auth_hash_needs_user_id")

    def test_no_proof_or_a_staff_token_is_told_what_to_send(self, bob, flow, api_client_for, admin_user):
        for client in (APIClient(), api_client_for(admin_user)):
            answer = client.post(SESSIONS, {"user_id": "usr_bob"}, format="json")
            assert answer.status_code == 401
            assert answer.json()["code"] == "proof_missing"
            assert "secret key" in answer.json()["error"] and "auth_hash" in answer.json()["error"]
        wrong = APIClient().post(SESSIONS, {"user_id": "usr_bob"}, format="json", HTTP_AUTHORIZATION=basic("nope"))
        assert (wrong.status_code, wrong.json()["error"]) == (401, "Invalid write key.")

    def test_test_mode_works_from_the_browser_with_a_test_customer(
        self, tess, reasons, make_offer, make_rule, browser_api
    ):
        from offers.models import CancellationFlow, FlowRule

        draft = CancellationFlow.objects.create(name="Draft flow")
        draft.reasons.set([reasons["price"]])
        FlowRule.objects.create(flow=draft, position=1)  # a draft: test customers only
        make_rule(make_offer("trial_extension", "Draft offer", days=7), is_draft=True)

        session = start(browser_api, user_id="usr_tess")
        post(browser_api, session["token"], "reason", {"reason_id": reasons["price"].pk})
        done = post(browser_api, session["token"], "accept")

        assert (session["is_test"], done["outcome"], done["offer_simulated"]) == (True, "saved", True)

    def test_the_product_s_page_may_call_across_origins(self, bob, flow, product_keys):
        page = APIClient()
        for path in (SESSIONS, f"{SESSIONS}some-session-id-0001/accept/"):
            preflight = page.options(path, HTTP_ORIGIN="https://app.example.com")
            assert preflight.status_code == 204
            assert preflight["Access-Control-Allow-Origin"] == "*"
            assert "Authorization" in preflight["Access-Control-Allow-Headers"]
            assert "Access-Control-Allow-Credentials" not in preflight
        signed = auth_hash(product_keys.secret_key, "usr_bob")
        started = browser_start(product_keys, {"user_id": "usr_bob", "auth_hash": signed})
        refused = browser_start(product_keys, {"user_id": "usr_bob"})
        assert started["Access-Control-Allow-Origin"] == refused["Access-Control-Allow-Origin"] == "*"
        assert not CancellationSession.objects.exclude(token=started.json()["token"]).exists()


class TestServerStart:
    def test_the_secret_key_starts_a_session_for_any_customer_and_answers_a_token_and_link(
        self, bob, tess, flow, product_keys
    ):
        server = APIClient()
        server.credentials(HTTP_AUTHORIZATION=f"Bearer {product_keys.secret_key}")
        for user_id in ("usr_bob", "usr_tess"):
            answer = server.post(SESSIONS, {"user_id": user_id}, format="json")
            assert answer.status_code == 201
            body = answer.json()
            assert body["session_token"].startswith(SESSION_TOKEN_PREFIX)
            expires = datetime.fromisoformat(body["session_token_expires_at"])
            assert timedelta(minutes=29) < expires - timezone.now() <= timedelta(minutes=30)
            page = Client().get(urlsplit(body["hosted_url"]).path)
            assert page.status_code == 200 and "Why are you canceling?" in page.content.decode()

    def test_an_unknown_or_inactive_secret_key_or_a_session_token_does_not_start(self, bob, flow, product_api):
        token = product_api.session_tokens[start(product_api)["token"]]
        Source.objects.filter(pk=product_api.keys.source.pk).update(is_active=False)
        for bearer in (product_api.keys.secret_key, "tlsk_" + "x" * 43, token):
            answer = APIClient().post(
                SESSIONS, {"user_id": "usr_bob"}, format="json", HTTP_AUTHORIZATION=f"Bearer {bearer}"
            )
            assert (answer.status_code, answer.json()["code"]) == (401, "secret_key_invalid"), bearer

    def test_the_token_lifetime_is_a_setting(self, bob, flow, product_api, settings):
        settings.CANCELLATION_SESSION_TOKEN_MINUTES = 5
        expires = datetime.fromisoformat(start(product_api)["session_token_expires_at"])
        assert timedelta(minutes=4) < expires - timezone.now() <= timedelta(minutes=5)


class TestSecretRotation:
    def test_the_previous_secret_works_within_the_overlap_and_not_after(self, bob, flow, product_keys):
        old = product_keys.secret_key
        new = source_rotate_secret(source=product_keys.source)

        def starts_with(key: str) -> tuple[int, int]:
            CancellationSession.objects.all().delete()  # each try starts afresh
            hashed = browser_start(product_keys, {"user_id": "usr_bob", "auth_hash": auth_hash(key, "usr_bob")})
            CancellationSession.objects.all().delete()
            server = APIClient().post(
                SESSIONS, {"user_id": "usr_bob"}, format="json", HTTP_AUTHORIZATION=f"Bearer {key}"
            )
            return hashed.status_code, server.status_code

        assert starts_with(new) == (201, 201)
        assert starts_with(old) == (201, 201)  # within the 24 hours after the rotation
        Source.objects.filter(pk=product_keys.source.pk).update(
            secret_rotated_at=timezone.now() - timedelta(hours=24, seconds=1)
        )
        assert starts_with(old) == (403, 401)
        assert starts_with(new) == (201, 201)


class TestSessionToken:
    MOVES = ("", "reason", "accept", "decline", "confirm-cancel")

    def call(self, token: str, move: str, authorization: str | None) -> Any:
        client = APIClient()
        if authorization:
            client.credentials(HTTP_AUTHORIZATION=authorization)
        path = f"{SESSIONS}{token}/{move + '/' if move else ''}"
        return client.get(path) if not move else client.post(path, {}, format="json")

    def test_every_call_on_a_session_needs_its_session_token(self, bob, flow, product_api):
        token = start(product_api)["token"]
        refusals = {
            None: "session_token_missing",
            basic(product_api.keys.write_key): "session_token_missing",
            f"Bearer {product_api.keys.secret_key}": "session_token_missing",
            f"Bearer {token}": "session_token_invalid",  # the session's public id proves nothing
            "Bearer tlst_not-a-token-at-all": "session_token_invalid",
        }
        for authorization, code in refusals.items():
            for move in self.MOVES:
                answer = self.call(token, move, authorization)
                assert (answer.status_code, answer.json()["code"]) == (401, code), (authorization, move)
                assert "session_token" in answer.json()["error"] or "Invalid" in answer.json()["error"]
        write_key_only = self.call(token, "accept", basic(product_api.keys.write_key)).json()
        assert "A write key cannot act on a session" in write_key_only["error"]
        assert CancellationSession.objects.get(token=token).stage == "reason"

    def test_a_token_for_customer_a_cannot_act_on_customer_b_s_session(self, bob, tess, flow, reasons, product_api):
        bobs = start(product_api, user_id="usr_bob")
        tess_session = start(product_api, user_id="usr_tess")["token"]
        bobs_token = product_api.session_tokens[bobs["token"]]

        for move in self.MOVES:
            answer = self.call(tess_session, move, f"Bearer {bobs_token}")
            assert (answer.status_code, answer.json()["code"]) == (403, "session_token_other_session"), move
        reason = APIClient().post(
            f"{SESSIONS}{tess_session}/reason/",
            {"reason_id": reasons["price"].pk},
            format="json",
            HTTP_AUTHORIZATION=f"Bearer {bobs_token}",
        )
        assert reason.status_code == 403
        assert CancellationSession.objects.get(token=tess_session).stage == "reason"
        assert post(product_api, bobs["token"], "reason", {"reason_id": reasons["price"].pk})["stage"] != "reason"

    def test_the_token_is_random_and_only_its_digest_is_stored(self, bob, flow, product_api):
        first = start(product_api)
        token = product_api.session_tokens[first["token"]]
        again = product_api.start_call({"user_id": "usr_bob"}).json()  # resumes the session with a new token

        assert again["token"] == first["token"] and again["session_token"] != token
        assert len(token) >= len(SESSION_TOKEN_PREFIX) + 43  # 32 random bytes
        rows = list(SessionToken.objects.values_list("digest", flat=True))
        assert hashlib.sha256(token.encode()).hexdigest() in rows
        assert token not in rows and first["token"] not in token
        for session_token in (token, again["session_token"]):
            assert self.call(first["token"], "", f"Bearer {session_token}").status_code == 200

    def test_an_expired_token_gets_a_clear_401(self, bob, flow, product_api):
        session = start(product_api)
        SessionToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

        for move in self.MOVES:
            answer = product_api.session_call(session["token"], move)
            assert answer.status_code == 401, move
            assert answer.json()["code"] == "session_token_expired"
            assert "expired" in answer.json()["error"] and "start the session again" in answer.json()["error"]
        page = Client().get(urlsplit(session["hosted_url"]).path)
        assert page.status_code == 403
        assert "This cancellation link has expired" in page.content.decode()
        assert Client().post(urlsplit(session["hosted_url"]).path, {"action": "confirm"}).status_code == 403
        assert CancellationSession.objects.get(token=session["token"]).stage == "reason"

    def test_expired_tokens_are_purged_after_a_day(self, bob, flow, product_api):
        from offers.access import session_tokens_purge

        start(product_api)
        start(product_api)
        SessionToken.objects.filter(pk=SessionToken.objects.order_by("pk").first().pk).update(  # type: ignore[union-attr]
            expires_at=timezone.now() - timedelta(days=1, seconds=1)
        )
        assert session_tokens_purge() == 1
        assert SessionToken.objects.count() == 1

    def test_the_final_move_applies_once_and_another_final_move_is_refused(
        self, fake, stripe_prices, bob, flow, reasons, make_offer, make_rule, product_api
    ):
        fake.add(stripe_subscription())
        make_rule(make_offer("trial_extension", "Two more weeks", days=14))
        session = start(product_api)
        post(product_api, session["token"], "reason", {"reason_id": reasons["unused"].pk})

        saved = post(product_api, session["token"], "accept")
        assert post(product_api, session["token"], "accept") == saved  # a replay answers the same state…
        page = Client().post(urlsplit(session["hosted_url"]).path, {"action": "accept"})
        assert page.status_code == 302
        assert len(fake.requests_to("POST", f"/v1/subscriptions/{SUBSCRIPTION_ID}")) == 1  # …and sends nothing

        refused = post(product_api, session["token"], "confirm-cancel", expect=409)
        assert refused["code"] == "session_saved"
        assert Client().post(urlsplit(session["hosted_url"]).path, {"action": "confirm"}).status_code == 409
        assert len(fake.requests_to("POST")) == 1
        assert CancellationSession.objects.get(token=session["token"]).outcome == "saved"


def test_the_openapi_schema_describes_the_three_proofs(admin_user, api_client_for):
    schema = api_client_for(admin_user).get("/api/schema/?format=json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["writeKey"]["scheme"] == "basic" and "auth_hash" in schemes["writeKey"]["description"]
    assert schemes["secretKey"]["scheme"] == "bearer"
    assert schemes["sessionToken"]["scheme"] == "bearer"
    paths = schema["paths"]
    start_security = paths["/api/v1/cancellation-sessions/"]["post"]["security"]
    assert {name for entry in start_security for name in entry} == {"writeKey", "secretKey"}
    accept = next(item for path, item in paths.items() if path.endswith("/accept/"))
    assert accept["post"]["security"] == [{"sessionToken": []}]
    start_body = schema["components"]["schemas"]["Start"]["properties"]
    assert "auth_hash" in start_body


@pytest.mark.django_db(transaction=True)
def test_two_different_final_moves_racing_apply_one(fake, stripe_prices, bob, flow, reasons, make_offer, make_rule):
    """The product and the customer's page send accept and confirm-cancel at the same moment with the same token
    (two connections): the session row lock lets one through, and the other is refused or answers its result."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    fake.add(stripe_subscription())
    make_rule(make_offer("trial_extension", "Two more weeks", days=14))
    source, _ = source_create(name="Product")
    keys = ProductKeys(source=source, write_key="", secret_key=source.secret_key)
    api = ProductAPI(keys)
    session = start(api)
    post(api, session["token"], "reason", {"reason_id": reasons["unused"].pk})
    barrier = threading.Barrier(2)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def move(name: str) -> None:
        caller = ProductAPI(keys)
        caller.session_tokens.update(api.session_tokens)  # both callers hold the same session token
        try:
            barrier.wait(timeout=10)
            statuses.append(caller.session_call(session["token"], name).status_code)
        except BaseException as exc:  # reported below; a thread cannot fail the test itself
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=move, args=(name,)) for name in ("accept", "confirm-cancel")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    outcome = CancellationSession.objects.get(token=session["token"]).outcome
    assert outcome in ("saved", "canceled")
    assert sorted(statuses) == [200, 409]
    assert len(fake.requests_to("POST")) == 1  # one final move reached Stripe
