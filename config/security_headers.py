"""Permissions-Policy on every response: the one usual security header neither Django nor django-csp sends.

Django's SecurityMiddleware sends X-Content-Type-Options, Referrer-Policy and Cross-Origin-Opener-Policy, its
clickjacking middleware X-Frame-Options, django-csp the Content-Security-Policy (settings in
config/settings/base.py). This adds `Permissions-Policy` from the PERMISSIONS_POLICY setting unless the
response already has one.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase


class PermissionsPolicyMiddleware:
    """Turns off browser features no page uses (camera, microphone, geolocation, payment, …) for every page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        self.policy: str = settings.PERMISSIONS_POLICY

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if self.policy and "Permissions-Policy" not in response:
            response["Permissions-Policy"] = self.policy
        return response
