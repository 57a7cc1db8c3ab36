"""Computed trait pages: the list with backfill progress, the form showing the engine's errors on the right
field, the detail page's distribution and changes, deletion, the customer page section, roles, and the form in
a real browser."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from audiences.models import ComputedTrait, ComputedTraitChange, ComputedTraitValue, Customer
from audiences.selectors import trait_value_text
from config.roles import Role
from conftest import TEST_PASSWORD
from segments.services import segment_save
from segments.traits.selectors import computed_trait_distribution
from segments.traits.services import computed_trait_save

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
FORM: dict[str, Any] = {
    "key": "projects",
    "name": "Projects",
    "kind": "count",
    "event": "Project Created",
    "where": "[]",
}


def signed_in(user: AbstractUser) -> Client:
    client = Client()
    assert client.login(username=user.get_username(), password=TEST_PASSWORD)
    return client


def hold(trait: ComputedTrait, customer: Customer, value: Any, **typed: Any) -> ComputedTraitValue:
    return ComputedTraitValue.objects.create(
        trait=trait, customer=customer, value=value, updated_at=timezone.now(), **typed
    )


@pytest.mark.django_db
class TestComputedTraitPages:
    def test_the_form_creates_a_trait_and_shows_its_backfill(
        self, make_user: Callable[..., AbstractUser], customer: Customer, django_capture_on_commit_callbacks: Any
    ) -> None:
        client = signed_in(make_user(Role.GROWTH))
        where = json.dumps([{"property": "step", "operator": "is_set"}])
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(reverse("computed-trait-create"), {**FORM, "where": where, "window_days": "30"})
        trait = ComputedTrait.objects.get(key="projects")
        assert response.status_code == 302
        assert response["Location"] == reverse("computed-trait-detail", kwargs={"pk": trait.pk})
        assert (trait.where[0]["operator"], trait.window_days, trait.backfill_status) == ("is_set", 30, "done")
        listed = client.get(reverse("computed-trait-list")).content.decode()
        assert ">projects</code>" in listed
        assert "last 30 days" in listed
        assert 'data-status="done"' in listed
        assert "1 / 1" in listed

    @pytest.mark.parametrize(
        ("change", "field", "message"),
        [
            ({"kind": "sum"}, "property", "this kind reads an event property: name it"),
            ({"where": '[{"property": "plan", "operator": "gt", "value": 1}]'}, "where", "where[0]"),
            ({"where": "not json"}, "where", "Enter a valid JSON."),
            ({"window_days": "0"}, "window_days", "between 1 and 3650 days"),
            ({"key": "has space"}, "key", "letters, digits and _ only"),
        ],
    )
    def test_engine_errors_show_on_the_field_they_name(
        self, make_user: Callable[..., AbstractUser], change: dict[str, str], field: str, message: str
    ) -> None:
        client = signed_in(make_user(Role.GROWTH))
        response = client.post(reverse("computed-trait-create"), {**FORM, **change})
        assert response.status_code == 400
        form = response.context["form"]
        assert list(form.errors) == [field]
        assert message in form.errors[field][0]
        assert f'data-field-error="{field}"' in response.content.decode()
        assert not ComputedTrait.objects.exists()

    def test_edit_prefills_and_saves(self, make_user: Callable[..., AbstractUser]) -> None:
        client = signed_in(make_user(Role.ADMIN))
        trait = computed_trait_save(
            key="plan_viewed", name="Plan", kind="last_value", event="Plan Viewed", property="plan"
        )
        edit = reverse("computed-trait-edit", kwargs={"pk": trait.pk})
        form = client.get(edit).context["form"]
        assert (form["property"].value(), form["kind"].value()) == ("plan", "last_value")
        client.post(
            edit, {**FORM, "key": "plan_viewed", "kind": "most_frequent", "event": "Plan Viewed", "property": "plan"}
        )
        trait.refresh_from_db()
        assert trait.kind == "most_frequent"

    def test_detail_shows_distribution_and_recent_changes(
        self, make_user: Callable[..., AbstractUser], django_assert_max_num_queries: DjangoAssertNumQueries
    ) -> None:
        client = signed_in(make_user(Role.CS))
        trait = computed_trait_save(key="plan", name="Plan", kind="last_value", event="Plan Viewed", property="plan")
        for index, plan in enumerate(["pro", "pro", "team"]):
            person = Customer.objects.create(user_id=f"u{index}", name=f"Person {index}")
            hold(trait, person, plan, text_value=plan)
            ComputedTraitChange.objects.create(trait=trait, customer=person, old=None, new=plan, at=timezone.now())
        with django_assert_max_num_queries(14):
            page = client.get(reverse("computed-trait-detail", kwargs={"pk": trait.pk}))
        distribution = page.context["distribution"]
        assert (distribution.customers, [(t.value, t.customers) for t in distribution.top]) == (
            3,
            [("pro", 2), ("team", 1)],
        )
        html = page.content.decode()
        assert "Person 2" in html and "— → team" in html.replace("</td><td>", " ")
        assert "Edit" not in html.split("Definition")[1].split("</section>")[0]  # CS may only look

    def test_number_distribution_has_stats_and_dates_group_by_day(self) -> None:
        counts = computed_trait_save(key="n", name="n", kind="count", event="E")
        last = computed_trait_save(key="seen", name="seen", kind="days_since_last", event="E")
        now = timezone.now()
        for index, value in enumerate([1.0, 1.0, 4.0]):
            person = Customer.objects.create(user_id=f"p{index}")
            hold(counts, person, value, number_value=value)
            hold(last, person, now.isoformat(), date_value=now - timedelta(days=index // 2))
        numbers = computed_trait_distribution(counts)
        assert (numbers.customers, numbers.low, numbers.high, numbers.mean) == (3, 1.0, 4.0, 2.0)
        assert [(t.value, t.customers) for t in numbers.top] == [(1.0, 2), (4.0, 1)]
        days = computed_trait_distribution(last)
        assert days.by_day and [t.customers for t in days.top] == [2, 1]
        assert trait_value_text("days_since_last", (now - timedelta(days=3)).isoformat(), now=now).endswith(
            "(3 days ago)"
        )
        assert trait_value_text("unique_list", ["a", "b"]) == "a, b"
        assert trait_value_text("sum", 2.5) == "2.5"

    def test_delete_is_refused_while_used_then_allowed(self, make_user: Callable[..., AbstractUser]) -> None:
        client = signed_in(make_user(Role.GROWTH))
        trait = computed_trait_save(**{**FORM, "where": []})
        condition = {"type": "condition", "property": "computed.projects", "operator": "gte", "value": 1}
        segment_save(name="Builders", conditions=condition)
        refused = client.post(reverse("computed-trait-delete", kwargs={"pk": trait.pk}), follow=True)
        assert "Not deleted: computed.projects is used by the segment Builders" in refused.content.decode()
        assert ComputedTrait.objects.filter(pk=trait.pk).exists()

    @pytest.mark.parametrize("role", list(Role), ids=lambda r: r.name)
    def test_pages_by_role(self, make_user: Callable[..., AbstractUser], role: Role) -> None:
        client = signed_in(make_user(role))
        trait = computed_trait_save(**{**FORM, "where": []})
        manage = role in (Role.ADMIN, Role.GROWTH)
        assert client.get(reverse("computed-trait-detail", kwargs={"pk": trait.pk})).status_code == 200
        assert client.get(reverse("computed-trait-edit", kwargs={"pk": trait.pk})).status_code == (
            200 if manage else 403
        )
        deleted = client.post(reverse("computed-trait-delete", kwargs={"pk": trait.pk}))
        assert deleted.status_code == (302 if manage else 403)
        assert ComputedTrait.objects.filter(pk=trait.pk).exists() is not manage

    def test_navigation_lists_computed_traits(self, make_user: Callable[..., AbstractUser]) -> None:
        page = signed_in(make_user(Role.SALES_REP)).get(reverse("home"))
        labels = [item["label"] for section in page.context["nav_sections"] for item in section["items"]]
        assert labels.index("Computed traits") == labels.index("Segments") + 1


@pytest.mark.django_db
def test_the_customer_page_lists_values_and_latest_changes(
    make_user: Callable[..., AbstractUser], customer: Customer, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    client = signed_in(make_user(Role.SALES_REP))
    traits = [computed_trait_save(key=f"count_{i}", name=f"Count {i}", kind="count", event="E") for i in range(3)]
    for index, trait in enumerate(traits):
        hold(trait, customer, index + 10, number_value=float(index + 10))
        for step in range(5):
            ComputedTraitChange.objects.create(
                trait=trait,
                customer=customer,
                old=step,
                new=step + 1,
                at=timezone.now() - timedelta(minutes=index * 5 + step),
            )
    with django_assert_max_num_queries(15):  # as with no computed traits at all (test_views), plus two
        page = client.get(reverse("customer-detail", kwargs={"pk": customer.pk}))
    assert [row.trait.key for row in page.context["computed_values"]] == ["count_0", "count_1", "count_2"]
    assert len(page.context["computed_changes"]) == 10
    section = page.content.decode().split('data-testid="computed-traits"')[1].split("</section>")[0]
    assert "computed.count_2" in section and ">12<" in section
    assert "0 → 1" in section


@pytest.mark.browser
def test_create_a_computed_trait_in_the_browser_and_see_it_listed(
    live_url: str, page: Any, make_user: Callable[..., AbstractUser], customer: Customer
) -> None:
    make_user(Role.GROWTH, username="gina")
    page.goto(f"{live_url}/login/?next=/computed-traits/")
    page.fill("#id_username", "gina")
    page.fill("#id_password", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/computed-traits/")
    page.click("text=New computed trait")
    page.fill("#id_key", "projects_created")
    page.fill("#id_name", "Projects created")
    page.select_option("#id_kind", "count")
    page.fill("#id_event", "Project Created")
    page.fill("#id_window_days", "0")
    page.click("#computed-trait-form button[type=submit]")
    # The engine's refusal shows on the window field; fix it and save.
    assert "between 1 and 3650 days" in page.locator('[data-field-error="window_days"]').inner_text()
    page.fill("#id_window_days", "30")
    page.click("#computed-trait-form button[type=submit]")
    page.wait_for_url(f"{live_url}/computed-traits/*/")
    assert "computed.projects_created" in page.locator("h1").inner_text()
    page.click("nav.sidebar >> text=Computed traits")
    page.wait_for_url(f"{live_url}/computed-traits/")
    row = page.locator("#computed-traits tbody tr", has_text="projects_created")
    # Tests run Celery eagerly, so the backfill ran on commit: Ada's one project is counted.
    assert row.locator('[data-field="status"]').inner_text() == "Done"
    assert row.locator('[data-field="count"]').inner_text() == "1 / 1"
    assert row.locator("td.num").inner_text() == "1"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "computed_traits.png"), full_page=True)
