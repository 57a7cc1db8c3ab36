"""Proof of who asks, for the calls on a cancellation session and the hosted page.

Starting a session takes the proof every product API about a customer takes (audiences.api_auth): the source's
secret key from the product's server, or the write key with an `auth_hash` of the customer's user id from the
browser.

A start answers a **session token** (`tlst_…`, a SessionToken): every later call on the session and the hosted
page need it. It names one session — so one customer and one subscription — and expires after
CANCELLATION_SESSION_TOKEN_MINUTES (30 by default). The session's public id (`token`) proves nothing.

The moves themselves stay in offers.sessions (each final move applies once, under a row lock, whatever token or
door asks again); this module only decides who may make them.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from audiences.api_auth import ProofRefused, ProofRequired
from offers.models import CancellationSession, SessionToken
from offers.sessions import SESSION_LIFETIME

SESSION_TOKEN_PREFIX = "tlst_"
SESSION_TOKEN_BYTES = 32
EXPIRED_TOKENS_KEPT = timedelta(days=1)
"""Expired session tokens are kept this long, so a late call is answered "expired" rather than "invalid"."""


class SessionTokenExpired(ProofRequired):
    """A session token past its time; `session` is the one it opened (the hosted page still brands its answer)."""

    code = "session_token_expired"

    def __init__(self, message: str, *, session: CancellationSession) -> None:
        super().__init__(message)
        self.session = session


@dataclass(frozen=True)
class SessionGrant:
    """What a valid session token allows: acting on `session` until `expires_at`. `token` is the clear token the
    caller holds (for links back to the hosted page); it is never stored."""

    session: CancellationSession
    token: str
    expires_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_lifetime() -> timedelta:
    return timedelta(minutes=int(settings.CANCELLATION_SESSION_TOKEN_MINUTES))


def session_token_issue(
    session: CancellationSession, *, now: datetime | None = None, expires_at: datetime | None = None
) -> SessionGrant:
    """A new session token for `session`, valid until `expires_at` (default: CANCELLATION_SESSION_TOKEN_MINUTES
    from now). Only its digest is stored: the clear token is in the returned grant, to hand out once."""
    now = now or timezone.now()
    token = SESSION_TOKEN_PREFIX + secrets.token_urlsafe(SESSION_TOKEN_BYTES)
    expires_at = expires_at or now + token_lifetime()
    SessionToken.objects.create(session=session, digest=_digest(token), created_at=now, expires_at=expires_at)
    return SessionGrant(session=session, token=token, expires_at=expires_at)


def win_back_link_grant(session: CancellationSession, *, now: datetime | None = None) -> SessionGrant:
    """The session token of a win-back email's link: it reaches the customer's own inbox (that is the proof), and
    it lasts as long as the session — 24 hours from its start, as the email says — rather than 30 minutes."""
    return session_token_issue(session, now=now, expires_at=session.created_at + SESSION_LIFETIME)


def session_grant(token: str, *, now: datetime | None = None) -> SessionGrant:
    """What a session token allows → SessionGrant; ProofRequired for an unknown token, SessionTokenExpired for
    one past its time."""
    now = now or timezone.now()
    found = (
        SessionToken.objects.select_related(
            "session__flow",
            "session__reason",
            "session__offered_offer",
            "session__accepted_offer",
            "session__subscription__plan",
            "session__customer",
            "session__source",
        )
        .filter(digest=_digest(token))
        .first()
    )
    if found is None:
        raise ProofRequired("Invalid session token.", code="session_token_invalid")
    if found.expires_at <= now:
        raise SessionTokenExpired(
            f"This session token expired at {found.expires_at.isoformat()}: start the session again for a new one "
            "(an open session is resumed).",
            session=found.session,
        )
    return SessionGrant(session=found.session, token=token, expires_at=found.expires_at)


def grant_covers(grant: SessionGrant, session_id: str) -> SessionGrant:
    """The grant, for a call on the session whose public id is `session_id`: a token of another session (another
    customer's, or an older session of the same one) is refused."""
    if grant.session.token != session_id:
        raise ProofRefused("This session token is for another session.", code="session_token_other_session")
    return grant


def session_tokens_purge(*, now: datetime | None = None) -> int:
    """Delete the session tokens expired more than EXPIRED_TOKENS_KEPT ago → how many."""
    now = now or timezone.now()
    deleted, _ = SessionToken.objects.filter(expires_at__lt=now - EXPIRED_TOKENS_KEPT).delete()
    return deleted
