"""The session API's doors and errors, outcome timing, the Saved status seen by segments, "used by", reports."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from audiences.models import Customer
from config.schedules import SCHEDULES
from integrations.stripe.models import Subscription
from offers import selectors, sessions
from offers.models import CancellationSession, SessionStep
from offers.tasks import expire_sessions
from offers.tests.conftest import SUBSCRIPTION_ID, post, start, stripe_subscription
from segments.evaluation import segment_evaluate
from segments.models import SegmentMembership
from segments.usage import segment_uses

pytestmark = pytest.mark.django_db


class TestStart:
    def test_start_answers_the_flow_and_its_reasons(self, bob, flow, reasons, product_api):
        answer = product_api.start_call({"subscription_id": SUBSCRIPTION_ID})

        assert answer.status_code == 201
        body = answer.json()
        assert body["stage"] == "reason"
        assert body["outcome"] == "incomplete"
        assert body["flow"]["name"] == "Standard"
        assert [r["label"] for r in body["reasons"]] == ["Too expensive", "Missing features", "Not using it"]
        assert body["subscription_id"] == SUBSCRIPTION_ID
        session: Any = CancellationSession.objects.get(token=body["token"])
        assert (session.customer, session.mrr_cents, session.source.name) == (bob, 4900, "Product")

    def test_starting_again_resumes_the_open_session(self, bob, flow, product_api):
        first = start(product_api)
        again = product_api.start_call({"user_id": "usr_bob"})
        assert again.status_code == 200
        assert again.json()["token"] == first["token"]

    def test_a_session_past_its_24_hours_is_deflected_and_a_new_one_starts(self, bob, flow, product_api):
        old = start(product_api)["token"]
        CancellationSession.objects.filter(token=old).update(created_at=timezone.now() - timedelta(hours=25))

        new = product_api.start_call({"user_id": "usr_bob"})

        assert new.status_code == 201
        assert new.json()["token"] != old
        assert CancellationSession.objects.get(token=old).outcome == "deflected"

    def test_the_database_allows_one_open_session_per_subscription(self, bob, flow, product_api):
        from django.db import IntegrityError, transaction

        start(product_api)
        with pytest.raises(IntegrityError), transaction.atomic():
            CancellationSession.objects.create(
                token="second-open-session-token", customer=bob, subscription=bob.subscriptions.get(), flow=flow
            )

    @pytest.mark.parametrize(
        ("body", "status", "code"),
        [
            ({}, 400, None),
            ({"user_id": "usr_nobody"}, 404, "not_found"),
            ({"subscription_id": "sub_nope"}, 404, "not_found"),
            ({"subscription_id": SUBSCRIPTION_ID, "user_id": "usr_other"}, 404, "not_found"),
        ],
    )
    def test_bad_input(self, bob, flow, product_api, body, status, code):
        answer = product_api.start_call(body)
        assert answer.status_code == status
        assert answer.json()["error"]
        if code:
            assert answer.json()["code"] == code

    def test_a_canceled_subscription_cannot_start(self, bob, flow, product_api):
        Subscription.objects.filter(customer=bob).update(status="canceled")
        answer = product_api.start_call({"subscription_id": SUBSCRIPTION_ID})
        assert (answer.status_code, answer.json()["code"]) == (409, "subscription_canceled")

    def test_a_subscription_not_in_stripe_cannot_start_a_live_session(self, bob, flow, product_api):
        Subscription.objects.filter(customer=bob).update(stripe_subscription_id=None)
        answer = product_api.start_call({"user_id": "usr_bob"})
        assert (answer.status_code, answer.json()["code"]) == (409, "no_stripe")


class TestWrongMoves:
    def test_a_session_token_acts_only_on_its_own_session(self, bob, flow, product_api):
        token = start(product_api)["token"]
        product_api.session_tokens["no-such-session-token-xyz"] = product_api.session_tokens[token]
        answer = product_api.session_call("no-such-session-token-xyz", "accept")
        assert (answer.status_code, answer.json()["code"]) == (403, "session_token_other_session")

    def test_moves_out_of_order(self, bob, flow, reasons, make_rule, product_api):
        make_rule()  # no offer
        token = start(product_api)["token"]
        assert post(product_api, token, "accept", expect=409)["code"] == "no_offer"
        assert post(product_api, token, "decline", expect=409)["code"] == "no_offer"
        assert post(product_api, token, "confirm-cancel", expect=409)["code"] == "reason_missing"
        assert post(product_api, token, "reason", {}, expect=400)["code"] == "missing_reason"
        assert post(product_api, token, "reason", {"reason_id": 999_999}, expect=400)["code"] == "unknown_reason"
        post(product_api, token, "reason", {"reason_id": reasons["price"].pk})
        changed = post(product_api, token, "reason", {"reason_id": reasons["unused"].pk}, expect=409)
        assert changed["code"] == "reason_already_given"
        assert post(product_api, token, "accept", expect=409)["code"] == "no_offer"

    def test_a_finished_session_only_repeats_its_answer(
        self, fake, stripe_prices, bob, flow, reasons, make_rule, product_api
    ):
        fake.add(stripe_subscription())
        make_rule()
        token = start(product_api)["token"]
        post(product_api, token, "reason", {"reason_id": reasons["price"].pk})
        first = post(product_api, token, "confirm-cancel")
        assert post(product_api, token, "confirm-cancel") == first
        assert len(fake.requests_to("POST")) == 1
        assert post(product_api, token, "decline", expect=409)["code"] == "session_canceled"

    def test_feedback_is_limited(self, bob, flow, reasons, product_api):
        token = start(product_api)["token"]
        answer = post(
            product_api, token, "reason", {"reason_id": reasons["price"].pk, "feedback": "x" * 5001}, expect=400
        )
        assert "feedback" in answer["error"]


class TestOutcomeTiming:
    def test_an_incomplete_session_is_deflected_24_hours_after_it_started(self, bob, flow, product_api):
        token = start(product_api)["token"]
        session = CancellationSession.objects.get(token=token)

        assert sessions.sessions_expire(now=session.created_at + timedelta(hours=23, minutes=59)) == 0
        assert sessions.sessions_expire(now=session.created_at + timedelta(hours=24, minutes=3)) == 1
        assert sessions.sessions_expire(now=session.created_at + timedelta(hours=25)) == 0

        session.refresh_from_db()
        assert session.outcome == "deflected"
        assert session.outcome_at == session.created_at + timedelta(hours=24)
        assert post(product_api, token, "reason", {"reason_id": 1}, expect=409)["code"] == "session_deflected"

    def test_the_beat_task_expires_and_is_scheduled(self, bob, flow, product_api):
        token = start(product_api)["token"]
        CancellationSession.objects.filter(token=token).update(created_at=timezone.now() - timedelta(hours=30))
        assert expire_sessions.delay().get() == {"deflected": 1, "tokens_purged": 0}
        assert "offers.tasks.expire_sessions" in {schedule.task for schedule in SCHEDULES}

    def test_finished_sessions_are_left_alone(self, bob, flow, reasons, make_offer, make_rule, tess, product_api):
        make_rule(make_offer("trial_extension", days=7))
        token = start(product_api, user_id="usr_tess")["token"]
        post(product_api, token, "reason", {"reason_id": reasons["price"].pk})
        post(product_api, token, "accept")
        assert sessions.sessions_expire(now=timezone.now() + timedelta(days=2)) == 0


class TestSavedStatus:
    def test_a_save_makes_the_subscriber_saved_for_segments(
        self, fake, stripe_prices, bob, flow, reasons, make_offer, make_rule, make_segment, product_api
    ):
        fake.add(stripe_subscription())
        saved_segment = make_segment("Saved", {"property": "subscriber.status", "operator": "equals", "value": "saved"})
        make_rule(make_offer("pause", unit="weeks", count=2))
        token = start(product_api)["token"]
        post(product_api, token, "reason", {"reason_id": reasons["unused"].pk})
        segment_evaluate(segment=saved_segment)
        assert not SegmentMembership.objects.filter(segment=saved_segment, customer=bob).exists()

        post(product_api, token, "accept")

        assert Customer.objects.get(pk=bob.pk).subscriber_status == "saved"
        assert segment_evaluate(segment=saved_segment).entered == 1
        assert SegmentMembership.objects.filter(segment=saved_segment, customer=bob).exists()
        session = bob.cancellation_sessions.get()
        assert session.accepted_offer is not None
        assert session.outcome_at is not None

    def test_a_failed_accept_does_not_save(
        self, fake, stripe_prices, bob, flow, reasons, make_offer, make_rule, product_api
    ):
        fake.add(stripe_subscription())
        make_rule(make_offer("pause", unit="weeks", count=2))
        token = start(product_api)["token"]
        post(product_api, token, "reason", {"reason_id": reasons["unused"].pk})
        fake.fail_next(1, 400)
        post(product_api, token, "accept", expect=502)
        assert Customer.objects.get(pk=bob.pk).subscriber_status == "active"
        step = SessionStep.objects.get(session__token=token, kind="accept")
        assert step.stripe_calls[0]["error"]["http_status"] == 400


class TestUsedBy:
    def test_rules_using_a_segment_are_listed(self, flow, make_offer, make_rule, make_segment):
        segment = make_segment("At risk", {"property": "subscriber.mrr", "operator": "gte", "value": 10})
        make_rule(make_offer("trial_extension", days=7), segments=[segment], name="Keep the at-risk", is_draft=False)
        make_rule(segments=[segment], name="Draft idea", is_draft=True)
        make_rule(segments=[segment], name="Switched off", is_active=False)

        uses = {(use.kind, use.name) for use in segment_uses(segment)}

        assert uses == {("offer rule (live)", "Keep the at-risk"), ("offer rule (draft)", "Draft idea")}


class TestReport:
    def test_save_rate_and_mrr_saved(self, bob, tess, flow, plans):
        sub = bob.subscriptions.get()
        now = timezone.now()
        for n, outcome in enumerate(["saved", "saved", "canceled", "deflected", "incomplete"]):
            CancellationSession.objects.create(
                token=f"report-session-token-{n:04d}", customer=bob, subscription=sub, flow=flow, outcome=outcome,
                outcome_at=None if outcome == "incomplete" else now, mrr_cents=4900,
            )  # fmt: skip
        CancellationSession.objects.create(
            token="report-test-session-0001", customer=tess, subscription=tess.subscriptions.get(), flow=flow,
            outcome="saved", outcome_at=now, is_test=True, mrr_cents=4900,
        )  # fmt: skip

        report = selectors.session_report()

        assert report == {
            "total": 5, "saved": 2, "canceled": 1, "deflected": 1, "incomplete": 1,
            "mrr_saved_cents": 9800, "save_rate": round(2 / 3, 4),
        }  # fmt: skip
