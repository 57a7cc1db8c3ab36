"""Filter sets shared by the API and the staff UI lists."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from audiences.models import Account, Customer, Event


class CustomerFilter(django_filters.FilterSet):
    """Find customers by any id they are known by, by account or status, or by a free search."""

    user_id = django_filters.CharFilter(field_name="user_id")
    email = django_filters.CharFilter(method="filter_email")
    stripe_customer_id = django_filters.CharFilter(field_name="stripe_customer_id")
    anonymous_id = django_filters.CharFilter(field_name="anonymous_ids__anonymous_id")
    account = django_filters.NumberFilter(field_name="account_id")
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
    since = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="lt")

    class Meta:
        model = Event
        fields = ["name", "type", "since", "until"]
