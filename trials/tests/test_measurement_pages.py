"""Measurement pages, CSV exports and API endpoints: who may read them, bad filters, the one-click activation
event, and a real browser opening the dashboard and downloading a CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from audiences.models import Customer, Event, Source
from audiences.services import source_create
from config.demo.effects import PlantedEffects, plant_effects
from config.roles import Role
from conftest import TEST_PASSWORD
from segments.models import CustomProperty, Segment
from trials.loop.lifecycle import activation_definition
from trials.loop.models import Trial
from trials.measurement.forms import MeasurementFilterForm
from trials.measurement.retention import retention_report
from trials.measurement.scope import Filters
from trials.measurement.views import REPORTS
from trials.messaging.models import MessageTemplate

pytestmark = pytest.mark.django_db
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
EFFECTS = PlantedEffects()


def signed_in(user: AbstractUser, **options: Any) -> Client:
    client = Client(**options)
    assert client.login(username=user.get_username(), password=TEST_PASSWORD)
    return client


@pytest.fixture
def planted(source: Source) -> Source:
    plant_effects(source=source, trials=600, seed=3, now=timezone.now())
    return source


@pytest.fixture
def growth(make_user: Callable[..., AbstractUser]) -> AbstractUser:
    return make_user(Role.GROWTH)


@pytest.mark.parametrize("slug", list(REPORTS))
def test_each_page_renders_its_table_chart_and_csv(slug: str, planted: Source, growth: AbstractUser) -> None:
    client = signed_in(growth)
    url = reverse(REPORTS[slug].url_name)
    response = client.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-testid="report-table"' in body and 'id="measurement-chart-data"' in body
    assert "vendor/chartjs/chart.umd.js" in body and "Measurement" in body
    export = client.get(url, {"format": "csv"})
    assert export.status_code == 200 and export["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(export.content.decode())))
    assert len(rows) > 1


@pytest.mark.parametrize("slug", list(REPORTS))
def test_page_query_count_does_not_grow_with_the_data(
    slug: str, source: Source, growth: AbstractUser, django_assert_max_num_queries: Any
) -> None:
    client = signed_in(growth)
    url = reverse(REPORTS[slug].url_name)
    plant_effects(source=source, trials=100, seed=1, now=timezone.now())
    client.get(url)  # warm the session and permission caches
    with django_assert_max_num_queries(16) as small:
        client.get(url)
    plant_effects(source=source, trials=400, seed=2, now=timezone.now())
    with django_assert_max_num_queries(len(small.captured_queries)):
        client.get(url)


def test_uplift_csv_and_api_carry_the_planted_effect(
    planted: Source, growth: AbstractUser, api_client_for: Callable[[AbstractUser], APIClient]
) -> None:
    MessageTemplate.objects.create(
        key="welcome", name="Welcome email", trigger="trial_day", trigger_number=1, holdout_percent=0, no_holdout=True
    )
    page = signed_in(growth).get(reverse("measurement-uplift")).content.decode()
    names = page.split('data-testid="without-holdout">', 1)[1].split("</p>", 1)[0]
    assert "“No holdout” chosen, so no control group to measure against" in names and "Welcome email" in names
    assert EFFECTS.uplift_template not in names  # the planted templates have a holdout (and are inactive)
    assert "Effect: it raises conversion by" in page and "No detectable effect" in page
    export = signed_in(growth).get(reverse("measurement-uplift"), {"format": "csv"})
    rows = {row["Key"]: row for row in csv.DictReader(io.StringIO(export.content.decode()))}
    assert rows[EFFECTS.uplift_template]["Verdict"] == "effect"
    assert float(rows[EFFECTS.uplift_template]["Absolute 95% low"]) > 0
    answer = api_client_for(growth).get("/api/v1/measurement/uplift/")
    assert answer.status_code == 200
    by_key = {row["key"]: row for row in answer.json()["rows"]}
    assert by_key[EFFECTS.uplift_template]["uplift"] == float(rows[EFFECTS.uplift_template]["Absolute uplift"])
    assert by_key[EFFECTS.null_template]["treated"] + by_key[EFFECTS.null_template]["control"] == 600


@pytest.mark.parametrize("slug", list(REPORTS))
def test_api_endpoints_answer_and_refuse_bad_filters(
    slug: str, planted: Source, growth: AbstractUser, api_client_for: Callable[[AbstractUser], APIClient]
) -> None:
    client = api_client_for(growth)
    ok = client.get(f"/api/v1/measurement/{slug}/", {"model": "opt_in", "since": "2020-01-01"})
    assert ok.status_code == 200 and ok.json()["report"] == slug and ok.json()["rows"]
    bad = client.get(f"/api/v1/measurement/{slug}/", {"since": "yesterday", "model": "trial", "days": "0"})
    assert bad.status_code == 400
    assert {"since", "model"} <= set(bad.json()["errors"])


def test_csv_cells_that_look_like_formulas_are_quoted(source: Source, growth: AbstractUser) -> None:
    customer = Customer.objects.create(user_id="usr_formula")
    now = timezone.now()
    started = now - timedelta(days=30)
    Trial.objects.create(
        customer=customer, started_at=started, ends_at=started + timedelta(days=14), stage_changed_at=now
    )
    Event.objects.create(
        source=source, message_id="f-1", customer=customer, type=Event.Type.TRACK, name="=HYPERLINK(1)",
        timestamp=started + timedelta(hours=1), received_at=now,
    )  # fmt: skip
    export = signed_in(growth).get(reverse("measurement-activation"), {"format": "csv"}).content.decode()
    assert "'=HYPERLINK(1)" in export


def test_bad_filters_are_form_errors_on_pages_and_400_for_csv(growth: AbstractUser) -> None:
    client = signed_in(growth)
    url = reverse("measurement-cohorts")
    page = client.get(url, {"since": "2026-05-02", "until": "2026-05-01", "plan": "999999"})
    assert page.status_code == 400
    body = page.content.decode()
    assert 'role="alert"' in body and "The start date must not be after the end date." in body
    assert client.get(url, {"split": "segment", "format": "csv"}).status_code == 400
    assert client.get(reverse("measurement-activation"), {"days": "abc", "format": "csv"}).status_code == 400


@pytest.mark.parametrize("slug", list(REPORTS))
def test_dates_out_of_range_are_refused_not_overflowed(
    slug: str, growth: AbstractUser, api_client_for: Callable[[AbstractUser], APIClient]
) -> None:
    url = reverse(REPORTS[slug].url_name)
    query = {"since": "1999-12-31", "until": "9999-12-31"}
    page = signed_in(growth).get(url, query)
    assert page.status_code == 400 and "less than or equal to 2100-12-31" in page.content.decode()
    assert signed_in(growth).get(url, {**query, "format": "csv"}).status_code == 400
    answer = api_client_for(growth).get(f"/api/v1/measurement/{slug}/", query)
    assert answer.status_code == 400 and {"since", "until"} <= set(answer.json()["errors"])
    edges = api_client_for(growth).get(f"/api/v1/measurement/{slug}/", {"since": "2000-01-01", "until": "2100-12-31"})
    assert edges.status_code == 200


def test_split_by_segment(
    planted: Source, growth: AbstractUser, api_client_for: Callable[[AbstractUser], APIClient]
) -> None:
    CustomProperty.objects.create(key="signup_source", value_type="string")
    segment = Segment.objects.create(
        name="Paid signups",
        conditions={
            "type": "group", "operator": "and", "negate": False,
            "children": [{"type": "condition", "property": "trait.signup_source", "operator": "equals", "value": "paid"}],
        },
    )  # fmt: skip
    query = {"split": "segment", "segment": str(segment.pk)}
    answer = api_client_for(growth).get("/api/v1/measurement/cohorts/", query)
    assert answer.status_code == 200
    rows = answer.json()["rows"]
    inside = sum(row["trials"] for row in rows if row["group"] == "In Paid signups")
    assert inside == Trial.objects.filter(source="paid").count() > 0
    assert sum(row["trials"] for row in rows) == 600
    # Only the cohorts split: for any other report a stray `split=segment` leaves the segment a filter.
    form = MeasurementFilterForm(query)
    assert form.is_valid(), form.errors
    assert form.filters().segment == segment and form.filters(segment_splits=True).segment is None
    CustomProperty.objects.all().delete()
    broken = api_client_for(growth).get("/api/v1/measurement/cohorts/", {"segment": str(segment.pk)})
    assert broken.status_code == 400 and "no longer compile" in str(broken.json()["errors"]["segment"])


def test_roles_without_the_permissions_are_refused(
    rep_user: AbstractUser, api_client_for: Callable[[AbstractUser], APIClient]
) -> None:
    nobody = get_user_model().objects.create_user(username="nobody", password=TEST_PASSWORD)
    assert signed_in(nobody).get(reverse("measurement-cohorts")).status_code == 403
    assert api_client_for(nobody).get("/api/v1/measurement/cohorts/").status_code == 403
    assert APIClient().get("/api/v1/measurement/cohorts/").status_code in (401, 403)
    response = signed_in(rep_user).post(
        reverse("measurement-make-activation"), {"event": "Dashboard Shared", "count": 1, "days": 3}
    )
    assert response.status_code == 403
    assert activation_definition().activation_event != "Dashboard Shared"


def test_make_this_the_activation_event(planted: Source, growth: AbstractUser, customer: Customer) -> None:
    now = timezone.now()
    open_trial = Trial.objects.create(
        customer=customer, started_at=now, ends_at=now + timedelta(days=14), stage_changed_at=now
    )
    page = signed_in(growth).get(reverse("measurement-activation"), {"days": 3})
    body = page.content.decode()
    assert "Make this the activation event" in body and 'name="csrfmiddlewaretoken"' in body
    strict = signed_in(growth, enforce_csrf_checks=True)
    url = reverse("measurement-make-activation")
    assert strict.post(url, {"event": EFFECTS.activation_event, "count": 1, "days": 3}).status_code == 403
    response = signed_in(growth).post(url, {"event": EFFECTS.activation_event, "count": 2, "days": 3})
    assert response.status_code == 302
    definition = activation_definition()
    assert (definition.activation_event, definition.activation_count, definition.activation_within_hours) == (
        EFFECTS.activation_event,
        2,
        72,
    )
    open_trial.refresh_from_db()
    assert open_trial.next_check_at is not None  # marked due: the sweep re-derives it with the new definition
    marked = signed_in(growth).get(reverse("measurement-activation"), {"days": 3}).content.decode()
    assert 'data-testid="current-definition"' in marked
    refused = signed_in(growth).post(url, {"event": "", "count": 0, "days": 3})
    assert refused.status_code == 302 and activation_definition().activation_count == 2


@pytest.mark.browser
def test_dashboard_opens_and_exports_a_csv(live_url: str, page: Any, make_user: Callable[..., AbstractUser]) -> None:
    source, _ = source_create(name="Browser")
    plant_effects(source=source, trials=300, seed=5, now=timezone.now())
    make_user(Role.GROWTH, username="gwen")
    page.goto(f"{live_url}/login/?next=/measurement/cohorts/")
    page.fill("#id_username", "gwen")
    page.fill("#id_password", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/measurement/cohorts/")
    page.wait_for_selector("#measurement-chart[data-ready=true]")
    assert page.get_by_role("link", name="Holdout uplift").count() >= 1
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "measurement_cohorts.png"), full_page=True)
    table = page.get_by_test_id("report-table")
    assert "mature" in table.inner_text()
    with page.expect_download() as download_info:
        page.get_by_test_id("csv-export").click()
    download = download_info.value
    assert download.suggested_filename == "cohorts.csv"
    with open(download.path(), encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert sum(int(row["Trials"]) for row in rows) == 300
    page.get_by_role("link", name="Activation-event discovery").click()
    page.wait_for_selector("#measurement-chart[data-ready=true]")
    page.screenshot(path=str(SCREENSHOTS / "measurement_activation.png"), full_page=True)
    page.locator("tr", has_text=EFFECTS.activation_event).first.get_by_role("button").click()
    assert "Activation is now" in page.locator(".messages").inner_text()
    assert activation_definition().activation_event == EFFECTS.activation_event
    for tab, name in (
        ("Holdout uplift", "uplift"),
        ("Converters vs churners", "behaviour"),
        ("Retention and recovery", "retention"),
    ):
        page.get_by_role("link", name=tab).first.click()
        page.wait_for_selector("#measurement-chart[data-ready=true]")
        page.screenshot(path=str(SCREENSHOTS / f"measurement_{name}.png"), full_page=True)
    expected = retention_report(filters=Filters(), now=timezone.now()).recovery_verdict
    assert page.get_by_test_id("recovery-verdict").inner_text() == expected
