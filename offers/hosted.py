"""The hosted cancellation page: a plain, brandable page Trialloop serves for products without their own UI.

The product sends its customer to `hosted_url` (in every session answer of the API). The link carries the
session token signed with the installation's SECRET_KEY, so it cannot be guessed from, or forged for, another
session; it needs no sign-in (the customer is not a staff user). The page drives the same services as the API:
reason (and feedback) → offer → accept or decline → confirm; a Stripe error is shown on the page and the
customer can simply try again (the step is retried with the same request).

The page is written in English, German, French and Spanish (Django i18n: `offers/locale/<lang>/LC_MESSAGES`).
Its language is `?lang=` when the link carries one, else the flow's language, else the first of the browser's
Accept-Language languages the page is written in, else English. What staff write — reasons, the feedback
prompt, offer headlines, the confirmation message — is shown as written.
"""

from __future__ import annotations

from typing import Any

from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.cache import patch_vary_headers
from django.utils.translation.trans_real import parse_accept_lang_header
from django.views import View

from offers import services
from offers.models import HOSTED_LANGUAGES, CancellationFlow, CancellationSession
from offers.selectors import session_payload

SALT = "offers.hosted-page"
LANGUAGES = tuple(code for code, _ in HOSTED_LANGUAGES)


def hosted_language(*, requested: str | None, flow: CancellationFlow, accept_language: str = "") -> str:
    """The page's language: `?lang=`, else the flow's, else the browser's first one the page is written in,
    else English."""
    if requested and requested.lower() in LANGUAGES:
        return requested.lower()
    if flow.language in LANGUAGES:
        return flow.language
    for code, _quality in parse_accept_lang_header(accept_language):
        base = code.split("-")[0].lower()
        if base in LANGUAGES:
            return base
    return "en"


def hosted_path(session: CancellationSession) -> str:
    """The page's path for a session: /cancel/<token signed with SECRET_KEY>/."""
    return reverse("offers-hosted", args=[signing.Signer(salt=SALT).sign(session.token)])


def _session_for(signed: str) -> CancellationSession:
    try:
        token = signing.Signer(salt=SALT).unsign(signed)
    except signing.BadSignature as bad:
        raise Http404("This cancellation link is not valid.") from bad
    try:
        return services.session_get(token)
    except services.SessionNotFound as missing:
        raise Http404("This cancellation link is not valid.") from missing


class HostedCancelView(View):
    """GET shows where the session is; POST makes one move (`action`), then redirects back (or shows the error)."""

    def get(self, request: HttpRequest, signed: str) -> HttpResponse:
        return self._render(request, _session_for(signed))

    def post(self, request: HttpRequest, signed: str) -> HttpResponse:
        session = _session_for(signed)
        action = request.POST.get("action", "")
        try:
            if action == "reason":
                raw_reason = request.POST.get("reason_id") or ""
                services.session_answer_reason(
                    session=session,
                    reason_id=int(raw_reason) if raw_reason.isdigit() else None,
                    feedback=request.POST.get("feedback", ""),
                )
            elif action == "accept":
                services.session_accept(session=session)
            elif action == "decline":
                services.session_decline(session=session)
            elif action == "confirm":
                services.session_confirm_cancel(session=session)
            else:
                raise services.SessionError("Unknown action.")
        except services.SessionError as error:
            return self._render(request, services.session_get(session.token), error=error.message, status=error.status)
        return HttpResponseRedirect(request.get_full_path())

    def _render(self, request: HttpRequest, session: CancellationSession, **extra: Any) -> HttpResponse:
        status = extra.pop("status", 200)
        language = hosted_language(
            requested=request.GET.get("lang"),
            flow=session.flow,
            accept_language=request.headers.get("Accept-Language", ""),
        )
        with translation.override(language):
            state = session_payload(session)  # inside: the offer's summary is written in the page's language
            context = {"session": session, "state": state, "flow": session.flow, "language": language, **extra}
            response = render(request, "offers/hosted.html", context, status=status)
        response.headers["Content-Language"] = language
        patch_vary_headers(response, ["Accept-Language"])
        return response
