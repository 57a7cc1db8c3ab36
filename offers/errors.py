"""Errors of a cancellation session's moves, which the session API and the hosted page turn into answers."""

from __future__ import annotations


class SessionError(Exception):
    """A move that cannot be made; `status` and `code` are what the API answers."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class SessionNotFound(SessionError):
    status, code = 404, "not_found"


class WrongState(SessionError):
    """The move does not fit where the session is (e.g. accepting when no offer was presented)."""

    status, code = 409, "wrong_state"


class StripeUnavailable(SessionError):
    """No Stripe API key is configured, so a live session cannot apply anything."""

    status, code = 503, "stripe_not_configured"


class StripeStepFailed(SessionError):
    """Stripe refused or failed a request; the step is recorded as failed and may be retried."""

    status, code = 502, "stripe_error"

    def __init__(self, message: str, *, stripe_status: int | None, stripe_code: str | None, retry_same_key: bool):
        super().__init__(message)
        self.stripe_status, self.stripe_code, self.retry_same_key = stripe_status, stripe_code, retry_same_key
