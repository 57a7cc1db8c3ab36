"""Proof of who asks, for the APIs a product calls about one of its customers: the cancellation session API
(offers.api) and the in-app prompt API (trials.in_app_api). It lives here, with the sources and their keys, so
both can share it without one importing the other.

A source's write key is in every customer's browser (analytics.js), so it only names the source. A call about a
customer needs proof that the product asked for that customer:

- from the product's **server**: `Authorization: Bearer <secret key>` (`tlsk_…`) — any customer;
- from the customer's **browser**: the write key (HTTP Basic user name, empty password) and `auth_hash` = hex
  HMAC-SHA256(secret key, user_id), which the product's server computed (the browser never sees the secret key).
  A hash proves that one user id, so it covers calls about that customer only.

A missing or unknown proof is a ProofRequired (401, the message says what to send), a proof that does not cover
the call a ProofRefused (403). ProductAPIView answers both as `{"error", "code"}` and answers CORS for any
origin: the proof is in a header or the body, never in a cookie, so a page without it can do nothing.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import status
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.models import Source
from audiences.selectors import auth_hash_matches, source_for_secret_key, source_for_write_key
from audiences.services import SECRET_KEY_PREFIX

REALM = 'realm="trialloop"'
AUTH_HASH_HEADER = "Trialloop-Auth-Hash"
"""The header that may carry an auth_hash instead of a query parameter or body field."""

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": f"Authorization, Content-Type, {AUTH_HASH_HEADER}",
    "Access-Control-Max-Age": "86400",
}
"""The product's pages call these APIs from the customer's browser. Any origin may: the proof is in the headers
or the body the page sends, never in a cookie (no Access-Control-Allow-Credentials)."""


class ProofError(Exception):
    """A caller without the proof a call takes; `status` and `code` are what the API answers, the message says
    what to send."""

    status = 401
    code = "proof_missing"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class ProofRequired(ProofError):
    """No proof of who asks, not the proof this call takes, or a key or token that is not known: 401."""


class ProofRefused(ProofError):
    """Proof that does not cover this call (an auth_hash that does not match the user id): 403."""

    status, code = 403, "proof_refused"


@dataclass(frozen=True)
class ServerCaller:
    """A call authenticated with a source's secret key: the product's server, which may name any customer."""

    source: Source


def basic_user(authorization: str) -> str | None:
    """The user name of `Authorization: Basic …` credentials (a write key; the password is empty), or None when
    the header is not Basic or names no user. ValueError when the credentials are not base64 of UTF-8."""
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "basic" or not credentials.strip():
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as error:
        raise ValueError("The Authorization header is not valid Basic credentials.") from error
    user, _, _ = decoded.partition(":")
    return user or None


def bearer(authorization: str) -> str | None:
    """The credential of `Authorization: Bearer …`, or None for another scheme."""
    scheme, _, credentials = authorization.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def customer_proof_check(
    *, source: Source, user_id: str | None, auth_hash: str, action: str, send: str, now: datetime | None = None
) -> None:
    """A call about a customer authenticated by a write key alone: require the customer's user_id and an
    auth_hash that one of the source's valid secret keys signed for it (compared in constant time), else
    ProofRequired / ProofRefused. `action` says what the call does and `send` where the hash goes, for the
    messages ("start a session", "user_id with auth_hash")."""
    if not auth_hash:
        raise ProofRequired(
            f"A write key alone cannot {action}: send {send} = hex HMAC-SHA256(the source's secret key, user_id), "
            "computed on your server, or call from your server with Authorization: Bearer <secret key>.",
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


class WriteKeyAuthentication(BaseAuthentication):
    """HTTP Basic with a source's write key as the user name (empty password) — what the tracking API takes.

    The authenticated "user" is anonymous; `request.auth` is the Source. The key only names the source: a call
    about a customer also needs the customer's auth_hash (customer_proof_check).
    """

    def authenticate(self, request: Request) -> tuple[Any, Source] | None:
        authorization = request.headers.get("Authorization", "")
        if not authorization.lower().startswith("basic "):
            return None
        try:
            key = basic_user(authorization)
        except ValueError as error:
            raise ProofRequired(str(error), code="write_key_invalid") from error
        if key is None:
            raise ProofRequired("No write key: send it as the HTTP Basic user name.", code="write_key_missing")
        source = source_for_write_key(key)
        if source is None:
            raise ProofRequired("Invalid write key.", code="write_key_invalid")
        return AnonymousUser(), source

    def authenticate_header(self, request: Request) -> str:
        return f"Basic {REALM}"


class SecretKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer <secret key>`: the product's server; `request.auth` is a ServerCaller."""

    def authenticate(self, request: Request) -> tuple[Any, ServerCaller] | None:
        key = bearer(request.headers.get("Authorization", ""))
        if key is None:
            return None
        if not key.startswith(SECRET_KEY_PREFIX):
            raise ProofRequired(
                f"Bearer on this endpoint takes a source's secret key ({SECRET_KEY_PREFIX}…); a session token acts "
                "on its own cancellation session only.",
                code="secret_key_invalid",
            )
        source = source_for_secret_key(key)
        if source is None:
            raise ProofRequired("Invalid secret key.", code="secret_key_invalid")
        return AnonymousUser(), ServerCaller(source)

    def authenticate_header(self, request: Request) -> str:
        return f"Bearer {REALM}"


class WriteKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """Names the write-key authentication in the OpenAPI schema (HTTP Basic, the key as user name)."""

    target_class = "audiences.api_auth.WriteKeyAuthentication"
    name = "writeKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "basic",
            "description": "A source's write key as the user name. It only names the source: a call about a "
            "customer from the browser also needs auth_hash, the hex HMAC-SHA256 of the customer's user_id under "
            "the source's secret key, computed by your server (in the body of a session start; the auth_hash "
            f"query parameter or body field, or the {AUTH_HASH_HEADER} header, for in-app prompts).",
        }


class SecretKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """Names the secret-key authentication of server calls in the OpenAPI schema."""

    target_class = "audiences.api_auth.SecretKeyAuthentication"
    name = "secretKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": f"A source's secret key ({SECRET_KEY_PREFIX}…), from your server only: starts a "
            "cancellation session, or reads and reports in-app prompts, for any customer.",
        }


class HasCustomerProof(BasePermission):
    """A write key (with the auth_hash the view checks) or a secret key."""

    message = (
        "Send proof of who asks: from your server, Authorization: Bearer <the source's secret key>; from the "
        "browser, the source's write key as the HTTP Basic user name with user_id and auth_hash (hex "
        "HMAC-SHA256 of user_id under the secret key, computed on your server)."
    )
    code = "proof_missing"

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, Source | ServerCaller)


class ProductAPIView(APIView):
    """An endpoint the product calls about a customer: a secret key or a write key (whose auth_hash the view
    checks with customer_proof_check), every refusal a JSON `{"error", "code"}` (401 with WWW-Authenticate), and
    CORS for the product's pages."""

    authentication_classes = [SecretKeyAuthentication, WriteKeyAuthentication]
    permission_classes = [HasCustomerProof]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, ProofError):
            response = Response({"error": exc.message, "code": exc.code}, status=exc.status)
            if response.status_code == status.HTTP_401_UNAUTHORIZED:
                response["WWW-Authenticate"] = self.get_authenticate_header(self.request) or f"Bearer {REALM}"
            return response
        return super().handle_exception(exc)

    def options(self, request: Request, *args: Any, **kwargs: Any) -> Response:  # type: ignore[override]
        """A CORS preflight: it carries no credentials, so it is answered without checking any."""
        return Response(status=status.HTTP_204_NO_CONTENT)

    def check_permissions(self, request: Request) -> None:
        if request.method != "OPTIONS":
            super().check_permissions(request)

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        for header, value in CORS_HEADERS.items():
            response[header] = value
        return response

    def permission_denied(self, request: Request, message: str | None = None, code: str | None = None) -> NoReturn:
        """No proof the view takes: a 401 that says what to send (the permission's message and code)."""
        raise ProofRequired(message or HasCustomerProof.message, code=code)
