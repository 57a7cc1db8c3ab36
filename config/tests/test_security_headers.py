"""Security headers on every response: a Content-Security-Policy that allows scripts only from this server or
with the response's nonce and nothing from other hosts, no framing, and the usual headers beside it; a view can
still replace `frame-ancestors` for itself; no template relies on what the policy blocks."""

from __future__ import annotations

import re
from typing import Any

import pytest
from csp.decorators import csp_replace
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from django.views.decorators.clickjacking import xframe_options_exempt

from conftest import ROOT


@xframe_options_exempt
@csp_replace({"frame-ancestors": ["https://shop.example"]})
def _embeddable(request: HttpRequest) -> HttpResponse:
    return HttpResponse("an embeddable page")


urlpatterns = [path("embeddable/", _embeddable)]


def _policy(response: Any) -> dict[str, list[str]]:
    directives = [part.split() for part in response["Content-Security-Policy"].split(";") if part.strip()]
    return {name: values for name, *values in directives}


def _requests(client: Client) -> list[Any]:
    """One response of each kind: a page, the app's 404, a static file, the REST API, the tracking API, the
    Stripe webhook and a redirect."""
    return [
        client.get("/login/"),
        client.get("/no-such-page/"),
        client.get("/static/css/trialloop.css"),
        client.get("/api/v1/customers/"),
        client.post("/v1/batch", "{}", content_type="application/json"),
        client.post("/webhooks/stripe/", "{}", content_type="application/json"),
        client.get("/customers/"),
    ]


@pytest.mark.django_db
def test_every_response_carries_the_policy_and_the_usual_headers(client: Client) -> None:
    for response in _requests(client):
        where = f"{response.request['PATH_INFO']} ({response.status_code})"
        policy = _policy(response)
        assert policy["default-src"] == ["'self'"], where
        assert policy["script-src"][0] == "'self'", where
        assert all(value.startswith("'nonce-") for value in policy["script-src"][1:]), where
        assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"], where
        assert policy["frame-ancestors"] == ["'none'"] and policy["form-action"] == ["'self'"], where
        hosts = [value for values in policy.values() for value in values if "://" in value or "." in value]
        assert hosts == [], f"{where}: no other host may serve anything: {hosts}"
        assert response["X-Content-Type-Options"] == "nosniff", where
        assert response["Referrer-Policy"] == "same-origin", where
        assert response["Cross-Origin-Opener-Policy"] == "same-origin", where
        assert response["X-Frame-Options"] == "DENY", where
        assert "camera=()" in response["Permissions-Policy"] and "microphone=()" in response["Permissions-Policy"]


@pytest.mark.urls(__name__)
def test_a_view_can_replace_frame_ancestors_for_itself(client: Client) -> None:
    policy = _policy(client.get("/embeddable/"))
    assert policy["frame-ancestors"] == ["https://shop.example"]
    assert policy["script-src"] == ["'self'"] and policy["object-src"] == ["'none'"], "the rest of the policy stays"


TEMPLATES = sorted([*(ROOT / "templates").rglob("*.html"), *ROOT.glob("*/templates/**/*.html")])
INLINE_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)


@pytest.mark.parametrize("template", TEMPLATES, ids=[str(t.relative_to(ROOT)) for t in TEMPLATES])
def test_no_template_relies_on_what_the_policy_blocks(template: Any) -> None:
    text = template.read_text()
    assert not INLINE_HANDLER.search(text), "inline on…= handlers are blocked: use data-confirm or a static script"
    assert "javascript:" not in text.lower(), "javascript: URLs are blocked"
    for attributes in SCRIPT_TAG.findall(text):
        allowed = "src=" in attributes or 'nonce="{{ CSP_NONCE }}"' in attributes or "application/json" in attributes
        assert allowed, f'an inline <script> needs nonce="{{{{ CSP_NONCE }}}}": <script{attributes}>'
