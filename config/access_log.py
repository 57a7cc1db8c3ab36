"""gunicorn's access log without credentials (named as `logger_class` in gunicorn.conf.py).

analytics.js and Segment's libraries send the write key as the HTTP Basic user, which gunicorn's `%(u)s` atom
prints, and in query strings (`?writeKey=…`), which the request line `%(r)s` prints; hosted cancellation and
unsubscribe links carry their credential in the path, and a referer can carry any of these. This logger prints
the Basic user and every credential header (`Authorization`, `Cookie`, `Stripe-Signature`, … should an operator's
access_log_format name them) as "-", passes every other atom through `config.log_redaction.redact`, and puts the
redaction filter on gunicorn's error log too.
"""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger, SafeAtoms

from config.log_redaction import add_redaction, redact

# Header and environ atoms (`{authorization}i`, `{http_cookie}e`, …) that are credentials whole.
CREDENTIAL_ATOM = re.compile(r"authorization|cookie|signature|csrf|api[-_]?key|token|secret", re.IGNORECASE)


class RedactingAtoms(SafeAtoms):
    """gunicorn's access-log atoms, each redacted when the format reads it (only the atoms printed cost time)."""

    def __getitem__(self, key: str) -> Any:
        if key == "u" or (key.startswith("{") and CREDENTIAL_ATOM.search(key)):
            return "-"
        value = super().__getitem__(key)
        return redact(value) if isinstance(value, str) else value


class RedactingGunicornLogger(Logger):
    """gunicorn's logger with redacted access-log atoms and the redaction filter on its error and access logs."""

    atoms_wrapper_class = RedactingAtoms

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        add_redaction(self.error_log)
        add_redaction(self.access_log)
