"""The hosted cancellation page: a plain, brandable page Trialloop serves for products without their own UI.

The product sends its customer to `hosted_url` (in every session answer of the API). The link carries the
session token signed with the installation's SECRET_KEY, so it cannot be guessed from, or forged for, another
session; it needs no sign-in (the customer is not a staff user). The page drives the same services as the API:
reason (and feedback) → offer → accept or decline → confirm; a Stripe error is shown on the page and the
customer can simply try again (the step is retried with the same request).
"""

from __future__ import annotations

from typing import Any

from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views import View

from offers import services
from offers.models import CancellationSession
from offers.selectors import session_payload

SALT = "offers.hosted-page"


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
        return HttpResponseRedirect(request.path)

    def _render(self, request: HttpRequest, session: CancellationSession, **extra: Any) -> HttpResponse:
        status = extra.pop("status", 200)
        context = {"session": session, "state": session_payload(session), "flow": session.flow, **extra}
        return render(request, "offers/hosted.html", context, status=status)
