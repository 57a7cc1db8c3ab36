"""The retention report: sessions by outcome, save rate, MRR saved and still saved after 30 days (against the
billing mirror), acceptance by offer and reason, win-back recoveries and the daily chart — in a fixed number
of aggregate queries — and the page and API that show it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from audiences.models import Customer
from config.roles import Role
from conftest import TEST_PASSWORD
from offers.models import CancellationFlow, CancellationReason, CancellationSession, Offer
from offers.selectors import cancellation_report, report_json
from trials.models import Plan, Subscription

pytestmark = pytest.mark.django_db

REPORTS = "/api/v1/cancellation-reports/"


class Story:
    """Sessions placed at chosen moments, each on its own subscription (so billing can say how it lasted)."""

    def __init__(self, plan: Plan, flow: CancellationFlow) -> None:
        self.plan, self.flow, self.count = plan, flow, 0
        self.now = timezone.now()

    def session(
        self,
        outcome: str,
        *,
        days_ago: float,
        mrr: int = 0,
        reason: CancellationReason | None = None,
        offered: Offer | None = None,
        accepted: bool = False,
        kind: str = CancellationSession.Kind.CANCELLATION,
        subscription_status: str = Subscription.Status.ACTIVE,
        canceled_days_ago: float | None = None,
        is_test: bool = False,
    ) -> CancellationSession:
        self.count += 1
        at = self.now - timedelta(days=days_ago)
        customer = Customer.objects.create(user_id=f"usr_{self.count}", is_test=is_test)
        subscription = Subscription.objects.create(
            customer=customer,
            plan=self.plan,
            status=subscription_status,
            started_at=at - timedelta(days=60),
            canceled_at=None if canceled_days_ago is None else self.now - timedelta(days=canceled_days_ago),
        )
        session = CancellationSession.objects.create(
            token=f"token-{self.count:04d}-xxxxxxxxxxxx",
            kind=kind,
            customer=customer,
            subscription=subscription,
            flow=self.flow,
            is_test=is_test,
            reason=reason,
            offered_offer=offered,
            accepted_offer=offered if accepted else None,
            outcome=outcome,
            outcome_at=None if outcome == "incomplete" else at,
            mrr_cents=mrr,
        )
        CancellationSession.objects.filter(pk=session.pk).update(created_at=at)
        return session


@pytest.fixture
def story(plans, flow, reasons, make_offer) -> dict[str, Any]:
    s = Story(plans["monthly"], flow)
    a = make_offer("discount", "A: 20% off", percent_off=20, duration="once")
    b = make_offer("trial_extension", "B: two weeks", days=14)
    c = make_offer("trial_extension", "C: win-back week", days=7)
    price, features = reasons["price"], reasons["features"]
    s.session("saved", days_ago=40, mrr=4900, reason=price, offered=a, accepted=True)  # lasted 30 days
    s.session(
        "saved", days_ago=35, mrr=1000, reason=price, offered=a, accepted=True, subscription_status="canceled"
    )  # saved, but canceled since
    s.session(
        "saved",
        days_ago=50,
        mrr=300,
        reason=price,
        offered=a,
        accepted=True,
        subscription_status="canceled",
        canceled_days_ago=10,
    )  # canceled 40 days after the save: it was still saved 30 days after
    s.session("saved", days_ago=2, mrr=2000, reason=features, offered=b, accepted=True)  # too recent to tell
    s.session("canceled", days_ago=1, mrr=3000, reason=price, offered=a)  # declined, canceled
    s.session("deflected", days_ago=3, mrr=500)
    s.session("incomplete", days_ago=0, mrr=700)
    s.session("recovered", days_ago=5, mrr=4900, offered=c, accepted=True, kind="win_back")
    s.session("deflected", days_ago=5, offered=c, kind="win_back")
    s.session("saved", days_ago=4, mrr=9999, reason=price, offered=a, accepted=True, is_test=True)  # left out
    s.session("saved", days_ago=100, mrr=9999, reason=price, offered=a, accepted=True)  # before the period
    return {"now": s.now, "a": a, "b": b, "c": c, "price": price, "features": features}


def test_the_report_figures(story, django_assert_num_queries):
    with django_assert_num_queries(4):
        report = cancellation_report(days=90, now=story["now"])

    assert {key: report[key] for key in (
        "sessions", "saved", "canceled", "deflected", "incomplete", "save_rate", "mrr_saved_cents",
        "saves_30d_old", "still_saved_30d", "mrr_still_saved_30d_cents", "still_saved_rate",
        "win_back_sessions", "win_back_recovered", "win_back_mrr_cents", "win_back_recovery_rate",
    )} == {
        "sessions": 7, "saved": 4, "canceled": 1, "deflected": 1, "incomplete": 1, "save_rate": 0.8,
        "mrr_saved_cents": 8200, "saves_30d_old": 3, "still_saved_30d": 2, "mrr_still_saved_30d_cents": 5200,
        "still_saved_rate": 0.6667, "win_back_sessions": 2, "win_back_recovered": 1, "win_back_mrr_cents": 4900,
        "win_back_recovery_rate": 0.5,
    }  # fmt: skip
    a, b, c = story["a"], story["b"], story["c"]
    assert [(r["offered_offer_id"], r["presented"], r["accepted"], r["acceptance_rate"], r["mrr_cents"])
            for r in report["by_offer"]] == [
        (a.pk, 4, 3, 0.75, 6200), (c.pk, 2, 1, 0.5, 4900), (b.pk, 1, 1, 1.0, 2000),
    ]  # fmt: skip
    assert [(r["reason__label"], r["sessions"], r["offered"], r["accepted"], r["saved"], r["canceled"], r["save_rate"])
            for r in report["by_reason"]] == [
        ("Too expensive", 4, 4, 3, 3, 1, 0.75), ("Missing features", 1, 1, 1, 1, 0, 1.0),
    ]  # fmt: skip
    daily = report["daily"]
    assert len(daily) == 90
    assert daily[-1].day == timezone.localdate(story["now"])
    assert sum(bucket.total for bucket in daily) == 9
    by_day = {bucket.day: bucket for bucket in daily}
    assert by_day[timezone.localdate(story["now"] - timedelta(days=40))].saved == 1
    assert by_day[timezone.localdate(story["now"] - timedelta(days=5))].recovered == 1
    assert by_day[timezone.localdate(story["now"] - timedelta(days=5))].deflected == 1


def test_the_query_count_does_not_grow_with_sessions(story, plans, flow, django_assert_num_queries):
    more = Story(plans["monthly"], flow)
    more.count, more.now = 100, story["now"]
    for index in range(20):
        more.session("canceled", days_ago=index % 7, mrr=100)
    with django_assert_num_queries(4):
        report = cancellation_report(days=30, now=story["now"])
    assert report["canceled"] == 21


def test_a_short_period_and_test_sessions(story):
    week = cancellation_report(days=7, now=story["now"])
    assert (week["sessions"], week["saved"], week["saves_30d_old"]) == (4, 1, 0)
    assert len(week["daily"]) == 7
    with_tests = cancellation_report(days=7, now=story["now"], include_test=True)
    assert with_tests["saved"] == 2


def test_an_empty_report():
    report = cancellation_report(days=30)
    assert report["sessions"] == 0
    assert report["save_rate"] is None
    assert report["mrr_saved_cents"] == 0
    assert report["by_offer"] == report["by_reason"] == []
    assert all(bucket.total == 0 for bucket in report["daily"])


def staff_api(make_user: Any, role: Role = Role.CS) -> APIClient:
    client = APIClient()
    client.force_authenticate(make_user(role))
    return client


def test_the_api_answers_the_same_figures(story, make_user, django_assert_max_num_queries):
    api = staff_api(make_user)
    with django_assert_max_num_queries(8):  # the user and permissions, then the report's four queries
        response = api.get(REPORTS, {"days": 90})
    assert response.status_code == 200
    body = response.json()
    expected = report_json(cancellation_report(days=90, now=datetime.fromisoformat(body["until"])))
    assert body == expected
    assert body["save_rate"] == 0.8
    assert body["daily"][-1]["day"] == timezone.localdate(story["now"]).isoformat()


def test_the_api_checks_its_input_and_its_caller(make_user):
    assert APIClient().get(REPORTS).status_code in (401, 403)
    api = staff_api(make_user)
    assert api.get(REPORTS, {"days": 0}).status_code == 400
    assert api.get(REPORTS, {"days": 400}).status_code == 400
    assert api.get(REPORTS).json()["days"] == 30


def test_a_role_without_the_view_permission_is_refused(make_user):
    user = make_user(Role.CS)
    user.user_permissions.clear()
    for group in user.groups.all():
        group.permissions.remove(*group.permissions.filter(codename="view_cancellationsession"))
    api = APIClient()
    api.force_authenticate(user)
    assert api.get(REPORTS).status_code == 403


def test_the_reports_page_draws_the_chart_inline(story, make_user):
    client = Client()
    user = make_user(Role.SALES_REP)
    assert client.login(username=user.get_username(), password=TEST_PASSWORD)
    page = client.get(reverse("offers:report"), {"days": 90})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="chart"' in html and "<rect" in html
    assert "<script" not in html.split('data-testid="chart"')[1].split("</figure>")[0]
    assert "80%" in html  # save rate
    assert "A: 20% off" in html and "Too expensive" in html
    assert reverse("offers:report") in client.get(reverse("home")).content.decode()  # in the Retention section
