"""Segment pages: the builder in a real browser (two groups, preview, publish), form errors, explain, roles."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.urls import reverse

from audiences.models import Customer
from config.roles import Role
from conftest import TEST_PASSWORD
from segments.evaluation import segment_evaluate
from segments.models import Segment, SegmentMembership
from segments.services import segment_save

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
HIGH_MRR = {"type": "condition", "property": "subscriber.mrr", "operator": "gte", "value": 100}


def signed_in(user: AbstractUser) -> Client:
    client = Client()
    assert client.login(username=user.get_username(), password=TEST_PASSWORD)
    return client


@pytest.mark.browser
def test_build_preview_and_publish_a_two_group_segment(
    live_url: str, page: Any, make_user: Callable[..., AbstractUser]
) -> None:
    make_user(Role.GROWTH, username="gina")
    Customer.objects.create(user_id="whale", mrr_cents=50000, subscriber_status="active", is_test=False)
    Customer.objects.create(user_id="tester", mrr_cents=0, is_test=True)
    Customer.objects.create(user_id="minnow", mrr_cents=1000, subscriber_status="active")

    page.goto(f"{live_url}/login/?next=/segments/new/")
    page.fill("#id_username", "gina")
    page.fill("#id_password", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/segments/new/")
    page.fill("#id_name", "Whales or testers")
    page.fill("#id_tags", "revenue, qa")
    # Top group: OR of two groups.
    page.select_option("#builder > fieldset > legend select", "or")
    page.click("#builder > fieldset > .builder-add >> text=+ Group")
    page.click("#builder > fieldset > .builder-add >> text=+ Group")
    groups = page.locator("#builder > fieldset > fieldset")
    # Group 1: MRR ≥ 200 AND status is active.
    first = groups.nth(0)
    first.locator(":scope > legend select").select_option("and")
    first.locator(":scope > .builder-add >> text=+ Condition").click()
    row = first.locator(":scope > .builder-row").nth(0)
    row.locator("select[aria-label=Property]").select_option("subscriber.mrr")
    row.locator("select[aria-label=Operator]").select_option("gte")
    row.locator("input[aria-label=Value]").fill("200")
    first.locator(":scope > .builder-add >> text=+ Condition").click()
    row = first.locator(":scope > .builder-row").nth(1)
    row.locator("select[aria-label=Property]").select_option("subscriber.status")
    row.locator("select[aria-label=Operator]").select_option("equals")
    row.locator("select[aria-label=Value]").select_option("active")
    # Group 2: is a test customer.
    second = groups.nth(1)
    second.locator(":scope > .builder-add >> text=+ Condition").click()
    row = second.locator(":scope > .builder-row").nth(0)
    row.locator("select[aria-label=Property]").select_option("customer.is_test")
    row.locator("select[aria-label=Operator]").select_option("is_true")

    page.wait_for_selector("#preview >> text=2 customers match right now", timeout=10_000)
    page.screenshot(path=str(SCREENSHOTS / "segment_builder.png"), full_page=True)
    page.click("#segment-form button[type=submit]")
    page.wait_for_url(f"{live_url}/segments/*/")
    assert "2 members" in page.locator("h1").inner_text()

    # Test mode: editing the live segment previews who would enter and exit, without changing it.
    page.click("text=Edit conditions")
    second_group = page.locator("#builder > fieldset > fieldset").nth(1)
    second_group.locator(":scope > legend >> text=Remove group").click()
    page.wait_for_selector(
        "#preview >> text=1 customers match right now · 0 would enter · 1 would exit", timeout=10_000
    )
    assert SegmentMembership.objects.filter(segment__name="Whales or testers").count() == 2

    segment = Segment.objects.get(name="Whales or testers")
    assert sorted(segment.tags.values_list("name", flat=True)) == ["qa", "revenue"]
    assert set(SegmentMembership.objects.filter(segment=segment).values_list("customer__user_id", flat=True)) == {
        "whale",
        "tester",
    }


@pytest.mark.django_db
class TestSegmentPages:
    def test_an_invalid_tree_is_a_form_error_naming_the_leaf(self, make_user: Callable[..., AbstractUser]) -> None:
        client = signed_in(make_user(Role.GROWTH))
        tree = {"type": "group", "operator": "and", "children": [{**HIGH_MRR, "operator": "starts_with"}]}
        response = client.post(reverse("segment-create"), {"name": "Bad", "conditions": json.dumps(tree)})
        assert response.status_code == 400
        assert "children[0]: &#x27;starts_with&#x27; does not apply to subscriber.mrr" in response.content.decode()
        assert not Segment.objects.exists()

    def test_detail_shows_members_and_explains_a_customer(self, make_user: Callable[..., AbstractUser]) -> None:
        client = signed_in(make_user(Role.CS))
        Customer.objects.create(user_id="ada", name="Ada", mrr_cents=20000)
        bob = Customer.objects.create(user_id="bob", name="Bob", mrr_cents=100)
        segment = segment_save(name="High MRR", conditions=HIGH_MRR)
        segment_evaluate(segment=segment)
        page = client.get(reverse("segment-detail", kwargs={"pk": segment.pk}), {"explain": "bob"})
        html = page.content.decode()
        assert "Ada" in html
        assert page.context["explanation"]["matches"] is False
        assert page.context["explained_customer"] == bob
        assert "subscriber.mrr gte 100.0" in html

    def test_versions_are_shown_and_restorable(self, make_user: Callable[..., AbstractUser]) -> None:
        client = signed_in(make_user(Role.GROWTH))
        Customer.objects.create(user_id="ada", name="Ada", mrr_cents=20000)
        segment = segment_save(name="High MRR", conditions=HIGH_MRR)
        segment_save(segment=segment, name="High MRR", conditions={**HIGH_MRR, "value": 500})
        page = client.get(reverse("segment-detail", kwargs={"pk": segment.pk})).content.decode()
        assert "+  - subscriber.mrr gte 500.0" in page
        client.post(reverse("segment-restore", kwargs={"pk": segment.pk, "number": 1}))
        segment.refresh_from_db()
        assert segment.conditions["children"][0]["value"] == 100.0
        assert segment.member_count == 1

    def test_list_filters_by_tag(self, make_user: Callable[..., AbstractUser]) -> None:
        client = signed_in(make_user(Role.SALES_REP))
        segment_save(name="A", conditions=HIGH_MRR, tags=["revenue"])
        segment_save(name="B", conditions=HIGH_MRR, tags=["risk"])
        listed = client.get(reverse("segment-list"), {"tag": "risk"})
        assert [s.name for s in listed.context["segments"]] == ["B"]

    def test_a_rep_cannot_save_or_evaluate(self, make_user: Callable[..., AbstractUser]) -> None:
        client = signed_in(make_user(Role.SALES_REP))
        response = client.post(reverse("segment-create"), {"name": "X", "conditions": json.dumps(HIGH_MRR)})
        assert response.status_code == 403
        segment = segment_save(name="High MRR", conditions=HIGH_MRR)
        assert client.post(reverse("segment-detail", kwargs={"pk": segment.pk})).status_code == 403
        assert not SegmentMembership.objects.exists()


@pytest.mark.django_db
def test_the_customer_page_lists_segments_and_links_to_explain(make_user: Callable[..., AbstractUser]) -> None:
    client = signed_in(make_user(Role.SALES_REP))
    ada = Customer.objects.create(user_id="ada", name="Ada", mrr_cents=20000)
    segment = segment_save(name="High MRR", conditions=HIGH_MRR)
    segment_evaluate(segment=segment)
    page = client.get(reverse("customer-detail", kwargs={"pk": ada.pk}))
    assert page.context["segments"] == [{"pk": segment.pk, "name": "High MRR", "member": True}]
    explain_link = f"{reverse('segment-detail', kwargs={'pk': segment.pk})}?explain={ada.pk}"
    assert explain_link in page.content.decode()
    assert client.get(explain_link).context["explanation"]["matches"] is True


@pytest.mark.django_db
def test_save_a_draft_in_the_ui_then_publish_it(make_user: Callable[..., AbstractUser]) -> None:
    client = signed_in(make_user(Role.GROWTH))
    Customer.objects.create(user_id="ada", name="Ada", mrr_cents=20000)
    Customer.objects.create(user_id="bob", name="Bob", mrr_cents=5000)
    Customer.objects.create(user_id="qa", name="QA", is_test=True)
    segment = segment_save(name="High MRR", conditions=HIGH_MRR)
    segment_evaluate(segment=segment)
    edit = reverse("segment-edit", kwargs={"pk": segment.pk})
    lower = json.dumps({**HIGH_MRR, "value": 10})
    form = {"name": "High MRR", "conditions": lower, "action": "draft"}
    refused = client.post(edit, {**form, "test_customers": "ada"})
    assert "Not test customers (or unknown): ada." in refused.content.decode()
    client.post(edit, {**form, "test_customers": "qa"})
    detail = client.get(reverse("segment-detail", kwargs={"pk": segment.pk}))
    assert (detail.context["draft"].would_enter, detail.context["draft"].would_exit) == (2, 0)
    assert segment.memberships.count() == 1  # still live as it was
    client.post(reverse("segment-detail", kwargs={"pk": segment.pk}), {"action": "publish"})
    segment.refresh_from_db()
    assert (segment.draft_conditions, segment.member_count) == (None, 2)
