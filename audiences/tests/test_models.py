"""Constraints of the profile and event tables: what the database itself refuses."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from audiences.models import AnonymousId, Customer, Event, Source


@pytest.mark.django_db
class TestCustomerIdentities:
    def test_user_id_identifies_one_customer(self) -> None:
        Customer.objects.create(user_id="usr_1")
        with pytest.raises(IntegrityError), transaction.atomic():
            Customer.objects.create(user_id="usr_1")

    def test_many_customers_may_lack_ids(self) -> None:
        Customer.objects.create(user_id=None, stripe_customer_id=None)
        Customer.objects.create(user_id=None, stripe_customer_id=None)
        assert Customer.objects.filter(user_id__isnull=True).count() == 2

    def test_empty_string_is_not_an_id(self) -> None:
        with pytest.raises(IntegrityError), transaction.atomic():
            Customer.objects.create(user_id="")
        with pytest.raises(IntegrityError), transaction.atomic():
            Customer.objects.create(stripe_customer_id="")

    def test_stripe_customer_id_is_unique(self) -> None:
        Customer.objects.create(stripe_customer_id="cus_1")
        with pytest.raises(IntegrityError), transaction.atomic():
            Customer.objects.create(stripe_customer_id="cus_1")

    def test_email_is_shared_not_unique(self) -> None:
        Customer.objects.create(email="team@acme.test")
        Customer.objects.create(email="team@acme.test")
        assert Customer.objects.filter(email="team@acme.test").count() == 2

    def test_anonymous_id_belongs_to_one_customer(self) -> None:
        first, second = Customer.objects.create(), Customer.objects.create()
        AnonymousId.objects.create(anonymous_id="anon-1", customer=first)
        with pytest.raises(IntegrityError), transaction.atomic():
            AnonymousId.objects.create(anonymous_id="anon-1", customer=second)

    def test_consent_is_given_unless_withdrawn(self) -> None:
        customer = Customer(consent={"email": False})
        assert customer.has_consent("email") is False
        assert customer.has_consent("destinations") is True


@pytest.mark.django_db
class TestEventDeduplication:
    def _event(self, source: Source, customer: Customer, message_id: str) -> Event:
        now = timezone.now()
        return Event.objects.create(
            source=source,
            customer=customer,
            message_id=message_id,
            type=Event.Type.TRACK,
            name="Project Created",
            timestamp=now,
            received_at=now,
        )

    def test_message_id_is_unique_per_source(self, source: Source) -> None:
        customer = Customer.objects.create(user_id="usr_1")
        self._event(source, customer, "m-1")
        with pytest.raises(IntegrityError), transaction.atomic():
            self._event(source, customer, "m-1")

    def test_same_message_id_from_another_source_is_kept(self, source: Source) -> None:
        other = Source.objects.create(name="Mobile", write_key_hash="x" * 64, write_key_prefix="x")
        customer = Customer.objects.create(user_id="usr_1")
        self._event(source, customer, "m-1")
        self._event(other, customer, "m-1")
        assert Event.objects.filter(message_id="m-1").count() == 2

    def test_deleting_a_customer_deletes_their_events(self, source: Source) -> None:
        customer = Customer.objects.create(user_id="usr_1")
        self._event(source, customer, "m-1")
        customer.delete()
        assert not Event.objects.exists()
