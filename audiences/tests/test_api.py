"""The read API: token and session auth, filters, cursor pagination, the event timeline, query counts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import AbstractUser
from django.core.management import call_command
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from audiences.models import Account, AnonymousId, Customer, Event, Source
from conftest import TEST_PASSWORD


@pytest.fixture
def rep_api(rep_user: AbstractUser, api_client_for: Callable[[AbstractUser], APIClient]) -> APIClient:
    return api_client_for(rep_user)


@pytest.mark.django_db
class TestAuthentication:
    def test_anonymous_request_is_refused_with_json(self, customer: Customer) -> None:
        response = APIClient().get("/api/v1/customers/")
        assert response.status_code == 401
        assert response.json()["error"] == "Authentication credentials were not provided."

    def test_wrong_token_is_refused(self, customer: Customer) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
        assert client.get("/api/v1/customers/").status_code == 401

    def test_token_from_the_management_command_works(self, rep_user: AbstractUser, customer: Customer) -> None:
        call_command("drf_create_token", rep_user.get_username())
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get(user_id=rep_user.pk).key}")
        assert client.get("/api/v1/customers/").status_code == 200

    def test_session_of_the_ui_works(self, rep_user: AbstractUser, customer: Customer) -> None:
        client = APIClient()
        assert client.login(username=rep_user.get_username(), password=TEST_PASSWORD)
        assert client.get("/api/v1/customers/").json()["results"][0]["user_id"] == "usr_ada"


@pytest.mark.django_db
class TestCustomerFilters:
    @pytest.fixture(autouse=True)
    def others(self, customer: Customer) -> None:
        Customer.objects.create(user_id="usr_bob", email="bob@example.test", name="Bob")
        anon = Customer.objects.create(name="")
        AnonymousId.objects.create(anonymous_id="anon-123", customer=anon)

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("user_id=usr_ada", ["usr_ada"]),
            ("email=ADA@acme.test", ["usr_ada"]),
            ("email=nobody@acme.test", []),
            ("q=Bob", ["usr_bob"]),
            ("q=bob@example.test", ["usr_bob"]),
            ("anonymous_id=anon-123", [None]),
        ],
    )
    def test_filters(self, rep_api: APIClient, query: str, expected: list[str | None]) -> None:
        response = rep_api.get(f"/api/v1/customers/?{query}")
        assert [row["user_id"] for row in response.json()["results"]] == expected

    def test_filter_by_account(self, rep_api: APIClient, customer: Customer) -> None:
        assert customer.account is not None
        rows = rep_api.get(f"/api/v1/customers/?account={customer.account.pk}").json()["results"]
        assert [row["email"] for row in rows] == ["ada@acme.test"]
        assert rows[0]["account"] == {"id": customer.account.pk, "group_id": "grp_acme", "name": "Acme"}

    def test_invalid_filter_value_is_a_400_with_a_message(self, rep_api: APIClient) -> None:
        response = rep_api.get("/api/v1/customers/?subscriber_status=sleeping")
        assert response.status_code == 400
        assert "subscriber_status" in response.json()["error"]


@pytest.mark.django_db
class TestPagination:
    def test_cursor_pages_cover_everything_once(self, rep_api: APIClient) -> None:
        Customer.objects.bulk_create([Customer(user_id=f"usr_{i}") for i in range(25)])
        seen: list[str] = []
        url: str | None = "/api/v1/customers/?page_size=10"
        while url:
            page = rep_api.get(url).json()
            assert "count" not in page  # no COUNT(*) on big tables
            seen += [row["user_id"] for row in page["results"]]
            url = page["next"]
        assert sorted(seen) == sorted(f"usr_{i}" for i in range(25))

    def test_list_query_count_does_not_grow_with_rows(
        self, rep_api: APIClient, django_assert_max_num_queries: DjangoAssertNumQueries
    ) -> None:
        account = Account.objects.create(group_id="g1", name="G1")
        customers = Customer.objects.bulk_create([Customer(user_id=f"usr_{i}", account=account) for i in range(40)])
        AnonymousId.objects.bulk_create([AnonymousId(anonymous_id=f"a{c.pk}", customer=c) for c in customers])
        with django_assert_max_num_queries(6):  # session/token auth, permissions, page, anonymous ids
            response = rep_api.get("/api/v1/customers/?page_size=50")
        assert len(response.json()["results"]) == 40


@pytest.mark.django_db
class TestEvents:
    def test_timeline_newest_first(self, rep_api: APIClient, customer: Customer) -> None:
        rows = rep_api.get(f"/api/v1/customers/{customer.pk}/events/").json()["results"]
        assert [row["name"] for row in rows] == ["Teammate Invited", "Project Created", "Signed Up"]
        assert rows[0]["source_name"] == "Web app"

    def test_timeline_filters(self, rep_api: APIClient, customer: Customer) -> None:
        rows = rep_api.get(f"/api/v1/customers/{customer.pk}/events/?name=Project Created").json()["results"]
        assert [row["name"] for row in rows] == ["Project Created"]
        since = (timezone.now() - timedelta(days=1, hours=12)).isoformat()
        rows = rep_api.get(f"/api/v1/customers/{customer.pk}/events/", {"since": since}).json()["results"]
        assert [row["name"] for row in rows] == ["Teammate Invited"]

    def test_date_filters_take_any_iso_offset_and_refuse_what_cannot_be_converted(
        self, rep_api: APIClient, customer: Customer
    ) -> None:
        # Found by the fuzzer (config/tests/test_fuzz_api.py): PostgreSQL refused offsets beyond ±15:59 (a 500).
        since = (timezone.now() - timedelta(days=1, hours=12)).astimezone(timezone.get_fixed_timezone(19 * 60 + 42))
        rows = rep_api.get(f"/api/v1/customers/{customer.pk}/events/", {"since": since.isoformat()}).json()["results"]
        assert [row["name"] for row in rows] == ["Teammate Invited"]
        ends = (timezone.now() + timedelta(days=30)).astimezone(timezone.get_fixed_timezone(-(23 * 60 + 59)))
        subscriptions = rep_api.get("/api/v1/subscriptions/", {"trial_ends_before": ends.isoformat()}).json()
        assert [row["customer"] for row in subscriptions["results"]] == [customer.pk]
        for url, name in [
            (f"/api/v1/customers/{customer.pk}/events/", "until"),
            ("/api/v1/subscriptions/", "trial_ends_before"),
        ]:
            response = rep_api.get(url, {name: "0001-01-01T00:00:00+05:00"})
            assert response.status_code == 400, response.content

    def test_only_that_customers_events(self, rep_api: APIClient, customer: Customer, source: Source) -> None:
        other = Customer.objects.create(user_id="usr_other")
        now = timezone.now()
        Event.objects.create(
            source=source, customer=other, message_id="x", type="track", name="Other", timestamp=now, received_at=now
        )
        rows = rep_api.get(f"/api/v1/customers/{customer.pk}/events/").json()["results"]
        assert "Other" not in [row["name"] for row in rows]

    def test_unknown_customer_is_404(self, rep_api: APIClient, customer: Customer) -> None:
        response = rep_api.get("/api/v1/customers/999999/events/")
        assert response.status_code == 404
        assert response.json()["error"]


@pytest.mark.django_db
class TestOtherResources:
    def test_accounts_and_subscriptions(self, rep_api: APIClient, customer: Customer) -> None:
        accounts = rep_api.get("/api/v1/accounts/?group_id=grp_acme").json()["results"]
        assert accounts[0]["traits"] == {"employees": 40}
        subscriptions = rep_api.get(f"/api/v1/subscriptions/?customer={customer.pk}&status=trialing").json()["results"]
        assert subscriptions[0]["plan"]["product"] == "Team"
        assert rep_api.get("/api/v1/subscriptions/?status=active").json()["results"] == []

    @pytest.mark.parametrize("value", ["9223372036854775808", "9.223372036854776e+18", "0", "1.5"])
    def test_an_id_filter_out_of_range_is_a_bad_request(self, rep_api: APIClient, value: str) -> None:
        for url in ("/api/v1/subscriptions/?customer=", "/api/v1/subscriptions/?plan=", "/api/v1/customers/?account="):
            response = rep_api.get(url + value)
            assert response.status_code == 400, (url, response.content)

    def test_schema_and_docs_are_served(self, rep_api: APIClient) -> None:
        schema = rep_api.get("/api/schema/?format=json")
        assert schema.status_code == 200
        paths = schema.json()["paths"]
        assert "/api/v1/customers/{customer_pk}/events/" in paths
        assert "/api/v1/subscriptions/" in paths
        docs = rep_api.get("/api/docs/")
        assert docs.status_code == 200
        assert b"swagger-ui" in docs.content
        assert b"cdn" not in docs.content.lower()
