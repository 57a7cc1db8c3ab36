"""Keep personal data and secrets out of the logs, whatever a message or an exception happens to contain.

Code logs ids, not people; but an exception's text is not ours to choose (an SMTP server refusing
`ada@example.com`, a library quoting a payload), and logs travel to places with weaker access control than the
database. This filter, on every handler the project configures (web and Celery workers), replaces email
addresses and recognisable secrets (webhook signing secrets, source secret keys, cancellation session tokens,
Stripe keys and webhook secrets) in the final message and in the exception text.
"""

from __future__ import annotations

import logging
import re

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# tlsec_: destination signing secrets; tlsk_: source secret keys; tlst_: cancellation session tokens.
SECRET = re.compile(r"\b(?:tlsec|tlsk|tlst|whsec|sk_live|sk_test|rk_live|rk_test)_[A-Za-z0-9_-]{8,}")
_EXCEPTION_FORMATTER = logging.Formatter()


def redact(text: str) -> str:
    """The text with email addresses and secrets replaced by placeholders."""
    return SECRET.sub("[secret]", EMAIL.sub("[email]", text))


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
