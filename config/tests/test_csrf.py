"""CSRF on every form: each POST form in the templates carries the token, and the only views exempt from the
check are the documented ones that authenticate their caller otherwise (docs/security.md)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.views import APIView

from conftest import ROOT

# The one-click unsubscribe page posts per RFC 8058 and is authenticated by its signed link; the hosted
# cancellation page by the session token in its link (no cookie: it may be framed by the product's site).
EXEMPT_FORMS = {"trials/unsubscribe.html", "offers/hosted.html"}
# Callers that are not browsers with a session: Stripe (signature), the product (write key), mail clients (link),
# the customer on the hosted cancellation page (session token in the link).
EXEMPT_VIEWS = {"stripe-webhook", "tracking-call", "email-unsubscribe", "offers-hosted"}


def test_every_post_form_carries_the_csrf_token() -> None:
    missing = []
    for template in sorted((ROOT / "templates").rglob("*.html")):
        name = str(template.relative_to(ROOT / "templates"))
        for form in re.finditer(r"<form[^>]*method=\"post\"[^>]*>(.*?)</form>", template.read_text(), re.S | re.I):
            if "csrf_token" not in form.group(1) and name not in EXEMPT_FORMS:
                missing.append(name)
    assert not missing, f"POST forms without {{% csrf_token %}}: {missing}"


def test_only_the_documented_views_are_exempt_from_csrf() -> None:
    exempt: set[str] = set()

    def walk(patterns: Sequence[URLPattern | URLResolver]) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns)
                continue
            callback = pattern.callback
            # DRF's views are exempt from Django's check by design: token auth needs none, and for session auth
            # DRF enforces CSRF itself.
            view_class = getattr(callback, "cls", None)
            drf = isinstance(view_class, type) and issubclass(view_class, APIView)
            if getattr(callback, "csrf_exempt", False) and not drf:
                exempt.add(pattern.name or repr(pattern))

    walk(get_resolver().url_patterns)
    assert exempt == EXEMPT_VIEWS
