"""Sign-in lockout by django-axes, keyed on username + address: the locked-out answer (429, Retry-After, the
page's message), no lockout from elsewhere, reset on success and after the cool-off, and the admins' unlock page."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from config.models import AuditEntry
from config.roles import Role

PASSWORD = "a-long-enough-password-1"
HOME = "10.0.0.1"
ELSEWHERE = "198.51.100.1"


def _sign_in(client: Client, username: str, password: str, address: str = HOME) -> Any:
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.fixture
def growth(make_user: Callable[..., AbstractUser]) -> AbstractUser:
    user = make_user(Role.GROWTH, "grace")
    user.set_password(PASSWORD)
    user.save()
    return user


@pytest.fixture(autouse=True)
def lockout_on(settings: Any) -> None:
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


def _lock_out(username: str = "grace", address: str = HOME) -> None:
    client = Client()
    statuses = [_sign_in(client, username, "wrong", address).status_code for _ in range(3)]
    assert statuses == [200, 200, 429], "the third failure locks the username out from this address"


@pytest.mark.django_db
class TestLockout:
    def test_the_right_password_is_refused_from_the_address_that_failed(self, growth: AbstractUser) -> None:
        _lock_out()
        client = Client()

        response = _sign_in(client, "grace", PASSWORD)

        assert response.status_code == 429
        assert 14 * 60 < int(response["Retry-After"]) <= 15 * 60
        assert "Too many failed sign-in attempts. Try again in 15 minutes." in response.content.decode()
        assert "_auth_user_id" not in client.session

    def test_failures_from_one_address_never_lock_the_owner_out_from_another(self, growth: AbstractUser) -> None:
        _lock_out(address="192.0.2.66")  # someone guessing grace's password

        client = Client()
        assert _sign_in(client, "grace", PASSWORD, address=ELSEWHERE).status_code == 302
        assert client.session["_auth_user_id"] == str(growth.pk)
        assert _sign_in(Client(), "grace", PASSWORD, address="192.0.2.66").status_code == 429

    def test_the_lockout_ends_after_the_cool_off(self, growth: AbstractUser) -> None:
        _lock_out()
        AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))

        client = Client()
        assert _sign_in(client, "grace", PASSWORD).status_code == 302
        assert client.session["_auth_user_id"] == str(growth.pk)

    def test_signing_in_forgets_the_failures(self, growth: AbstractUser) -> None:
        client = Client()
        for _ in range(2):
            assert _sign_in(client, "grace", "wrong").status_code == 200
        assert _sign_in(client, "grace", PASSWORD).status_code == 302
        assert not AccessAttempt.objects.exists()

    def test_only_the_username_and_address_are_kept_in_clear(self, growth: AbstractUser) -> None:
        _sign_in(Client(), "grace", "hunter2-secret")
        attempt = AccessAttempt.objects.get()
        assert (attempt.username, attempt.ip_address, attempt.failures_since_start) == ("grace", HOME, 1)
        assert "hunter2-secret" not in attempt.post_data and "grace" not in attempt.post_data


@pytest.fixture
def admin_client(admin_user: AbstractUser) -> Client:
    client = Client()
    client.force_login(admin_user)  # type: ignore[arg-type]
    return client


@pytest.mark.django_db
class TestUnlockPage:
    def test_an_admin_sees_the_lockout_and_unlocks_it(self, growth: AbstractUser, admin_client: Client) -> None:
        _lock_out()
        _lock_out(username="someone-else", address="192.0.2.9")

        page = admin_client.get(reverse("sign-in-lockouts"))
        rows = page.content.decode().split('id="sign-in-lockouts"')[1]
        assert page.status_code == 200
        assert "grace" in rows and HOME in rows and "someone-else" in rows and "Unlock" in rows

        response = admin_client.post(reverse("sign-in-lockouts"), {"username": "grace", "ip_address": HOME})

        assert response.status_code == 302
        assert list(AccessAttempt.objects.values_list("username", flat=True)) == ["someone-else"]
        assert _sign_in(Client(), "grace", PASSWORD).status_code == 302
        entry = AuditEntry.objects.get(model="axes.AccessAttempt")
        assert (entry.actor_name, entry.via, entry.action) == ("admin", "ui", AuditEntry.Action.DELETED)
        assert entry.changes == {"username": ["grace", None], "ip_address": [HOME, None], "failures": [3, None]}
        assert "grace" not in admin_client.get(reverse("sign-in-lockouts")).content.decode().split("<tbody>")[1]

    def test_failures_below_the_limit_are_not_listed(self, growth: AbstractUser, admin_client: Client) -> None:
        _sign_in(Client(), "grace", "wrong")
        assert "Nobody is locked out." in admin_client.get(reverse("sign-in-lockouts")).content.decode()

    def test_unlocking_what_is_no_longer_locked_changes_nothing(self, admin_client: Client) -> None:
        response = admin_client.post(reverse("sign-in-lockouts"), {"username": "nobody", "ip_address": HOME})
        assert response.status_code == 302
        assert not AuditEntry.objects.filter(model="axes.AccessAttempt").exists()

    def test_a_bad_unlock_request_is_a_form_error(self, admin_client: Client) -> None:
        response = admin_client.post(reverse("sign-in-lockouts"), {"ip_address": "not-an-address"})
        assert response.status_code == 400
        assert "Choose a locked-out sign-in to unlock." in response.content.decode()

    @pytest.mark.parametrize("role", [Role.GROWTH, Role.CS, Role.SALES_REP])
    def test_only_admins_may_see_or_unlock(self, role: Role, make_user: Callable[..., AbstractUser]) -> None:
        _lock_out(username="x")
        client = Client()
        client.force_login(make_user(role))  # type: ignore[arg-type]
        assert client.get(reverse("sign-in-lockouts")).status_code == 403
        assert client.post(reverse("sign-in-lockouts"), {"username": "x", "ip_address": HOME}).status_code == 403
        assert AccessAttempt.objects.exists()


@pytest.mark.django_db
def test_the_page_is_in_the_administration_menu(admin_client: Client) -> None:
    page = admin_client.get(reverse("home")).content.decode()
    assert f'href="{reverse("sign-in-lockouts")}"' in page
