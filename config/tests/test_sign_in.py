"""Sign-in throttling: per-username and per-address lockouts, the 429 answer, reset on success, no stored names."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from config.models import SignInFailure
from config.roles import Role
from config.sign_in import sign_in_failure_record, sign_in_retry_after

PASSWORD = "a-long-enough-password-1"


def _sign_in(client: Client, username: str, password: str, address: str = "10.0.0.1") -> int:
    response = client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)
    return response.status_code


@pytest.fixture
def growth(make_user: Callable[..., AbstractUser]) -> AbstractUser:
    user = make_user(Role.GROWTH, "grace")
    user.set_password(PASSWORD)
    user.save()
    return user


@pytest.fixture(autouse=True)
def small_limits(settings: Any) -> None:
    settings.SIGN_IN_MAX_FAILURES_PER_USERNAME = 3
    settings.SIGN_IN_MAX_FAILURES_PER_ADDRESS = 5
    settings.SIGN_IN_LOCKOUT_MINUTES = 15


@pytest.mark.django_db
class TestSignInThrottle:
    def test_the_right_password_is_refused_once_a_username_is_locked_out(self, growth: AbstractUser) -> None:
        client = Client()
        assert [_sign_in(client, "grace", "wrong") for _ in range(3)] == [200, 200, 200]

        response = client.post(reverse("login"), {"username": "GRACE", "password": PASSWORD}, REMOTE_ADDR="10.0.0.9")

        assert response.status_code == 429
        assert 14 * 60 < int(response["Retry-After"]) <= 15 * 60
        assert "Too many failed sign-in attempts. Try again in 15 minutes." in response.content.decode()
        assert "_auth_user_id" not in client.session

    def test_the_lockout_ends_when_the_failures_leave_the_window(self, growth: AbstractUser) -> None:
        client = Client()
        for _ in range(3):
            _sign_in(client, "grace", "wrong")
        SignInFailure.objects.update(failed_at=timezone.now() - timedelta(minutes=16))

        assert _sign_in(client, "grace", PASSWORD) == 302
        assert client.session["_auth_user_id"] == str(growth.pk)

    def test_signing_in_clears_the_usernames_failures(self, growth: AbstractUser) -> None:
        client = Client()
        for _ in range(2):
            _sign_in(client, "grace", "wrong")
        assert _sign_in(client, "grace", PASSWORD) == 302
        assert not SignInFailure.objects.exists()

    def test_one_address_spraying_many_usernames_is_locked_out(self, growth: AbstractUser) -> None:
        client = Client()
        for number in range(5):
            assert _sign_in(client, f"someone{number}", "wrong", address="192.0.2.7") == 200

        assert _sign_in(client, "grace", PASSWORD, address="192.0.2.7") == 429
        # The account itself is not locked: its owner signs in from elsewhere.
        assert _sign_in(Client(), "grace", PASSWORD, address="198.51.100.1") == 302

    def test_a_locked_out_attempt_is_not_counted_again(self, growth: AbstractUser) -> None:
        client = Client()
        for _ in range(6):
            _sign_in(client, "grace", "wrong")
        assert SignInFailure.objects.count() == 3

    def test_usernames_are_stored_only_as_digests(self, growth: AbstractUser) -> None:
        _sign_in(Client(), "grace", "wrong")
        failure = SignInFailure.objects.get()
        assert "grace" not in failure.username_digest
        assert len(failure.username_digest) == 64
        assert failure.ip_address == "10.0.0.1"

    def test_retry_after_counts_from_the_oldest_failure_still_counted(self) -> None:
        now = timezone.now()
        for minutes_ago in (20, 10, 5, 1):
            sign_in_failure_record(username="x", ip_address=None, now=now - timedelta(minutes=minutes_ago))

        assert sign_in_retry_after(username="X ", ip_address=None, now=now) == 5 * 60
        assert sign_in_retry_after(username="y", ip_address=None, now=now) == 0
