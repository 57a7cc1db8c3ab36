"""Live audiences in the UI and API: size over time from the enter/exit history, the live switch (validation,
uniqueness, evaluation on switching on), the audience page with its chart and entries/exits, and roles."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries
from rest_framework.test import APIClient

from audiences.models import Customer, Event
from config.roles import Role
from conftest import TEST_PASSWORD
from segments.audience_services import InvalidAudience, segment_live_set
from segments.audience_views import size_chart
from segments.models import Segment, SegmentMembershipChange
from segments.selectors import segment_size_history
from segments.services import segment_save

pytestmark = pytest.mark.django_db

HIGH_MRR = {"type": "condition", "property": "subscriber.mrr", "operator": "gte", "value": 100}
NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
ENTERED, EXITED = SegmentMembershipChange.Kind.ENTERED, SegmentMembershipChange.Kind.EXITED


def signed_in(user: AbstractUser) -> Client:
    client = Client()
    assert client.login(username=user.get_username(), password=TEST_PASSWORD)
    return client


def record(segment: Segment, people: dict[str, Customer], moves: list[tuple[str, str, datetime]]) -> None:
    SegmentMembershipChange.objects.bulk_create(
        [SegmentMembershipChange(segment=segment, customer=people[who], kind=kind, at=at) for who, kind, at in moves]
    )


@pytest.fixture
def people() -> dict[str, Customer]:
    return {name: Customer.objects.create(user_id=name, name=name.title()) for name in ["ann", "bo", "cy", "di", "ed"]}


def day(d: int, h: int) -> datetime:
    return datetime(2026, 3, d, h, tzinfo=UTC)


@pytest.fixture
def history(people: dict[str, Customer]) -> Segment:
    """Four enter on Mar 7, one exits on Mar 8, one enters on Mar 9, two exit on Mar 10: two members now."""
    segment = segment_save(name="Trial users", conditions=HIGH_MRR)
    record(segment, people, [(p, ENTERED, day(7, 10)) for p in ["ann", "bo", "cy", "di"]])
    record(
        segment,
        people,
        [
            ("di", EXITED, day(8, 9)),
            ("ed", ENTERED, day(9, 23)),
            ("ann", EXITED, day(10, 8)),
            ("ed", EXITED, day(10, 8)),
        ],
    )
    Segment.objects.filter(pk=segment.pk).update(member_count=2)
    segment.refresh_from_db()
    return segment


class TestSizeOverTime:
    def test_daily_sizes_follow_entries_and_exits(self, history: Segment) -> None:
        points = segment_size_history(history, since=NOW - timedelta(days=4), until=NOW, bucket="day")
        assert [p.at.day for p in points] == [6, 7, 8, 9, 10]
        assert [(p.size, p.entered, p.exited) for p in points] == [
            (0, 0, 0),
            (4, 4, 0),
            (3, 0, 1),
            (4, 1, 0),
            (2, 0, 2),
        ]

    def test_changes_after_the_range_are_taken_back_from_the_current_count(self, history: Segment) -> None:
        points = segment_size_history(
            history, since=NOW - timedelta(days=2), until=NOW - timedelta(days=1), bucket="day"
        )
        assert [(p.at.day, p.size) for p in points] == [(8, 3), (9, 4)]

    def test_hourly_buckets(self, history: Segment) -> None:
        points = segment_size_history(history, since=datetime(2026, 3, 10, 6, 15, tzinfo=UTC), until=NOW, bucket="hour")
        assert [p.at.hour for p in points] == [6, 7, 8, 9, 10, 11, 12]
        assert [p.size for p in points] == [4, 4, 2, 2, 2, 2, 2]

    def test_an_empty_history_is_flat_at_the_current_count(self) -> None:
        segment = segment_save(name="Quiet", conditions=HIGH_MRR)
        Segment.objects.filter(pk=segment.pk).update(member_count=5)
        points = segment_size_history(segment, since=NOW - timedelta(days=2), until=NOW, bucket="day")
        assert [(p.size, p.entered, p.exited) for p in points] == [(5, 0, 0)] * 3

    def test_one_query_for_the_history_whatever_its_length(
        self, history: Segment, django_assert_max_num_queries: DjangoAssertNumQueries
    ) -> None:
        with django_assert_max_num_queries(2):
            segment_size_history(history, since=NOW - timedelta(days=365), until=NOW, bucket="day")

    def test_the_chart_scales_to_a_round_maximum(self, history: Segment) -> None:
        points = segment_size_history(history, since=NOW - timedelta(days=4), until=NOW, bucket="day")
        chart = size_chart(points, "day")
        assert [t.label for t in chart.y_ticks] == ["0", "5"]
        assert [t.label for t in size_chart(points[:1] * 3, "day").y_ticks] == ["0", "1"]
        assert size_chart(points, "hour").x_ticks[0].label == "Mar 06 00:00"
        assert len(chart.line.split()) == 5
        assert chart.dots[1].label == "Mar 07 — 4 members (+4 / −0)"
        assert chart.dots[0].y == chart.bottom and chart.dots[1].y < chart.dots[2].y  # 4 members sit above 3


class TestLiveSwitch:
    def test_switching_on_evaluates_and_publishes_entries(self, django_capture_on_commit_callbacks: Any) -> None:
        whale = Customer.objects.create(user_id="whale", mrr_cents=50000)
        segment = segment_save(name="Whales", conditions=HIGH_MRR)
        with django_capture_on_commit_callbacks(execute=True) as queued:
            live = segment_live_set(segment=segment, is_live=True)
        assert len(queued) == 1
        segment.refresh_from_db()
        assert (live.is_live, segment.is_live, segment.member_count, segment.audience_key) == (True, True, 1, "")
        entered = Event.objects.get(customer=whale, name="Audience Entered")
        assert (entered.source.name, entered.properties["audience_key"]) == ("Trialloop", "whales")

    def test_switching_off_keeps_the_key_and_queues_nothing(self, django_capture_on_commit_callbacks: Any) -> None:
        segment = segment_save(name="Whales", conditions=HIGH_MRR)
        segment_live_set(segment=segment, is_live=True, audience_key="big_spenders")
        with django_capture_on_commit_callbacks(execute=False) as queued:
            off = segment_live_set(segment=segment, is_live=False, audience_key="big_spenders")
        assert (off.is_live, off.audience_key, queued) == (False, "big_spenders", [])

    @pytest.mark.parametrize("key", ["Big Spenders", "big-spenders", "_hidden", "x" * 101, "café"])
    def test_a_key_must_be_snake_case(self, key: str) -> None:
        segment = segment_save(name="Whales", conditions=HIGH_MRR)
        with pytest.raises(InvalidAudience) as refused:
            segment_live_set(segment=segment, is_live=True, audience_key=key)
        assert refused.value.field == "audience_key"
        segment.refresh_from_db()
        assert not segment.is_live

    def test_keys_are_unique_among_live_audiences_counting_derived_ones(self) -> None:
        first = segment_save(name="Trial users", conditions=HIGH_MRR)
        second = segment_save(name="Other", conditions=HIGH_MRR)
        segment_live_set(segment=first, is_live=True)  # derived: trial_users
        with pytest.raises(InvalidAudience, match="already the key of the live audience “Trial users”"):
            segment_live_set(segment=second, is_live=True, audience_key="trial_users")
        # Not live, the key may be kept; and another key is fine.
        assert segment_live_set(segment=second, is_live=False, audience_key="trial_users").audience_key == "trial_users"
        assert segment_live_set(segment=second, is_live=True, audience_key="trial_users_2").is_live


class TestAudiencePages:
    def test_the_audience_page_draws_the_chart_and_lists_changes(
        self,
        make_user: Callable[..., AbstractUser],
        history: Segment,
        django_assert_max_num_queries: DjangoAssertNumQueries,
    ) -> None:
        client = signed_in(make_user(Role.SALES_REP))
        url = reverse("segment-audience", kwargs={"pk": history.pk})
        with django_assert_max_num_queries(12):
            page = client.get(url, {"range": "365d"})
        html = page.content.decode()
        assert len(page.context["points"]) == 365
        assert 'data-testid="size-chart"' in html and "<polyline" in html
        assert "cdn" not in html.lower() and "<script" not in html.split('data-testid="size-chart"')[1]
        table = html.split('data-testid="membership-changes"')[1]
        assert table.count('href="/customers/') == 8
        assert "Exited" in table and "Entered" in table
        exits = client.get(url, {"kind": "exited"}).context["changes"].items
        assert {c.customer.user_id for c in exits} == {"ann", "di", "ed"}
        assert len(client.get(url, {"range": "24h"}).context["points"]) == 24
        assert client.get(url, {"range": "nonsense"}).context["chosen_range"] == "30d"

    def test_growth_switches_live_from_the_segment_page(
        self, make_user: Callable[..., AbstractUser], django_capture_on_commit_callbacks: Any
    ) -> None:
        client = signed_in(make_user(Role.GROWTH))
        segment = segment_save(name="Whales", conditions=HIGH_MRR)
        detail = reverse("segment-detail", kwargs={"pk": segment.pk})
        assert f'action="/segments/{segment.pk}/live/"' in client.get(detail).content.decode()
        with django_capture_on_commit_callbacks(execute=True):
            done = client.post(
                reverse("segment-live", kwargs={"pk": segment.pk}),
                {"is_live": "on", "audience_key": "whales_live"},
                follow=True,
            )
        assert "Whales is live as “whales_live”." in done.content.decode()
        assert "Live</strong> as <code>whales_live</code>" in done.content.decode()
        refused = client.post(
            reverse("segment-live", kwargs={"pk": segment.pk}),
            {"is_live": "on", "audience_key": "Whales!"},
            follow=True,
        )
        assert "Live audience not changed: use lower-case letters" in refused.content.decode()
        segment.refresh_from_db()
        assert (segment.is_live, segment.audience_key) == (True, "whales_live")

    @pytest.mark.parametrize("role", list(Role), ids=lambda r: r.name)
    def test_only_admin_and_growth_switch_live(self, make_user: Callable[..., AbstractUser], role: Role) -> None:
        client = signed_in(make_user(role))
        segment = segment_save(name="Whales", conditions=HIGH_MRR)
        may = role in (Role.ADMIN, Role.GROWTH)
        assert client.get(reverse("segment-audience", kwargs={"pk": segment.pk})).status_code == 200
        shown = client.get(reverse("segment-detail", kwargs={"pk": segment.pk})).content.decode()
        assert ('name="is_live"' in shown) is may
        response = client.post(reverse("segment-live", kwargs={"pk": segment.pk}), {"is_live": "on"})
        assert response.status_code == (302 if may else 403)
        segment.refresh_from_db()
        assert segment.is_live is may


class TestAudienceApi:
    def test_history_and_changes(
        self,
        make_user: Callable[..., AbstractUser],
        api_client_for: Callable[[AbstractUser], APIClient],
        history: Segment,
        django_assert_max_num_queries: DjangoAssertNumQueries,
    ) -> None:
        api = api_client_for(make_user(Role.SALES_REP))
        with django_assert_max_num_queries(6):
            body = api.get(f"/api/v1/segments/{history.pk}/history/", {"days": 365}).json()
        assert (body["bucket"], body["member_count"], len(body["points"])) == ("day", 2, 365)
        assert body["points"][-1]["size"] == 2
        hourly = api.get(f"/api/v1/segments/{history.pk}/history/", {"bucket": "hour", "days": "2"}).json()
        assert len(hourly["points"]) == 48
        too_long = api.get(f"/api/v1/segments/{history.pk}/history/", {"bucket": "hour", "days": "30"})
        assert too_long.status_code == 400 and "days" in too_long.json()["details"]
        assert api.get(f"/api/v1/segments/{history.pk}/history/", {"bucket": "week"}).status_code == 400
        with django_assert_max_num_queries(6):
            first = api.get(f"/api/v1/segments/{history.pk}/changes/", {"page_size": 3}).json()
        assert [(c["customer"]["user_id"], c["kind"]) for c in first["results"]][:2] in (
            [("ann", "exited"), ("ed", "exited")], [("ed", "exited"), ("ann", "exited")],
        )  # fmt: skip
        seen: list[dict[str, Any]] = list(first["results"])
        page: dict[str, Any] = first
        while page["next"]:
            page = api.get(page["next"]).json()
            seen += page["results"]
        assert sorted(c["id"] for c in seen) == sorted(SegmentMembershipChange.objects.values_list("pk", flat=True))
        entered = api.get(f"/api/v1/segments/{history.pk}/changes/", {"kind": "entered"}).json()["results"]
        assert {c["customer"]["user_id"] for c in entered} == {"ann", "bo", "cy", "di", "ed"}
        assert api.get(f"/api/v1/segments/{history.pk}/changes/", {"kind": "left"}).status_code == 400
        assert api.get("/api/v1/segments/999999/history/").status_code == 404

    @pytest.mark.parametrize("role", list(Role), ids=lambda r: r.name)
    def test_live_switch_by_role(
        self, make_user: Callable[..., AbstractUser], api_client_for: Callable[[AbstractUser], APIClient], role: Role
    ) -> None:
        api = api_client_for(make_user(role))
        segment = segment_save(name="Whales", conditions=HIGH_MRR)
        url = f"/api/v1/segments/{segment.pk}/live/"
        assert api.get(url).json() == {
            "id": segment.pk, "name": "Whales", "is_live": False, "audience_key": "", "effective_audience_key": "whales",
        }  # fmt: skip
        switched = api.post(url, {"is_live": True, "audience_key": "big_spenders"}, format="json")
        if role in (Role.ADMIN, Role.GROWTH):
            assert switched.status_code == 200
            assert (switched.json()["is_live"], switched.json()["effective_audience_key"]) == (True, "big_spenders")
            bad = api.post(url, {"is_live": True, "audience_key": "Big Spenders"}, format="json")
            assert bad.status_code == 400 and list(bad.json()["details"]) == ["audience_key"]
        else:
            assert switched.status_code == 403
            assert not Segment.objects.get(pk=segment.pk).is_live
        assert APIClient().get(url).status_code in (401, 403)


def test_the_segment_list_marks_live_audiences(make_user: Callable[..., AbstractUser]) -> None:
    segment = segment_save(name="Whales", conditions=HIGH_MRR)
    Segment.objects.filter(pk=segment.pk).update(is_live=True)
    html = signed_in(make_user(Role.CS)).get(reverse("segment-list")).content.decode()
    assert 'title="Live audience">live</span>' in html


def test_recorded_changes_feed_the_audience_page_end_to_end(make_user: Callable[..., AbstractUser]) -> None:
    """A real evaluation writes the history the page reads: sizes after entering, then after exiting."""
    from segments.evaluation import segment_evaluate

    ada = Customer.objects.create(user_id="ada", mrr_cents=20000)
    segment = segment_save(name="High MRR", conditions=HIGH_MRR)
    segment_evaluate(segment=segment, now=timezone.now() - timedelta(days=1))
    Customer.objects.filter(pk=ada.pk).update(mrr_cents=0)
    segment_evaluate(segment=segment)
    points = segment_size_history(segment, since=timezone.now() - timedelta(days=2), bucket="day")
    assert [p.size for p in points] == [0, 1, 0]
