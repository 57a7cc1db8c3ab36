"""Sign-in throttling: failed attempts are counted per username and per client address, and once a limit is
reached further attempts are refused without checking the password until the window has moved on.

Counting both keys matters: per username stops guessing one account's password, per address stops one client
spraying a common password over many usernames. The limits are settings (`SIGN_IN_*`), documented in
docs/security.md.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest
from django.utils import timezone

from config.models import SignInFailure


def username_digest(username: str) -> str:
    """A keyed digest of the case-folded username, so the table never holds what people typed."""
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, username.strip().casefold().encode(), hashlib.sha256).hexdigest()


def client_address(request: HttpRequest | None) -> str | None:
    """The address the request came from as the web server saw it (a proxy's own address is documented)."""
    if request is None:
        return None
    address = request.META.get("REMOTE_ADDR") or None
    return str(address) if address else None


def _wait_for(failures: list[datetime], limit: int, window: timedelta, now: datetime) -> float:
    """Seconds until fewer than `limit` of these (newest-first) failures are inside the window."""
    if limit <= 0 or len(failures) < limit:
        return 0.0
    return max(0.0, (failures[limit - 1] + window - now).total_seconds())


def sign_in_retry_after(*, username: str, ip_address: str | None, now: datetime | None = None) -> int:
    """Whole seconds this username or address must wait before it may try again; 0 when it may try now.

    Two indexed queries that read at most the limit's number of rows each.
    """
    now = now or timezone.now()
    window = timedelta(minutes=settings.SIGN_IN_LOCKOUT_MINUTES)
    recent = SignInFailure.objects.filter(failed_at__gt=now - window).order_by("-failed_at")
    per_username = settings.SIGN_IN_MAX_FAILURES_PER_USERNAME
    by_username = list(
        recent.filter(username_digest=username_digest(username)).values_list("failed_at", flat=True)[:per_username]
    )
    wait = _wait_for(by_username, per_username, window, now)
    if ip_address:
        per_address = settings.SIGN_IN_MAX_FAILURES_PER_ADDRESS
        by_address = list(recent.filter(ip_address=ip_address).values_list("failed_at", flat=True)[:per_address])
        wait = max(wait, _wait_for(by_address, per_address, window, now))
    return math.ceil(wait)


def sign_in_failure_record(*, username: str, ip_address: str | None, now: datetime | None = None) -> None:
    """Count one failed attempt against the username and the address."""
    SignInFailure.objects.create(
        username_digest=username_digest(username), ip_address=ip_address, failed_at=now or timezone.now()
    )


def sign_in_failures_clear(*, username: str) -> None:
    """Forget a username's failures once its owner has signed in: the typos before were theirs."""
    SignInFailure.objects.filter(username_digest=username_digest(username)).delete()


class ThrottledAuthenticationForm(AuthenticationForm):
    """The sign-in form, refusing attempts while the username or the address is locked out.

    `retry_after` is set (in seconds) when the attempt was refused for that reason, so the view can answer
    429 with a Retry-After header.
    """

    retry_after: int = 0

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        address = client_address(self.request)
        self.retry_after = sign_in_retry_after(username=username, ip_address=address)
        if self.retry_after:
            minutes = math.ceil(self.retry_after / 60)
            raise forms.ValidationError(
                "Too many failed sign-in attempts. Try again in %(minutes)d minute%(plural)s.",
                code="throttled",
                params={"minutes": minutes, "plural": "" if minutes == 1 else "s"},
            )
        try:
            cleaned = super().clean()
        except forms.ValidationError as error:
            if error.code == "invalid_login":
                sign_in_failure_record(username=username, ip_address=address)
            raise
        sign_in_failures_clear(username=username)
        return cleaned
