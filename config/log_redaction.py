"""Keep personal data and secrets out of the logs, whatever a message, an exception or a request line contains.

Code logs ids, not people; but an exception's text is not ours to choose (an SMTP server refusing
`ada@example.com`, a library quoting a payload), and logs travel to places with weaker access control than the
database. `RedactingFilter`, on every handler the project configures (web and Celery workers, and gunicorn's own
logs through config.access_log), rewrites the final message and the exception text through `redact`.

`redact` replaces email addresses, recognisable secrets (Trialloop write keys `tlwk_…`, source secret keys
`tlsk_…`, cancellation session tokens `tlst_…`, destination signing secrets `whsec_…` and older `tlsec_…`,
Stripe keys and webhook secrets), the values of credential-named query and body parameters (`writeKey=…`,
`"token": "…"`), `Authorization` values, Stripe signatures and the credential segment of the paths that carry
one (hosted cancellation links, unsubscribe links, cancellation session tokens). Write keys made before the
`tlwk_` prefix existed are random text: they are caught by where they appear (Basic user, `writeKey`
parameter), never printed by the code itself.
"""

from __future__ import annotations

import logging
import re

SECRET_PLACEHOLDER = "[secret]"
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
SECRET = re.compile(
    r"\b(?:(?:tlwk|tlsk|tlst|tlsec|sk_live|sk_test|rk_live|rk_test)_[A-Za-z0-9_-]{8,}"
    # Standard Webhooks secrets (Stripe's and ours) are standard base64: `+`, `/` and `=` belong to them.
    r"|whsec_[A-Za-z0-9_+/=-]{8,})"
)
# Names of parameters whose value is a credential: one of these words, alone, after a `_`/`-` separated prefix
# (`session_token`, `user-hash`) or capitalised after a camelCase prefix (`writeKey`, `authHash`).
_WORDS = "key|token|secret|password|passwd|signature|sig|hash|hmac|auth|authorization|apikey|writekey"
CREDENTIAL_NAME = (
    rf"(?<![A-Za-z0-9_-])(?:(?:[A-Za-z0-9]+[_-])*(?i:{_WORDS})"
    r"|[a-z][a-z0-9]*(?:Key|Token|Secret|Password|Signature|Hash|Hmac))"
)
# `writeKey=abc` in a query string or a form body.
CREDENTIAL_PARAMETER = re.compile(rf"({CREDENTIAL_NAME}=)[^&;\s\"'#]+")
# `"writeKey": "abc"` or `'Stripe-Signature': 'abc'` in JSON or a Python dict's repr.
CREDENTIAL_FIELD = re.compile(rf"([\"']{CREDENTIAL_NAME}[\"']\s*:\s*)([\"'])[^\"']*\2")
# An Authorization value: `Basic dXNlcjo=`, `Bearer …`, `Token …`.
AUTHORIZATION = re.compile(r"(?i)\b(Basic|Bearer|Token)\s+[A-Za-z0-9._~+/=-]{16,}")
# A Stripe-Signature header value: `t=1700000000,v1=5257a8…,v0=…`.
STRIPE_SIGNATURE = re.compile(r"(?i)\b(v[01]=)[0-9a-f]{16,}")
# Paths whose last part is a credential: the hosted cancellation link, an unsubscribe link, a session token.
CREDENTIAL_PATH = re.compile(r"(/cancel/|/emails/unsubscribe/|/api/v1/cancellation-sessions/)(?!\?)([^/?#\s\"']+)")
_EXCEPTION_FORMATTER = logging.Formatter()


def redact(text: str) -> str:
    """The text with email addresses, secrets and credentials replaced by placeholders."""
    text = EMAIL.sub("[email]", text)
    text = SECRET.sub(SECRET_PLACEHOLDER, text)
    text = CREDENTIAL_FIELD.sub(rf"\1\2{SECRET_PLACEHOLDER}\2", text)
    text = CREDENTIAL_PARAMETER.sub(rf"\1{SECRET_PLACEHOLDER}", text)
    text = AUTHORIZATION.sub(rf"\1 {SECRET_PLACEHOLDER}", text)
    text = STRIPE_SIGNATURE.sub(rf"\1{SECRET_PLACEHOLDER}", text)
    return CREDENTIAL_PATH.sub(rf"\1{SECRET_PLACEHOLDER}", text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message and exception text through `redact` before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format/args pair: leave it to the handler, which reports it instead of raising
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _EXCEPTION_FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def add_redaction(logger: logging.Logger) -> None:
    """Put the filter on every handler of this logger (Celery's own handlers are made after Django's config)."""
    for handler in logger.handlers:
        if not any(isinstance(existing, RedactingFilter) for existing in handler.filters):
            handler.addFilter(RedactingFilter())
