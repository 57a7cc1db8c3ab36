"""Sign-in lockout, by django-axes: what the sign-in page says and answers when a username is locked out.

axes counts failed sign-ins per username *and* address together (`AXES_LOCKOUT_PARAMETERS`, config/settings/
base.py), so guessing an account's password from one address locks that account out from that address only —
nobody can lock the admin out from elsewhere. While locked out the password is not checked. This module keeps
the answer the sign-in page always gave: the form says how many minutes to wait, and the response is 429 with
`Retry-After` (`lockout_response`, axes' `AXES_LOCKOUT_CALLABLE`). Admins see and lift lockouts on the staff
page Administration → Sign-in lockouts (config.selectors.sign_in_lockouts, config.services.sign_in_unlock).
"""

from __future__ import annotations

import math
from typing import Any

from axes.helpers import get_client_parameters, get_client_username, get_cool_off, get_lockout_message
from axes.models import AccessAttempt
from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from django.utils import timezone


def sign_in_retry_after(request: HttpRequest, credentials: dict[str, Any] | None = None) -> int:
    """Whole seconds until the username being tried may sign in again from this address (0: it may now).

    The lockout lasts the cool-off time from the newest failure counted against the pair (axes records the
    attempts; this reads them the way axes keys them).
    """
    username = get_client_username(request, credentials)
    address = getattr(request, "axes_ip_address", None) or request.META.get("REMOTE_ADDR")
    user_agent = getattr(request, "axes_user_agent", "")
    newest = None
    for filters in get_client_parameters(username, address, user_agent, request, credentials):
        latest = AccessAttempt.objects.filter(**filters).aggregate(latest=Max("attempt_time"))["latest"]
        if latest is not None and (newest is None or latest > newest):
            newest = latest
    cool_off = get_cool_off(request)
    if newest is None or cool_off is None:
        return 0
    wait: float = (newest + cool_off - timezone.now()).total_seconds()
    return max(0, math.ceil(wait))


class SignInForm(AuthenticationForm):
    """Django's sign-in form; when axes has locked the username out from this address, the error says how long
    to wait instead of blaming the password."""

    def clean(self) -> dict[str, Any]:
        try:
            return super().clean()
        except forms.ValidationError:
            if self.request is None or not getattr(self.request, "axes_locked_out", False):
                raise
            minutes = max(1, math.ceil(sign_in_retry_after(self.request) / 60))
            raise forms.ValidationError(
                "Too many failed sign-in attempts. Try again in %(minutes)d minute%(plural)s.",
                code="throttled",
                params={"minutes": minutes, "plural": "" if minutes == 1 else "s"},
            ) from None


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict[str, Any] | None
) -> HttpResponse:
    """axes' answer to a locked-out attempt: the page the door rendered (the sign-in page, saying how long to
    wait) as 429 with Retry-After; a door with no page of its own gets axes' message as text."""
    response = original_response if original_response is not None else HttpResponse(get_lockout_message())
    response.status_code = 429
    response["Retry-After"] = str(max(1, sign_in_retry_after(request, credentials)))
    return response
