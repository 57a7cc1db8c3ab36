"""The call-prep brief: who, scores with breakdown, activation, key-action counts, the last 10 meaningful events,
days active, teammates and their activity, use case, trial days left, plan, and the play's message with real
numbers; built in a fixed number of queries whatever the number of alerts; refreshed on demand."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audiences.models import Account, Customer, Event, Source
from config.roles import Role
from integrations.stripe.models import Plan, Subscription
from trials.loop.models import Trial
from trials.plays.alerts import Target, alerts_create
from trials.plays.briefs import MAX_TEAMMATES, brief_refresh, briefs_build
from trials.plays.models import Alert, Play
from trials.tests.test_alerts import signed_in
from trials.tests.test_plays import ACTIVATED, derive, event, person

pytestmark = pytest.mark.django_db


@pytest.fixture
def now() -> datetime:
    return timezone.now().replace(microsecond=0)


@pytest.fixture
def ada_alert(source: Source, plan: Plan, now: datetime, make_user: Any) -> Alert:
    rep = make_user(Role.SALES_REP, "rita")
    rep.first_name, rep.last_name = "Rita", "Rep"
    rep.save()
    acme = Account.objects.create(group_id="grp_acme", name="Acme")
    ada = person(source, "ada", now=now, account=acme, signed_up_days_ago=3, actions=ACTIVATED)
    for n in range(12):
        event(source, ada, "Report Generated", now - timedelta(hours=20 - n))
    Event.objects.create(source=source, message_id="page-1", customer=ada, type=Event.Type.PAGE, name="Pricing",
                         timestamp=now - timedelta(minutes=1), received_at=now)  # fmt: skip
    person(source, "bo", now=now, account=acme, signed_up_days_ago=2, actions=[("Project Created", 1)])
    person(source, "cy", now=now, account=acme, signed_up_days_ago=3, last_seen=now - timedelta(days=20))
    Subscription.objects.create(customer=ada, plan=plan, status="trialing", started_at=now - timedelta(days=3),
                                trial_start=now - timedelta(days=3), trial_end=now + timedelta(days=11))  # fmt: skip
    derive(now)
    Trial.objects.filter(customer=ada).update(use_case="churn analytics")
    created = alerts_create(
        play=Play.objects.get(key="activation-reached"), targets=[Target(ada.pk, acme.pk, None)], now=now
    )
    return created[0]


def test_the_brief_has_everything_for_the_call(ada_alert: Alert, now: datetime) -> None:
    brief = ada_alert.brief
    assert brief["who"] == {
        "customer_id": ada_alert.customer_id, "name": "Ada Person", "email": "ada@corp.test",
        "title": "Head of Data", "company": "Acme", "account_id": ada_alert.customer.account_id,
    }  # fmt: skip
    assert (brief["scores"]["fit"], brief["scores"]["fit_tier"]) == (75, "high")
    assert brief["scores"]["pql"] > 0 and brief["scores"]["breakdown"]["fit"]["total"] == 75
    assert [r["rule"] for r in brief["scores"]["breakdown"]["fit"]["rules"]] == ["11–1000 employees", "Target industry"]
    assert brief["activation"]["activated"] is True and brief["activation"]["event"] == "Project Created"
    counts = {row["name"]: row["count"] for row in brief["key_actions"]}
    assert counts == {"Project Created": 1, "Teammate Invited": 1, "Report Generated": 12, "Integration Connected": 0}
    recent = brief["recent_events"]
    assert len(recent) == 10 and all(e["name"] == "Report Generated" for e in recent)  # page views are left out
    assert recent[0]["at"] > recent[-1]["at"]
    assert brief["days_active"] >= 2
    mates = {m["name"]: m for m in brief["teammates"]}
    assert set(mates) == {"Bo Person", "Cy Person"}
    assert mates["Bo Person"]["active"] is True and mates["Bo Person"]["events_7d"] == 2
    assert mates["Cy Person"]["active"] is False
    assert brief["use_case"] == "churn analytics"
    assert brief["trial"]["days_left"] in (10, 11) and brief["subscription"]["plan"] == "Team monthly"
    assert brief["subscription"]["price"] == "49.00 USD / month"
    message = brief["message"]
    assert message["subject"] == "Acme: 20 minutes on your churn analytics plan?"
    assert "14 key actions" in message["body"] and "Rita Rep" in message["body"]
    assert "You picked churn analytics at signup" in message["body"]


def test_briefs_take_the_same_number_of_queries_for_one_alert_or_many(
    ada_alert: Alert, source: Source, now: datetime
) -> None:
    def loaded() -> list[Alert]:
        return list(Alert.objects.select_related("play", "customer", "customer__account", "assignee").order_by("pk"))

    one = loaded()
    with CaptureQueriesContext(connection) as single:
        briefs_build(one, now=now)
    for n in range(5):
        extra = person(source, f"more{n}", now=now, actions=ACTIVATED,
                       account=Account.objects.create(group_id=f"grp_{n}", name=f"Co {n}"))  # fmt: skip
        Alert.objects.create(play=ada_alert.play, customer=extra, account=extra.account, dedup_key=f"c:{extra.pk}",
                             due_at=now, created_at=now)  # fmt: skip
    many = loaded()
    with CaptureQueriesContext(connection) as several:
        built = briefs_build(many, now=now)
    assert len(built) == 6
    assert len(several.captured_queries) == len(single.captured_queries) <= 10


def test_refresh_rebuilds_from_current_data(ada_alert: Alert, source: Source, now: datetime) -> None:
    event(source, ada_alert.customer, "Integration Connected", now)
    refreshed = brief_refresh(alert_id=ada_alert.pk, now=now + timedelta(minutes=5))
    counts = {row["name"]: row["count"] for row in refreshed.brief["key_actions"]}
    assert counts["Integration Connected"] == 1
    assert refreshed.brief_refreshed_at == now + timedelta(minutes=5)


def test_the_detail_page_shows_the_brief_and_refreshes_it(ada_alert: Alert, source: Source, now: datetime) -> None:
    assert ada_alert.assignee is not None
    client = signed_in(ada_alert.assignee)
    page = client.get(reverse("alert-detail", args=[ada_alert.pk])).content.decode()
    assert "churn analytics" in page and "Head of Data" in page and "Bo Person" in page
    assert "Acme: 20 minutes on your churn analytics plan?" in page
    event(source, ada_alert.customer, "Integration Connected", now)
    client.post(reverse("alert-action", args=[ada_alert.pk, "refresh"]))
    ada_alert.refresh_from_db()
    assert {r["name"]: r["count"] for r in ada_alert.brief["key_actions"]}["Integration Connected"] == 1


def test_teammates_count_the_whole_account_while_the_list_is_capped(now: datetime) -> None:
    big = Account.objects.create(group_id="grp_big", name="Big Co")
    seen = [now] * (MAX_TEAMMATES + 5) + [now - timedelta(days=20)] * 10  # 25 active, 10 idle
    members = Customer.objects.bulk_create(
        Customer(user_id=f"m{n}", email=f"m{n}@big.test", account=big, last_seen_at=at) for n, at in enumerate(seen)
    )
    play = Play.objects.create(key="count-mates", name="Count mates", condition={},
                               body="{{ teammates }} teammates, {{ active_teammates }} active")  # fmt: skip
    created = alerts_create(play=play, targets=[Target(members[0].pk, big.pk, None)], now=now)
    brief = created[0].brief
    assert brief["message"]["body"] == f"{len(seen) - 1} teammates, {MAX_TEAMMATES + 4} active"
    assert len(brief["teammates"]) == MAX_TEAMMATES


def test_a_play_message_stored_without_validation_is_not_rendered_and_the_brief_says_why(
    ada_alert: Alert, now: datetime
) -> None:
    Play.objects.filter(pk=ada_alert.play_id).update(body="{% debug %}")
    ada_alert.refresh_from_db()
    message = briefs_build([ada_alert], now=now)[ada_alert.pk]["message"]
    assert message["body"].startswith("(The play's message was not rendered: Invalid block tag on line 1: 'debug'")
