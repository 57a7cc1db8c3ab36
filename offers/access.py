"""Proof of who asks, for the cancellation session API and the hosted page.

A source's write key is in every customer's browser, so it only names the source. Starting a session needs
proof that the product asked for this customer:

- from the product's **server**: `Authorization: Bearer <secret key>` (`tlsk_…`) — any customer;
- from the customer's **browser**: the write key, the customer's `user_id` and `auth_hash` = hex
  HMAC-SHA256(secret key, user_id), which the product's server computed (the browser never sees the secret key).
  A hash proves that one user id, so it starts sessions for that customer only.

A start answers a **session token** (`tlst_…`, a SessionToken): every later call on the session and the hosted
page need it. It names one session — so one customer and one subscription — and expires after
CANCELLATION_SESSION_TOKEN_MINUTES (30 by default). The session's public id (`token`) proves nothing.

The moves themselves stay in offers.services (each final move applies once, under a row lock, whatever token or
door asks again); this module only decides who may make them.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from audiences.models import Source
from audiences.selectors import auth_hash_matches
from offers.models import CancellationSession, SessionToken
from offers.services import SESSION_LIFETIME, SessionError

SESSION_TOKEN_PREFIX = "tlst_"
SESSION_TOKEN_BYTES = 32
EXPIRED_TOKENS_KEPT = timedelta(days=1)
"""Expired session tokens are kept this long, so a late call is answered "expired" rather than "invalid"."""


class ProofRequired(SessionError):
    """No proof of who asks, not the proof this call takes, or a key or token that is not known: 401, and the
    message says what to send."""

    status, code = 401, "proof_missing"


class ProofRefused(SessionError):
    """Proof that does not cover this call: an auth_hash that does not match the user id, a session token of
    another session: 403."""

    status, code = 403, "proof_refused"


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


def browser_start_check(*, source: Source, user_id: str | None, auth_hash: str, now: datetime | None = None) -> None:
    """A start authenticated by a write key alone: require the customer's user_id and an auth_hash that the
    source's secret key signed for it (ProofRequired / ProofRefused otherwise)."""
    if not auth_hash:
        raise ProofRequired(
            "A write key alone cannot start a session: send user_id with auth_hash = hex HMAC-SHA256(the source's "
            "secret key, user_id), computed on your server, or start the session from your server with "
            "Authorization: Bearer <secret key>.",
            code="auth_hash_missing",
        )
    if not user_id:
        raise ProofRequired(
            "auth_hash proves a user_id: send the user_id it was computed for.", code="auth_hash_needs_user_id"
        )
    if not auth_hash_matches(source.pk, user_id, auth_hash, now=now):
        raise ProofRefused(
            "auth_hash does not match user_id: compute hex HMAC-SHA256(the source's secret key, user_id) on your "
            "server (after a rotation, with the new key).",
            code="auth_hash_invalid",
        )


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
