"""The alert queue: assignment (owner, fair round robin skipping away reps), claim/release/snooze/done/dismiss
rules, concurrent claims (one winner, PostgreSQL), what each role sees and may do in the API and the pages, the
team load with SLA attainment, business-hours due times, and the business-hours settings page."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audiences.models import Account, Customer
from config.roles import Role
from conftest import TEST_PASSWORD
from trials.plays.alerts import (
    AlertActionError,
    Target,
    alert_claim,
    alert_dismiss,
    alert_done,
    alert_release,
    alert_snooze,
    alerts_create,
    alerts_queue,
    business_schedule,
    rep_set_away,
    team_load,
)
from trials.plays.models import Alert, BusinessHours, Holiday, Play
from trials.plays.plays import plays_evaluate

pytestmark = pytest.mark.django_db


def signed_in(user: AbstractUser) -> Client:
    client = Client()
    assert client.login(username=user.get_username(), password=TEST_PASSWORD)
    return client


def customers(count: int, prefix: str = "c", account: Account | None = None) -> list[Customer]:
    return [
        Customer.objects.create(
            user_id=f"{prefix}{n}", email=f"{prefix}{n}@corp.test", name=f"{prefix.upper()}{n}", account=account
        )
        for n in range(count)
    ]


def play(key: str = "activation-reached") -> Play:
    return Play.objects.get(key=key)


def alert(customer: Customer, *, assignee: Any = None, due: datetime | None = None, priority: int = 100,
          key: str = "activation-reached", status: str = "open") -> Alert:  # fmt: skip
    now = timezone.now()
    return Alert.objects.create(
        play=play(key),
        customer=customer,
        dedup_key=f"c:{customer.pk}",
        assignee=assignee,
        due_at=due or now + timedelta(hours=4),
        priority=priority,
        created_at=now,
        status=status,
    )


@pytest.fixture
def reps(make_user: Callable[..., AbstractUser]) -> list[AbstractUser]:
    return [make_user(Role.SALES_REP, name) for name in ("ann", "bob", "cat")]


class TestAssignment:
    def test_round_robin_is_fair_skips_away_reps_and_continues_across_batches(self, reps: list[AbstractUser]) -> None:
        _, _, cat = reps
        rep_set_away(user=cat, away=True)
        now = timezone.now()
        people = customers(5)
        created = alerts_create(play=play(), targets=[Target(c.pk, None, None) for c in people], now=now)
        counts = Counter(a.assignee.username for a in created if a.assignee is not None)
        assert counts == {"ann": 3, "bob": 2}
        later = customers(3, prefix="d")
        more = alerts_create(play=play(), targets=[Target(c.pk, None, None) for c in later], now=now + timedelta(1))
        # bob was assigned least recently, so the next batch starts with him: 5 + 3 alerts split 4 / 4.
        assert [a.assignee.username if a.assignee else None for a in more] == ["bob", "ann", "bob"]
        rep_set_away(user=cat, away=False)
        last = alerts_create(play=play(), targets=[Target(customers(1, "e")[0].pk, None, None)], now=now + timedelta(2))
        assert last[0].assignee == cat  # back, and never assigned: first in line

    def test_the_account_owner_comes_first_unless_away(self, reps: list[AbstractUser], admin_user: Any) -> None:
        bob = reps[1]
        acme = Account.objects.create(group_id="grp_acme", name="Acme", owner=bob)  # type: ignore[misc]
        one, two = customers(2, account=acme)
        now = timezone.now()
        first = alerts_create(play=play(), targets=[Target(one.pk, acme.pk, bob.pk)], now=now)
        assert first[0].assignee == bob
        rep_set_away(user=bob, away=True)
        second = alerts_create(play=play(), targets=[Target(two.pk, acme.pk, bob.pk)], now=now)
        assert second[0].assignee is not None and second[0].assignee != bob

    def test_without_available_reps_the_alert_waits_unassigned(self, db: Any) -> None:
        created = alerts_create(play=play(), targets=[Target(customers(1)[0].pk, None, None)], now=timezone.now())
        assert created[0].assignee is None and created[0].status == "open"

    def test_due_time_is_in_business_hours(self, reps: list[AbstractUser]) -> None:
        BusinessHours.objects.update_or_create(pk=1, defaults={"time_zone": "UTC", "start_hour": 9, "end_hour": 17,
                                                               "workdays": [1, 2, 3, 4, 5]})  # fmt: skip
        Holiday.objects.create(day=date(2026, 11, 30), name="Closed")
        friday = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
        created = alerts_create(play=play(), targets=[Target(customers(1)[0].pk, None, None)], now=friday)
        assert created[0].due_at == datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # 1 h Friday, Monday off, 3 h Tuesday

    @pytest.mark.parametrize("workdays", [[0, 8], [1, 9], ["mon"], [[1]], {"1": True}, [True]])
    def test_stored_workdays_outside_the_week_fall_back_to_weekdays(self, workdays: Any) -> None:
        BusinessHours.objects.update_or_create(pk=1, defaults={"workdays": workdays})
        assert business_schedule().workdays == {1, 2, 3, 4, 5}


class TestActions:
    def test_claim_release_and_conflicts(self, reps: list[AbstractUser]) -> None:
        ann, bob, _ = reps
        item = alert(customers(1)[0])
        assert alert_claim(alert_id=item.pk, user=ann).status == "claimed"
        assert alert_claim(alert_id=item.pk, user=ann).assignee == ann  # claiming again is a no-op
        with pytest.raises(AlertActionError) as refused:
            alert_claim(alert_id=item.pk, user=bob)
        assert refused.value.code == "not_found"  # bob cannot even see ann's alert
        with pytest.raises(AlertActionError):
            alert_release(alert_id=item.pk, user=bob)
        released = alert_release(alert_id=item.pk, user=ann)
        assert (released.status, released.assignee) == ("open", None)
        assert alert_claim(alert_id=item.pk, user=bob).assignee == bob

    def test_snooze_hides_until_the_time_then_wakes(self, reps: list[AbstractUser]) -> None:
        ann = reps[0]
        item = alert(customers(1)[0], assignee=ann)
        now = timezone.now()
        with pytest.raises(AlertActionError) as past:
            alert_snooze(alert_id=item.pk, user=ann, until=now - timedelta(minutes=1))
        assert past.value.code == "invalid"
        alert_snooze(alert_id=item.pk, user=ann, until=now + timedelta(hours=2))
        assert list(alerts_queue(ann, now=now)) == []
        assert [a.pk for a in alerts_queue(ann, now=now + timedelta(hours=3))] == [item.pk]
        plays_evaluate(now=now + timedelta(hours=3))
        item.refresh_from_db()
        assert (item.status, item.snoozed_until, item.assignee) == ("claimed", None, ann)

    def test_done_needs_an_outcome_and_closes(self, reps: list[AbstractUser]) -> None:
        ann = reps[0]
        item = alert(customers(1)[0])
        with pytest.raises(AlertActionError) as bad:
            alert_done(alert_id=item.pk, user=ann, outcome="sold")
        assert bad.value.code == "invalid"
        done = alert_done(alert_id=item.pk, user=ann, outcome="meeting_booked", notes="  Tue 10:00  ")
        assert (done.status, done.outcome, done.notes, done.assignee) == ("done", "meeting_booked", "Tue 10:00", ann)
        with pytest.raises(AlertActionError) as again:
            alert_dismiss(alert_id=item.pk, user=ann)
        assert again.value.code == "conflict"

    def test_a_role_without_the_permission_cannot_act(self, make_user: Callable[..., AbstractUser]) -> None:
        cs = make_user(Role.CS)
        with pytest.raises(AlertActionError) as refused:
            alert_claim(alert_id=alert(customers(1)[0]).pk, user=cs)
        assert refused.value.code == "forbidden"


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_have_exactly_one_winner(make_user: Callable[..., AbstractUser]) -> None:
    """Rounds of four reps (four threads, four database connections) claiming the same alert at once."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    claimants = [make_user(Role.SALES_REP, f"rep{n}") for n in range(4)]
    items = [alert(c) for c in customers(8)]
    for item in items:
        outcomes: list[str] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(len(claimants))

        def claim(
            user: Any,
            alert_id: int,
            barrier: threading.Barrier = barrier,
            outcomes: list[str] = outcomes,
            errors: list[BaseException] = errors,
        ) -> None:
            try:
                barrier.wait(timeout=10)
                alert_claim(alert_id=alert_id, user=user)
                outcomes.append(user.username)
            except AlertActionError as refused:
                outcomes.append(refused.code)
            except BaseException as exc:  # reported below; a thread cannot fail the test itself
                errors.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=claim, args=(user, item.pk)) for user in claimants]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert errors == []
        winners = [o for o in outcomes if o.startswith("rep")]
        assert len(winners) == 1 and sorted(set(outcomes) - set(winners)) in (["conflict"], ["not_found"],
                                                                              ["conflict", "not_found"])  # fmt: skip
        item.refresh_from_db()
        assert item.assignee is not None and item.assignee.username == winners[0] and item.status == "claimed"


class TestApi:
    def test_reps_list_their_own_and_unassigned_by_due_time_then_priority(
        self, reps: list[AbstractUser], api_client_for: Any
    ) -> None:
        ann, bob, _ = reps
        now = timezone.now()
        c = customers(4)
        late = alert(c[0], assignee=ann, due=now + timedelta(hours=8))
        urgent = alert(c[1], due=now + timedelta(hours=1), priority=50)
        same_due_low = alert(c[2], due=now + timedelta(hours=1), priority=5)
        alert(c[3], assignee=bob)
        body = api_client_for(ann).get("/api/v1/alerts/").json()
        assert [row["id"] for row in body["results"]] == [same_due_low.pk, urgent.pk, late.pk]
        assert body["results"][2]["assignee"] == "ann" and "brief" in body["results"][0]

    def test_claim_then_a_second_claim_is_a_409(self, reps: list[AbstractUser], api_client_for: Any) -> None:
        ann, bob, _ = reps
        item = alert(customers(1)[0])
        first = api_client_for(ann).post(f"/api/v1/alerts/{item.pk}/claim/")
        assert first.status_code == 200 and first.json()["status"] == "claimed"
        # Bob no longer sees it (it is ann's now): 404; a manager sees it and gets the conflict.
        assert api_client_for(bob).post(f"/api/v1/alerts/{item.pk}/claim/").status_code == 404
        manager = growth_user()
        conflict = api_client_for(manager).post(f"/api/v1/alerts/{item.pk}/claim/")
        assert conflict.status_code == 409 and "assigned to ann" in conflict.json()["error"]

    def test_snooze_done_dismiss_and_bad_input(self, reps: list[AbstractUser], api_client_for: Any) -> None:
        ann = reps[0]
        client = api_client_for(ann)
        item, other = alert(customers(1)[0], assignee=ann), alert(customers(1, "x")[0], assignee=ann)
        assert client.post(f"/api/v1/alerts/{item.pk}/snooze/", {"until": "tomorrow"}).status_code == 400
        past = client.post(f"/api/v1/alerts/{item.pk}/snooze/", {"until": "2020-01-01T00:00:00Z"}, format="json")
        assert past.status_code == 400 and "future" in past.json()["error"]
        until = (timezone.now() + timedelta(hours=3)).isoformat()
        snoozed = client.post(f"/api/v1/alerts/{item.pk}/snooze/", {"until": until}, format="json")
        assert snoozed.status_code == 200 and snoozed.json()["status"] == "snoozed"
        bad = client.post(f"/api/v1/alerts/{item.pk}/done/", {"outcome": "sold"}, format="json")
        assert bad.status_code == 400 and "outcome" in bad.json()["error"]
        done = client.post(f"/api/v1/alerts/{item.pk}/done/", {"outcome": "converted", "notes": "Paid"}, format="json")
        assert done.status_code == 200 and (done.json()["outcome"], done.json()["notes"]) == ("converted", "Paid")
        assert client.post(f"/api/v1/alerts/{item.pk}/done/", {"outcome": "reached"}, format="json").status_code == 409
        assert client.post(f"/api/v1/alerts/{other.pk}/dismiss/", {}, format="json").json()["status"] == "dismissed"
        assert client.post("/api/v1/alerts/999999/claim/").status_code == 404
        assert client.get("/api/v1/alerts/abc/").status_code == 404

    def test_roles_without_alerts_get_403(
        self, make_user: Callable[..., AbstractUser], api_client_for: Any, reps: list[AbstractUser]
    ) -> None:
        item = alert(customers(1)[0])
        cs = api_client_for(make_user(Role.CS))
        assert cs.get("/api/v1/alerts/").status_code == 403
        assert cs.post(f"/api/v1/alerts/{item.pk}/claim/").status_code == 403
        assert Client().get("/api/v1/alerts/").status_code in (401, 403)


def growth_user() -> AbstractUser:
    from config.services import user_create_with_role

    return user_create_with_role(username="gwen", password=TEST_PASSWORD, role=Role.GROWTH)


class TestPages:
    def test_the_queue_shows_mine_and_unassigned_with_overdue_highlighted(self, reps: list[AbstractUser]) -> None:
        ann, bob, _ = reps
        now = timezone.now()
        c = customers(3)
        overdue = alert(c[0], assignee=ann, due=now - timedelta(hours=1))
        alert(c[1])
        hidden = alert(c[2], assignee=bob)
        page = signed_in(ann).get(reverse("alert-queue"))
        html = page.content.decode()
        assert page.status_code == 200
        assert f'data-alert="{overdue.pk}" data-status="open" class="overdue"' in html
        assert f'data-alert="{hidden.pk}"' not in html
        assert signed_in(ann).get(reverse("alert-detail", args=[hidden.pk])).status_code == 404

    def test_the_queue_page_and_the_api_list_take_constant_queries(
        self, reps: list[AbstractUser], api_client_for: Any
    ) -> None:
        ann = reps[0]
        client, api = signed_in(ann), api_client_for(ann)
        acme = Account.objects.create(group_id="grp_acme", name="Acme")
        alert(customers(1, "a", account=acme)[0], assignee=ann)
        client.get(reverse("alert-queue"))  # the first visit creates the rep's profile
        with CaptureQueriesContext(connection) as page_one, CaptureQueriesContext(connection) as api_one:
            client.get(reverse("alert-queue"))
            api.get("/api/v1/alerts/")
        for person in customers(6, "b", account=acme):
            alert(person)
        with CaptureQueriesContext(connection) as page_many, CaptureQueriesContext(connection) as api_many:
            client.get(reverse("alert-queue"))
            api.get("/api/v1/alerts/")
        assert len(page_many.captured_queries) == len(page_one.captured_queries)
        assert len(api_many.captured_queries) == len(api_one.captured_queries)
        assert len(api.get("/api/v1/alerts/").json()["results"]) == 7

    def test_claim_and_done_through_the_pages(self, reps: list[AbstractUser]) -> None:
        ann = reps[0]
        item = alert(customers(1)[0])
        client = signed_in(ann)
        assert client.post(reverse("alert-action", args=[item.pk, "claim"])).status_code == 302
        bad = client.post(reverse("alert-action", args=[item.pk, "done"]), {"outcome": "nope"}, follow=True)
        assert "Choose an outcome" in bad.content.decode()
        client.post(reverse("alert-action", args=[item.pk, "done"]), {"outcome": "reached", "notes": "Spoke"})
        item.refresh_from_db()
        assert (item.status, item.outcome, item.notes) == ("done", "reached", "Spoke")
        assert client.post(reverse("alert-action", args=[item.pk, "frobnicate"])).status_code == 404
        snooze = client.post(reverse("alert-action", args=[alert(customers(1, "s")[0]).pk, "snooze"]), {"until": "x"})
        assert snooze.status_code == 303

    def test_away_toggle(self, reps: list[AbstractUser]) -> None:
        ann = reps[0]
        signed_in(ann).post(reverse("rep-away"), {"away": "1"})
        assert ann.rep_profile.away is True  # type: ignore[attr-defined]
        assert "I am back" in signed_in(ann).get(reverse("alert-queue")).content.decode()

    def test_team_load_and_sla_attainment_for_managers_only(self, reps: list[AbstractUser]) -> None:
        ann, bob, _ = reps
        now = timezone.now()
        c = customers(4)
        on_time = alert(c[0], assignee=ann, due=now + timedelta(hours=1))
        alert_claim(alert_id=on_time.pk, user=ann, now=now)
        alert(c[1], assignee=ann, due=now - timedelta(hours=1))  # untouched past due: missed
        late = alert(c[2], assignee=bob, due=now - timedelta(hours=2))
        alert_done(alert_id=late.pk, user=bob, outcome="reached", now=now)  # closed after due: missed
        alert(c[3], assignee=bob, due=now + timedelta(hours=5))  # not due yet: not judged
        loads = {r.username: r for r in team_load(now=now)}
        assert (loads["ann"].claimed, loads["ann"].open, loads["ann"].overdue) == (1, 1, 1)
        assert (loads["ann"].met, loads["ann"].missed, loads["ann"].attainment) == (1, 1, 50)
        assert (loads["bob"].met, loads["bob"].missed, loads["bob"].closed, loads["bob"].open) == (0, 1, 1, 1)
        assert signed_in(ann).get(reverse("alert-team")).status_code == 403
        page = signed_in(growth_user()).get(reverse("alert-team"))
        assert page.status_code == 200 and 'id="sla-overall">33%' in page.content.decode()

    def test_plays_pages_reps_read_growth_edits_with_errors_shown(self, reps: list[AbstractUser]) -> None:
        ann = reps[0]
        target = play()
        rep_client = signed_in(ann)
        assert rep_client.get(reverse("play-list")).status_code == 200
        assert "Save play" not in rep_client.get(reverse("play-edit", args=[target.pk])).content.decode()
        assert rep_client.post(reverse("play-edit", args=[target.pk]), {}).status_code == 403
        assert rep_client.get(reverse("play-create")).status_code == 403
        growth = signed_in(growth_user())
        data = {
            "key": target.key, "name": target.name, "description": "", "condition": '{"type": "group"}',
            "target": "customer", "priority": 3, "sla_business_hours": 2, "cooldown_hours": 24,
            "subject": "{{ nope }}", "body": "Hi", "active": "on", "holdout_percent": 10,
        }  # fmt: skip
        bad = growth.post(reverse("play-edit", args=[target.pk]), data)
        assert bad.status_code == 400
        assert "Unknown variable" in bad.content.decode() and "operator must be" in bad.content.decode()
        data.update(condition='{"type": "group", "operator": "and", "children": [{"type": "condition", '
                    '"property": "score.pql", "operator": "gte", "value": 60}]}', subject="Hi {{ first_name }}")  # fmt: skip
        assert growth.post(reverse("play-edit", args=[target.pk]), data).status_code == 302
        target.refresh_from_db()
        assert (target.priority, target.holdout_percent, target.subject) == (3, 10, "Hi {{ first_name }}")
        new = {**data, "key": "new-play", "name": "New play"}
        assert growth.post(reverse("play-create"), new).status_code == 302
        assert Play.objects.filter(key="new-play").exists()

    def test_business_hours_settings(self, reps: list[AbstractUser]) -> None:
        growth = signed_in(growth_user())
        bad = growth.post(reverse("business-hours"), {"form": "hours", "time_zone": "Mars/Base", "start_hour": 18,
                                                      "end_hour": 9, "workdays": ["1"]})  # fmt: skip
        assert bad.status_code == 400 and "Unknown time zone" in bad.content.decode()
        ok = growth.post(reverse("business-hours"), {"form": "hours", "time_zone": "Europe/Berlin", "start_hour": 8,
                                                     "end_hour": 16, "workdays": ["1", "2", "3"]})  # fmt: skip
        assert ok.status_code == 302
        assert BusinessHours.objects.get(pk=1).workdays == [1, 2, 3]
        growth.post(reverse("business-hours"), {"form": "holiday", "day": "2026-12-25", "name": "Christmas"})
        assert Holiday.objects.filter(day=date(2026, 12, 25)).exists()
        christmas = Holiday.objects.get(day=date(2026, 12, 25))
        for junk in ("²", "", "-1", "1.5"):  # "²".isdigit() is true, yet int("²") raises
            gone = growth.post(reverse("business-hours"), {"form": "delete-holiday", "holiday": junk})
            assert gone.status_code == 400, junk
        for missing in ("9" * 30, str(christmas.pk + 1000)):
            kept = growth.post(reverse("business-hours"), {"form": "delete-holiday", "holiday": missing})
            assert kept.status_code == 302, missing
        assert Holiday.objects.filter(pk=christmas.pk).exists()
        growth.post(reverse("business-hours"), {"form": "delete-holiday", "holiday": str(christmas.pk)})
        assert not Holiday.objects.filter(pk=christmas.pk).exists()
        rep = signed_in(reps[0])
        assert rep.get(reverse("business-hours")).status_code == 200
        assert rep.post(reverse("business-hours"), {"form": "holiday", "day": "2026-12-26"}).status_code == 403


def test_junk_input_never_answers_500(reps: list[AbstractUser], api_client_for: Any) -> None:
    ann = reps[0]
    growth = growth_user()
    item = alert(customers(1)[0], assignee=ann)
    junk = {"all": "x", "cursor": "%%%", "until": "31/02/2026", "outcome": ["a", "b"], "notes": "x" * 6000,
            "away": "maybe", "form": "???", "holiday": "abc", "day": "yesterday", "condition": "{not json"}  # fmt: skip
    pages = [reverse("alert-queue"), reverse("alert-team"), reverse("business-hours"), reverse("play-list"),
             reverse("play-create"), reverse("play-edit", args=[1]), reverse("alert-detail", args=[item.pk]),
             reverse("rep-away")]  # fmt: skip
    pages += [reverse("alert-action", args=[item.pk, action]) for action in ("claim", "snooze", "done", "dismiss")]
    for user in (ann, growth):
        client = signed_in(user)
        for url in pages:
            assert client.get(url, junk).status_code < 500, url
            assert client.post(url, junk).status_code < 500, url
        api = api_client_for(user)
        for path in ("", f"{item.pk}/", f"{item.pk}/snooze/", f"{item.pk}/done/", f"{item.pk}/dismiss/"):
            assert api.get(f"/api/v1/alerts/{path}", junk).status_code < 500, path
            assert api.post(f"/api/v1/alerts/{path}", junk, format="json").status_code < 500, path
            assert api.post(f"/api/v1/alerts/{path}", "[1, 2", content_type="application/json").status_code < 500
