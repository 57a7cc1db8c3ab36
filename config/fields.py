"""Secrets that must be used in clear (to sign webhooks, to authenticate to another service) but should not sit
in clear in the database: they are encrypted with Fernet (AES-128-CBC + HMAC-SHA256) before they are written.

A database dump, a replica or a backup then holds only ciphertext; reading the secrets also needs the key, which
lives in the environment. The key is derived from `SECRET_KEY`; keys listed in `SECRET_KEY_FALLBACKS` still
decrypt, so a key rotation loses nothing (a value moves to the new key when it is next saved, e.g. at the next
secret rotation). The Python value is always the clear text: code that signs or sends is unchanged.
"""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.models.expressions import Combinable

_PURPOSE = b"trialloop.fields.EncryptedTextField"


def _fernet_for(secret_key: str) -> Fernet:
    digest = hashlib.sha256(_PURPOSE + b":" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def field_cipher() -> MultiFernet:
    """The current key first (it encrypts), then the fallbacks (they only decrypt)."""
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet_for(key) for key in keys])


def encrypt(value: str) -> str:
    return field_cipher().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    """The clear text of a stored value; a value no known key opens is a configuration error, said so."""
    try:
        return field_cipher().decrypt(token.encode()).decode()
    except InvalidToken as wrong_key:
        raise ImproperlyConfigured(
            "An encrypted secret could not be decrypted: SECRET_KEY changed without the old key in "
            "SECRET_KEY_FALLBACKS."
        ) from wrong_key


if TYPE_CHECKING:
    _TextField = models.TextField[str | Combinable, str]
else:  # Django's fields are not subscriptable at run time
    _TextField = models.TextField


class EncryptedTextField(_TextField):
    """A text column holding a Fernet token; Python sees the clear text. Empty stays empty (nothing to hide).

    Not usable in lookups (every encryption of one value differs), which secrets never need.
    """

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value in (None, ""):
            return value
        return decrypt(str(value))

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return encrypt(str(value))
