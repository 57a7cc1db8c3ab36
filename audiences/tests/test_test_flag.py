"""The customer page's "test customer" switch: who may flip it, what it changes, and that the audit log says who."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.urls import reverse

from audiences.models import Customer
from config.models import AuditEntry
from config.roles import Role

pytestmark = pytest.mark.django_db


def _client(user: AbstractUser) -> Client:
    client = Client()
    client.force_login(user)  # type: ignore[arg-type]
    return client


def test_cs_marks_a_customer_as_test_and_back_from_the_customer_page(
    customer: Customer, make_user: Callable[..., AbstractUser]
) -> None:
    client = _client(make_user(Role.CS))
    page = client.get(reverse("customer-detail", args=[customer.pk])).content.decode()
    assert "Mark as a test customer" in page
    url = reverse("customer-test-flag", args=[customer.pk])

    response = client.post(url, {"is_test": "1"}, follow=True)
    customer.refresh_from_db()
    assert customer.is_test
    assert "is now a test customer" in response.content.decode()
    assert "Mark as a real customer" in response.content.decode()
    entry = AuditEntry.objects.get(model="audiences.Customer", object_id=str(customer.pk))
    assert (entry.action, entry.via, entry.changes) == ("changed", "ui", {"is_test": [False, True]})
    assert entry.actor_name.startswith("cs")

    client.post(url, {"is_test": "1"})  # already a test customer: nothing changes, nothing is logged
    assert AuditEntry.objects.filter(model="audiences.Customer").count() == 1
    client.post(url, {"is_test": "0"})
    customer.refresh_from_db()
    assert not customer.is_test
    assert AuditEntry.objects.filter(model="audiences.Customer").count() == 2


def test_a_bad_value_changes_nothing_and_says_so(customer: Customer, make_user: Callable[..., AbstractUser]) -> None:
    response = _client(make_user(Role.ADMIN)).post(
        reverse("customer-test-flag", args=[customer.pk]), {"is_test": "yes"}, follow=True
    )
    customer.refresh_from_db()
    assert not customer.is_test
    assert "Choose whether this is a test customer." in response.content.decode()


def test_a_rep_neither_sees_nor_flips_the_switch(customer: Customer, make_user: Callable[..., AbstractUser]) -> None:
    client = _client(make_user(Role.SALES_REP))
    assert 'data-testid="test-flag"' not in client.get(reverse("customer-detail", args=[customer.pk])).content.decode()
    assert client.post(reverse("customer-test-flag", args=[customer.pk]), {"is_test": "1"}).status_code == 403
    assert client.get(reverse("customer-test-flag", args=[customer.pk])).status_code in (403, 405)
    customer.refresh_from_db()
    assert not customer.is_test
