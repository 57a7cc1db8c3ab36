"""Trials and subscriptions pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audiences.models import Customer
from conftest import TEST_PASSWORD
from integrations.stripe.models import Plan, Subscription
from trials.loop.lifecycle import trials_sweep


@pytest.mark.django_db
def test_trials_sorted_by_expiry_and_subscriptions_filtered(
    rep_user: AbstractUser, customer: Customer, plan: Plan
) -> None:
    now = timezone.now()
    soon = Customer.objects.create(user_id="usr_soon", name="Soon")
    Subscription.objects.create(
        customer=soon, plan=plan, status="trialing", started_at=now, trial_start=now, trial_end=now + timedelta(days=1)
    )
    paid = Customer.objects.create(user_id="usr_paid", name="Paid")
    Subscription.objects.create(customer=paid, plan=plan, status="active", started_at=now)
    trials_sweep(now=now)  # trials for trialing subscriptions no batch has told about
    client = Client()
    client.login(username=rep_user.get_username(), password=TEST_PASSWORD)
    page = client.get(reverse("trial-list")).context["page"]
    assert [t.customer.user_id for t in page.items] == ["usr_soon", "usr_ada"]
    active = client.get(reverse("subscription-list"), {"status": "active"}).context["page"]
    assert [s.customer.user_id for s in active.items] == ["usr_paid"]
