"""Trial pages: the list (stage, fit, PQL, days left; constant query count), the loop board (counts and flows
over a period), the settings (Growth changes, CS reads), the score breakdown on the customer page, and the list
and board in a real browser."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audiences.models import Customer
from config.roles import Role
from conftest import TEST_PASSWORD
from integrations.stripe.models import Plan, Subscription
from trials.loop.lifecycle import activation_definition, trials_process
from trials.loop.models import FitRule, Trial, TrialStageChange

pytestmark = pytest.mark.django_db


def signed_in(user: AbstractUser) -> Client:
    client = Client()
    assert client.login(username=user.get_username(), password=TEST_PASSWORD)
    return client


def trials_for(plan: Plan, count: int, prefix: str = "usr_t") -> None:
    now = timezone.now()
    for index in range(count):
        customer = Customer.objects.create(user_id=f"{prefix}{index}", email=f"t{index}@{prefix}.example")
        Subscription.objects.create(
            customer=customer,
            plan=plan,
            status="trialing",
            started_at=now - timedelta(days=2),
            trial_start=now - timedelta(days=2),
            trial_end=now + timedelta(days=index + 1, hours=1),
        )
    trials_process(
        customer_ids=set(Customer.objects.filter(user_id__startswith=prefix).values_list("pk", flat=True)), now=now
    )


def test_the_list_shows_stage_scores_and_days_left_in_constant_queries(
    make_user: Callable[..., AbstractUser], plan: Plan
) -> None:
    client = signed_in(make_user(Role.SALES_REP))
    trials_for(plan, 2)
    with CaptureQueriesContext(connection) as few:
        response = client.get(reverse("trial-list"))
    assert [t.days_left for t in response.context["page"].items] == [1, 2]
    assert b'data-stage="trigger"' in response.content
    trials_for(plan, 8, prefix="usr_more")
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("trial-list"))
    assert len(many.captured_queries) == len(few.captured_queries)
    filtered = client.get(reverse("trial-list"), {"stage": "signal"}).context["page"]
    assert filtered.items == []


def test_the_loop_board_counts_stages_and_flows_in_the_period(
    make_user: Callable[..., AbstractUser], plan: Plan
) -> None:
    trials_for(plan, 3)
    trial = Trial.objects.order_by("pk").first()
    assert trial is not None
    TrialStageChange.objects.create(
        trial=trial, customer=trial.customer, from_stage="trigger", to_stage="activate", changed_at=timezone.now()
    )
    Trial.objects.filter(pk=trial.pk).update(stage="activate")
    TrialStageChange.objects.create(
        trial=trial,
        customer=trial.customer,
        from_stage="activate",
        to_stage="habit",
        changed_at=timezone.now() - timedelta(days=40),
    )
    client = signed_in(make_user(Role.CS))
    with CaptureQueriesContext(connection) as queries:
        board = client.get(reverse("trial-loop"), {"days": 30}).context["board"]
    counts = {stage["key"]: (stage["count"], stage["reached"]) for stage in board.stages}
    assert counts["trigger"] == (2, 3) and counts["activate"] == (1, 1) and counts["habit"] == (0, 0)
    assert {(f["from"], f["to"], f["count"]) for f in board.flows} == {
        ("New trial", "Trigger", 3),
        ("Trigger", "Activate", 1),
    }
    assert len(queries.captured_queries) < 12
    longer = client.get(reverse("trial-loop"), {"days": 90}).context["board"]
    assert ("Activate", "Habit", 1) in {(f["from"], f["to"], f["count"]) for f in longer.flows}


def test_growth_changes_the_definition_and_rules_and_cs_only_reads(make_user: Callable[..., AbstractUser]) -> None:
    growth = signed_in(make_user(Role.GROWTH))
    data = {
        "form": "definition",
        "activation_event": "Report Generated",
        "activation_count": 2,
        "activation_within_hours": "",
        "habit_threshold": 4,
        "habit_window_days": 7,
        "signup_event": "Signed Up",
        "trial_days": 21,
        "recover_window_days": 30,
        "habit_events_text": "Report Generated, Project Created",
        "condition_text": '{"type": "event", "event": "Nope", "operator": "sometimes"}',
    }
    response = growth.post(reverse("trial-settings"), data)
    assert response.status_code == 200 and "Not a valid condition" in response.content.decode()
    data["condition_text"] = ""
    assert growth.post(reverse("trial-settings"), data).status_code == 302
    definition = activation_definition()
    assert (definition.activation_event, definition.activation_count, definition.activation_within_hours) == (
        "Report Generated",
        2,
        None,
    )
    assert (
        definition.habit_events == ["Report Generated", "Project Created"] and definition.activation_condition is None
    )
    big = {"type": "condition", "property": "account.trait.employees", "operator": "gte", "value": 5000}
    rule = {"form": "rule", "label": "Big", "condition_text": '{"type": "condition", "property": "nope"}', "points": 5}
    response = growth.post(reverse("trial-settings"), rule)
    assert response.status_code == 200 and "Not a valid condition" in response.content.decode()
    rule["condition_text"] = json.dumps(big)
    assert growth.post(reverse("trial-settings"), rule).status_code == 302
    assert FitRule.objects.get(label="Big").condition["children"] == [big]

    cs = signed_in(make_user(Role.CS))
    page = cs.get(reverse("trial-settings"))
    assert page.status_code == 200 and b"Save definition" not in page.content
    assert cs.post(reverse("trial-settings"), rule).status_code == 403
    assert cs.post(reverse("fit-rule-delete", args=[FitRule.objects.get(label="Big").pk])).status_code == 403


def test_the_customer_page_shows_the_score_breakdown(
    make_user: Callable[..., AbstractUser], customer: Customer
) -> None:
    Customer.objects.filter(pk=customer.pk).update(email="ada@gmail.com")
    trials_process(customer_ids={customer.pk}, now=timezone.now())
    page = signed_in(make_user(Role.SALES_REP)).get(reverse("customer-detail", args=[customer.pk])).content.decode()
    assert 'id="trial-score"' in page and "Free-mail address" in page and "PQL" in page


@pytest.mark.browser
def test_the_trials_list_and_loop_board_in_the_browser(
    live_url: str, page: Any, make_user: Callable[..., AbstractUser], plan: Plan
) -> None:
    make_user(Role.GROWTH, "gail")
    trials_for(plan, 2)
    page.goto(f"{live_url}/login/?next=/trials/")
    page.fill("#id_username", "gail")
    page.fill("#id_password", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/trials/")
    assert page.locator("#trials tbody tr[data-stage=trigger]").count() == 2
    page.click("text=Loop board")
    page.wait_for_url(f"{live_url}/trials/loop/")
    assert page.locator("#loop-stages tr[data-stage=trigger] td.num").first.inner_text() == "2"
    page.select_option("select[name=days]", "7")
    page.click("text=Show")
    page.wait_for_url(f"{live_url}/trials/loop/?days=7")
    assert "New trial" in page.locator("#loop-flows").inner_text()


def test_the_trials_api_lists_current_trials_by_stage(
    make_user: Callable[..., AbstractUser], api_client_for: Callable[[AbstractUser], Any], plan: Plan
) -> None:
    trials_for(plan, 2)
    client = api_client_for(make_user(Role.SALES_REP))
    body = client.get("/api/v1/trials/", {"stage": "trigger"}).json()
    assert [row["stage"] for row in body["results"]] == ["trigger", "trigger"]
    assert "fit" in body["results"][0]["score_breakdown"]
    assert client.get("/api/v1/trials/", {"stage": "convert"}).json()["results"] == []
