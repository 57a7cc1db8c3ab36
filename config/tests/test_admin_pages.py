"""Every model registered in the back office opens: its list loads for an admin, so a wrong list_display or
filter cannot hide until someone needs the admin."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.urls import reverse

REGISTERED = sorted(f"{model._meta.app_label}_{model._meta.model_name}" for model in admin.site._registry)


@pytest.mark.django_db
@pytest.mark.parametrize("model", REGISTERED)
def test_the_changelist_opens(model: str, admin_user: AbstractUser) -> None:
    client = Client()
    client.force_login(admin_user)  # type: ignore[arg-type]
    assert client.get(reverse(f"admin:{model}_changelist")).status_code == 200
