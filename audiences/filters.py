"""Filter sets shared by the API and the staff UI lists."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django_filters.fields import IsoDateTimeField

from audiences.models import Account, Customer, Event


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time converted to UTC: ISO 8601 allows offsets up to ±23:59 but PostgreSQL refuses those
    beyond ±15:59, and a date too near year 1 or 9999 to convert is a bad filter (400), not a server error."""

    def to_python(self, value: Any) -> datetime | None:
        parsed: datetime | None = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError as error:
            raise ValidationError("Enter a date-time between the years 1 and 9999 in UTC.", code="invalid") from error


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class IdFilter(django_filters.NumberFilter):
    """A row's id: a whole number from 1 to the largest a database key holds. Anything else is a bad filter (400),
    never a value the database cannot bind (SQLite refuses integers past 2^63 − 1 with a server error)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**63 - 1)
        kwargs.setdefault("decimal_places", 0)
        super().__init__(*args, **kwargs)


class CustomerFilter(django_filters.FilterSet):
    """Find customers by any id they are known by, by account or status, or by a free search."""

    user_id = django_filters.CharFilter(field_name="user_id")
    email = django_filters.CharFilter(method="filter_email")
    stripe_customer_id = django_filters.CharFilter(field_name="stripe_customer_id")
    anonymous_id = django_filters.CharFilter(field_name="anonymous_ids__anonymous_id")
    account = IdFilter(field_name="account_id")
    subscriber_status = django_filters.ChoiceFilter(choices=Customer.SubscriberStatus.choices)
    is_test = django_filters.BooleanFilter()
    q = django_filters.CharFilter(method="filter_search", label="Search")

    class Meta:
        model = Customer
        fields = ["user_id", "email", "stripe_customer_id", "anonymous_id", "account", "subscriber_status", "is_test"]

    def filter_email(self, queryset: QuerySet[Customer], name: str, value: str) -> QuerySet[Customer]:
        # Emails are stored lower-cased, so an exact match stays an index lookup.
        return queryset.filter(email=value.strip().lower())

    def filter_search(self, queryset: QuerySet[Customer], name: str, value: str) -> QuerySet[Customer]:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(email=value.lower()) | Q(user_id=value) | Q(name__istartswith=value))


class AccountFilter(django_filters.FilterSet):
    group_id = django_filters.CharFilter(field_name="group_id")
    domain = django_filters.CharFilter(field_name="domain")
    q = django_filters.CharFilter(field_name="name", lookup_expr="istartswith", label="Name starts with")

    class Meta:
        model = Account
        fields = ["group_id", "domain", "owner"]


class EventFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(field_name="name")
    type = django_filters.ChoiceFilter(choices=Event.Type.choices)
    since = UtcIsoDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    until = UtcIsoDateTimeFilter(field_name="timestamp", lookup_expr="lt")

    class Meta:
        model = Event
        fields = ["name", "type", "since", "until"]
