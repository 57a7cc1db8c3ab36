"""The hosted cancellation page: a plain, brandable page Trialloop serves for products without their own UI.

The product sends its customer to `hosted_url` (in the session API's answers): `/cancel/<session token>/`. The
link carries the session token the start handed out (offers.access), so it is the customer's proof: it opens
that one session, expires with the token (30 minutes by default; a win-back email's link lasts as long as its
session), and cannot be guessed or made for another session. The page needs no sign-in, and no CSRF cookie:
there is no ambient credential to ride on — the unguessable link is the credential — and a CSRF cookie would
not reach a page framed by the product's site. The page drives the same services as the API: reason (and
feedback) → offer → accept or decline → confirm; a Stripe error is shown on the page and the customer can simply
try again (the step is retried with the same request).

Framing: the page may be embedded only by the origins its session's source lists
(`Source.cancel_page_frame_ancestors`): its Content-Security-Policy `frame-ancestors` names them (or `'none'`),
set through django-csp's per-response `csp_replace` when its middleware runs, and directly otherwise; when the
list is not empty the page is also exempt from X-Frame-Options (which cannot name origins).

The page is written in English, German, French and Spanish (Django i18n: `offers/locale/<lang>/LC_MESSAGES`).
Its language is `?lang=` when the link carries one, else the flow's language, else the first of the browser's
Accept-Language languages the page is written in, else English. What staff write — reasons, the feedback
prompt, offer headlines, the confirmation message — is shown as written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from csp.constants import NONE
from csp.decorators import csp_replace
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.cache import patch_vary_headers
from django.utils.decorators import method_decorator
from django.utils.translation.trans_real import parse_accept_lang_header
from django.views import View
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt

from audiences.api_auth import ProofRequired
from offers import access, errors, outcomes, sessions
from offers.models import HOSTED_LANGUAGES, CancellationFlow, CancellationSession
from offers.selectors import session_payload

CSP_MIDDLEWARE = "csp.middleware.CSPMiddleware"
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


def hosted_path(session_token: str) -> str:
    """The page's path for a session: /cancel/<session token>/."""
    return reverse("offers-hosted", args=[session_token])


def frame_ancestors_policy(
    request: HttpRequest, response: HttpResponseBase, origins: Sequence[str]
) -> HttpResponseBase:
    """Let `origins` (checked when saved, see audiences.services.frame_ancestors_clean) frame this response, or
    nobody when empty: CSP `frame-ancestors`, through django-csp's `csp_replace` when its middleware builds the
    header (the rest of the site's policy stays), written directly when it does not run."""
    directive = list(origins) or [NONE]
    if CSP_MIDDLEWARE in settings.MIDDLEWARE:
        response = csp_replace({"frame-ancestors": directive})(lambda _request: response)(request)
    else:
        response["Content-Security-Policy"] = "frame-ancestors " + " ".join(directive)
    if origins:  # X-Frame-Options cannot name origins; frame-ancestors does
        response = xframe_options_exempt(lambda _request: response)(request)
    return response


@method_decorator(csrf_exempt, name="dispatch")
class HostedCancelView(View):
    """GET shows where the session is; POST makes one move (`action`), then redirects back (or shows the error).
    The session token in the path is the proof (see the module's docstring)."""

    frame_ancestors: Sequence[str] = ()

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = super().dispatch(request, *args, **kwargs)
        return frame_ancestors_policy(request, response, self.frame_ancestors)

    def _grant(self, request: HttpRequest, token: str) -> access.SessionGrant | HttpResponse:
        """The token's grant, or the page that says the link expired; an unknown token is a 404."""
        try:
            grant = access.session_grant(token)
        except access.SessionTokenExpired as expired:
            self._frame_for(expired.session)
            return self._render(request, expired.session, link_expired=True, status=403)
        except ProofRequired as unknown:
            raise Http404("This cancellation link is not valid.") from unknown
        self._frame_for(grant.session)
        return grant

    def _frame_for(self, session: CancellationSession) -> None:
        self.frame_ancestors = session.source.cancel_page_frame_ancestors if session.source else ()

    def get(self, request: HttpRequest, token: str) -> HttpResponse:
        grant = self._grant(request, token)
        if isinstance(grant, HttpResponse):
            return grant
        return self._render(request, grant.session)

    def post(self, request: HttpRequest, token: str) -> HttpResponse:
        grant = self._grant(request, token)
        if isinstance(grant, HttpResponse):
            return grant
        session = grant.session
        action = request.POST.get("action", "")
        try:
            if action == "reason":
                raw_reason = request.POST.get("reason_id") or ""
                sessions.session_answer_reason(
                    session=session,
                    reason_id=int(raw_reason) if raw_reason.isdigit() else None,
                    feedback=request.POST.get("feedback", ""),
                )
            elif action == "accept":
                outcomes.session_accept(session=session)
            elif action == "decline":
                sessions.session_decline(session=session)
            elif action == "confirm":
                outcomes.session_confirm_cancel(session=session)
            else:
                raise errors.SessionError("Unknown action.")
        except errors.SessionError as error:
            return self._render(request, sessions.session_get(session.token), error=error.message, status=error.status)
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
