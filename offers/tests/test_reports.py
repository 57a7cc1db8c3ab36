"""The retention report: sessions by outcome, save rate, MRR saved and still saved after 30 days (against the
billing mirror), acceptance by offer and reason, win-back recoveries and the daily chart — in a fixed number
of aggregate queries — and the page and API that show it."""

from __future__ import annotations

import csv
import io
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
from integrations.stripe.models import Plan, Subscription
from offers.models import CancellationFlow, CancellationReason, CancellationSession, Offer
from offers.selectors import ReportFilters, cancellation_report, report_json
from segments.models import SegmentMembership

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
    with django_assert_num_queries(6):
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
    with django_assert_num_queries(6):
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
    with django_assert_max_num_queries(10):  # the user and permissions, then the report's six queries
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


def test_breakdowns_by_plan_and_segment(story, plans, flow, make_segment):
    segment = make_segment("Everyone big", {"property": "subscriber.mrr", "operator": "gte", "value": 0})
    lite = Story(plans["lite"], flow)
    lite.count, lite.now = 200, story["now"]
    member = lite.session("canceled", days_ago=1, mrr=900, reason=story["price"], offered=story["a"])
    lite.session("saved", days_ago=2, mrr=900, reason=story["price"], offered=story["a"], accepted=True)
    SegmentMembership.objects.create(segment=segment, customer=member.customer, entered_at=story["now"])

    report = cancellation_report(days=90, now=story["now"])
    by_plan = {row["name"]: row for row in report["by_plan"]}
    assert set(by_plan) == {"Team monthly", "Lite monthly"}  # win-back sessions are left out of breakdowns
    assert {key: by_plan["Lite monthly"][key] for key in (
        "id", "sessions", "offered", "accepted", "acceptance_rate", "saved", "canceled", "save_rate",
        "mrr_saved_cents",
    )} == {
        "id": plans["lite"].pk, "sessions": 2, "offered": 2, "accepted": 1, "acceptance_rate": 0.5, "saved": 1,
        "canceled": 1, "save_rate": 0.5, "mrr_saved_cents": 900,
    }  # fmt: skip
    assert by_plan["Team monthly"]["sessions"] == 7 and by_plan["Team monthly"]["save_rate"] == 0.8
    assert report["by_segment"] == [
        {"id": segment.pk, "name": "Everyone big", "sessions": 1, "offered": 1, "accepted": 0, "saved": 0,
         "canceled": 1, "mrr_saved_cents": 0, "acceptance_rate": 0.0, "save_rate": 0.0},
    ]  # fmt: skip


def test_filters_by_plan_offer_flow_and_dates(story, plans, flow):
    now = story["now"]
    by_offer = cancellation_report(filters=ReportFilters(days=90, offer_id=story["b"].pk), now=now)
    assert (by_offer["sessions"], by_offer["saved"], by_offer["mrr_saved_cents"]) == (1, 1, 2000)
    other_plan = cancellation_report(filters=ReportFilters(days=90, plan_id=plans["yearly"].pk), now=now)
    assert other_plan["sessions"] == 0 and other_plan["by_offer"] == []
    other_flow = CancellationFlow.objects.create(name="Other")
    assert cancellation_report(filters=ReportFilters(days=90, flow_id=other_flow.pk), now=now)["sessions"] == 0
    assert cancellation_report(filters=ReportFilters(days=90, flow_id=flow.pk), now=now)["sessions"] == 7
    today = timezone.localdate(now)
    window = cancellation_report(
        filters=ReportFilters(first_day=today - timedelta(days=3), last_day=today - timedelta(days=1)), now=now
    )
    assert (window["days"], window["sessions"], window["saved"], window["canceled"], window["deflected"]) == (
        3,
        3,
        1,
        1,
        1,
    )  # the save 2 days ago, the cancel 1 day ago, the deflection 3 days ago; not today's incomplete one
    assert [bucket.day for bucket in window["daily"]] == [today - timedelta(days=n) for n in (3, 2, 1)]


def test_the_api_filters_and_refuses_bad_ones(story, make_user, plans):
    api = staff_api(make_user)
    body = api.get(REPORTS, {"days": 90, "offer": story["b"].pk}).json()
    assert (body["sessions"], body["saved"], body["filters"]["offer"]) == (1, 1, story["b"].pk)
    assert [row["name"] for row in body["by_plan"]] == ["Team monthly"]
    cases: list[tuple[dict[str, str | int], str]] = [
        ({"plan": 999999}, "plan"),
        ({"flow": "abc"}, "flow"),
        ({"since": "2026-13-01"}, "since"),
        ({"since": "2026-05-02", "until": "2026-05-01"}, "until"),
        ({"since": "2024-01-01", "until": "2026-01-01"}, "since"),
        ({"until": "2026-05-01"}, "since"),
        ({"since": "2999-01-01", "until": "2999-01-05"}, "since"),  # the future: no negative period
        ({"include_test": "maybe"}, "include_test"),
    ]
    for bad, field in cases:
        response = api.get(REPORTS, bad)
        assert response.status_code == 400, bad
        assert field in response.json()["details"], (bad, response.json())
    for word, counted in (("no", False), ("off", False), ("0", False), ("yes", True), ("true", True)):
        assert api.get(REPORTS, {"include_test": word}).json()["filters"]["include_test"] is counted, word


def signed_in_client(make_user: Any, role: Role = Role.SALES_REP) -> Client:
    client = Client()
    user = make_user(role)
    assert client.login(username=user.get_username(), password=TEST_PASSWORD)
    return client


def _csv(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_csv_exports_of_each_table(story, make_user):
    client = signed_in_client(make_user)
    url = reverse("offers:report-export", args=["by_offer"])
    rows = _csv(client.get(url, {"days": 90}))
    assert [(r["offer"], r["presented"], r["accepted"], r["acceptance_rate"]) for r in rows] == [
        ("A: 20% off", "4", "3", "0.75"), ("C: win-back week", "2", "1", "0.5"), ("B: two weeks", "1", "1", "1.0"),
    ]  # fmt: skip
    totals = _csv(client.get(reverse("offers:report-export", args=["totals"]), {"days": 90}))
    assert (totals[0]["sessions"], totals[0]["save_rate"], totals[0]["mrr_saved_cents"]) == ("7", "0.8", "8200")
    assert len(_csv(client.get(reverse("offers:report-export", args=["daily"]), {"days": 7}))) == 7
    plans_csv = _csv(client.get(reverse("offers:report-export", args=["by_plan"]), {"days": 90}))
    assert [(r["plan"], r["sessions"], r["save_rate"]) for r in plans_csv] == [("Team monthly", "7", "0.8")]
    reasons_csv = _csv(client.get(reverse("offers:report-export", args=["by_reason"]), {"days": 90}))
    assert [r["reason"] for r in reasons_csv] == ["Too expensive", "Missing features"]
    assert _csv(client.get(reverse("offers:report-export", args=["by_segment"]), {"days": 90})) == []
    assert client.get(reverse("offers:report-export", args=["nope"])).status_code == 404
    bad = client.get(url, {"since": "yesterday"})
    assert bad.status_code == 400 and b"since" in bad.content


def test_the_sessions_csv_is_filtered_and_formula_safe(story, make_user):
    CancellationSession.objects.filter(outcome="canceled").update(feedback='=HYPERLINK("http://evil")')
    client = signed_in_client(make_user)
    rows = _csv(client.get(reverse("offers:session-export")))
    assert len(rows) == 10  # every live session (the test one left out), whatever its age
    canceled = [row for row in rows if row["outcome"] == "canceled"]
    assert canceled[0]["feedback"] == '\'=HYPERLINK("http://evil")'
    assert canceled[0]["reason"] == "Too expensive" and canceled[0]["plan"] == "Team monthly"
    saved = _csv(client.get(reverse("offers:session-export"), {"outcome": "saved", "days": "30"}))
    assert [row["mrr_cents"] for row in saved] == ["2000"]
    with_test = _csv(client.get(reverse("offers:session-export"), {"outcome": "saved", "test": "1"}))
    assert len(with_test) == 6
    assert client.get(reverse("offers:session-export"), {"outcome": "lost"}).status_code == 400
    assert client.get(reverse("offers:session-export"), {"offer": "x"}).status_code == 400


def test_the_sessions_csv_query_count_is_flat(story, make_user, django_assert_max_num_queries):
    client = signed_in_client(make_user)
    with django_assert_max_num_queries(8):  # session, user, permissions, then one select of the joined rows
        rows = _csv(client.get(reverse("offers:session-export")))
    assert len(rows) == 10


def test_the_report_page_filters_and_shows_errors(story, make_user, plans):
    client = signed_in_client(make_user)
    page = client.get(reverse("offers:report"), {"days": 90, "plan": plans["monthly"].pk})
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-testid="by-plan"' in html and 'data-testid="by-segment"' in html
    assert reverse("offers:report-export", args=["by_plan"]) in html
    bad = client.get(reverse("offers:report"), {"since": "2026-05-02", "until": "2026-05-01"})
    assert bad.status_code == 400
    assert "The last day is before the first day." in bad.content.decode()


def test_the_sessions_page_filters_by_plan_and_offer_and_links_its_export(story, make_user, plans):
    client = signed_in_client(make_user)
    by_offer = client.get(reverse("offers:session-list"), {"offer": story["b"].pk}).content.decode()
    assert by_offer.count("<tr><td>") == 1  # the one session presented offer B
    assert f"{reverse('offers:session-export')}?offer={story['b'].pk}" in by_offer
    other_plan = client.get(reverse("offers:session-list"), {"plan": plans["lite"].pk}).content.decode()
    assert "No sessions." in other_plan
    ignored = client.get(reverse("offers:session-list"), {"plan": "nope"}).content.decode()
    assert "These filters were ignored." in ignored and ignored.count("<tr><td>") == 10
