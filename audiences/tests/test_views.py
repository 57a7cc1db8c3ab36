"""Staff UI pages for customers and accounts: what they show, filters, paging, bounded queries."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.urls import reverse
from pytest_django import DjangoAssertNumQueries

from audiences.models import Account, Customer
from conftest import TEST_PASSWORD


@pytest.fixture
def rep_client(rep_user: AbstractUser) -> Client:
    client = Client()
    client.login(username=rep_user.get_username(), password=TEST_PASSWORD)
    return client


@pytest.mark.django_db
class TestCustomerPages:
    def test_detail_shows_profile_traits_subscription_and_timeline(
        self, rep_client: Client, customer: Customer
    ) -> None:
        page = rep_client.get(reverse("customer-detail", kwargs={"pk": customer.pk})).content.decode()
        for text in [
            "Ada Lovelace",
            "usr_ada",
            "Acme",
            "use_case",
            "analytics",
            "Team monthly",
            "Trialing",
            "Teammate Invited",
        ]:
            assert text in page, text

    def test_detail_of_a_missing_customer_is_404(self, rep_client: Client, customer: Customer) -> None:
        assert rep_client.get(reverse("customer-detail", kwargs={"pk": 10**9})).status_code == 404

    def test_detail_queries_are_bounded(
        self, rep_client: Client, customer: Customer, django_assert_max_num_queries: DjangoAssertNumQueries
    ) -> None:
        # 12, plus one each for the computed trait values and their latest changes, and the workspace currency.
        with django_assert_max_num_queries(15):
            rep_client.get(reverse("customer-detail", kwargs={"pk": customer.pk}))

    def test_list_searches_and_pages(self, rep_client: Client, customer: Customer) -> None:
        Customer.objects.bulk_create([Customer(user_id=f"usr_{i}", email=f"p{i}@x.test") for i in range(60)])
        first = rep_client.get(reverse("customer-list"))
        assert len(first.context["page"].items) == 50
        second = rep_client.get(first.context["page"].next_url)
        assert len(second.context["page"].items) == 11
        found = rep_client.get(reverse("customer-list"), {"q": "ada@acme.test"})
        assert [c.user_id for c in found.context["page"].items] == ["usr_ada"]

    def test_list_queries_do_not_grow_with_rows(
        self, rep_client: Client, django_assert_max_num_queries: DjangoAssertNumQueries
    ) -> None:
        account = Account.objects.create(group_id="g", name="G")
        Customer.objects.bulk_create([Customer(user_id=f"usr_{i}", account=account) for i in range(50)])
        # Session, user, permissions (2), the page, the size estimate and (PostgreSQL) its count, roles, the
        # workspace currency the MRR column is shown in: nine at most, however many rows.
        with django_assert_max_num_queries(9):
            rep_client.get(reverse("customer-list"))

    def test_a_tampered_page_link_is_a_404_not_a_crash(self, rep_client: Client, customer: Customer) -> None:
        assert rep_client.get(reverse("customer-list"), {"cursor": "not-a-cursor"}).status_code == 404
        api = rep_client.get("/api/v1/customers/", {"cursor": "not-a-cursor"})
        assert (api.status_code, api.json()["error"]) == (404, "Invalid cursor")

    def test_bad_filter_shows_an_error_not_a_crash(self, rep_client: Client, customer: Customer) -> None:
        response = rep_client.get(reverse("customer-list"), {"subscriber_status": "sleeping"})
        assert response.status_code == 200
        assert "subscriber_status" in response.content.decode()


@pytest.mark.django_db
class TestAccountPages:
    def test_list_counts_seats_and_detail_lists_members(self, rep_client: Client, customer: Customer) -> None:
        assert customer.account is not None
        Customer.objects.create(user_id="usr_grace", name="Grace Hopper", account=customer.account)
        listing = rep_client.get(reverse("account-list"))
        assert [(a.name, a.seats) for a in listing.context["page"].items] == [("Acme", 2)]
        detail = rep_client.get(reverse("account-detail", kwargs={"pk": customer.account.pk})).content.decode()
        assert "Grace Hopper" in detail
        assert "Ada Lovelace" in detail
