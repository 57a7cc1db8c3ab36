"""The cancellation session API the product calls. Who may call is decided by offers.access:

    POST /api/v1/cancellation-sessions/                      start (or resume) → the session, its session_token
         from the server:  Authorization: Bearer <the source's secret key (tlsk_…)>, {"user_id"} or
                           {"subscription_id"}
         from the browser: Authorization: Basic <write key>:, {"user_id", "auth_hash"} where auth_hash is
                           hex HMAC-SHA256(secret key, user_id) computed by the product's server
         with {"kind": "win_back"}: a session for a trial that lapsed unpaid (starts at the offer)
    GET  /api/v1/cancellation-sessions/{token}/              the session as it is
    POST /api/v1/cancellation-sessions/{token}/reason/       {"reason_id", "feedback"} → the offer to present
    POST /api/v1/cancellation-sessions/{token}/accept/       apply the offer through Stripe → saved
    POST /api/v1/cancellation-sessions/{token}/decline/      → on to the confirmation
    POST /api/v1/cancellation-sessions/{token}/confirm-cancel/  cancel through Stripe → canceled
         every call on a session: Authorization: Bearer <session_token from the start (tlst_…)>

Every answer is the session's state (`session_payload`); every error is `{"error", "code"}` with a 4xx (or 502
when Stripe failed, 503 when Stripe is not configured). Repeating a move that already happened answers the
same state and applies nothing again, so a product can retry any call safely; a different final move after one
completed is refused (409).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed, ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.models import Source
from audiences.selectors import source_for_secret_key, source_for_write_key
from audiences.services import SECRET_KEY_PREFIX
from config.permissions import RoleModelPermissions
from integrations.segment import RequestRejected, write_key_from
from offers import access, services
from offers.forms import ReportFilterForm
from offers.hosted import hosted_path
from offers.models import CancellationSession
from offers.selectors import cancellation_report, report_json, session_payload

REALM = 'realm="trialloop"'
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "86400",
}
"""The product's pages call the session API from the customer's browser. Any origin may: the proof is in the
Authorization header the page sets (write key + auth_hash, or the session token), never in a cookie, so a page
without them can do nothing (no Access-Control-Allow-Credentials)."""


@dataclass(frozen=True)
class ServerCaller:
    """A start authenticated with a source's secret key: the product's server, which may name any customer."""

    source: Source


def _bearer(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


class WriteKeyAuthentication(BaseAuthentication):
    """HTTP Basic with a source's write key as the user name (empty password) — what the tracking API takes.

    The authenticated "user" is anonymous; `request.auth` is the Source. The key only names the source: a start
    also needs the customer's auth_hash (offers.access.browser_start_check).
    """

    def authenticate(self, request: Request) -> tuple[Any, Source] | None:
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            return None
        try:
            key = write_key_from(header, {})
        except RequestRejected as rejected:
            raise AuthenticationFailed(rejected.message) from rejected
        source = source_for_write_key(key)
        if source is None:
            raise AuthenticationFailed("Invalid write key.")
        return AnonymousUser(), source

    def authenticate_header(self, request: Request) -> str:
        return f"Basic {REALM}"


class SecretKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer <secret key>`: the product's server starting a session; `request.auth` is a
    ServerCaller."""

    def authenticate(self, request: Request) -> tuple[Any, ServerCaller] | None:
        key = _bearer(request)
        if key is None:
            return None
        if not key.startswith(SECRET_KEY_PREFIX):
            raise access.ProofRequired(
                f"Bearer on this endpoint takes a source's secret key ({SECRET_KEY_PREFIX}…); a session token acts "
                "on its own session.",
                code="secret_key_invalid",
            )
        source = source_for_secret_key(key)
        if source is None:
            raise access.ProofRequired("Invalid secret key.", code="secret_key_invalid")
        return AnonymousUser(), ServerCaller(source)

    def authenticate_header(self, request: Request) -> str:
        return f"Bearer {REALM}"


class SessionTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <session token>` on every call on a session; `request.auth` is the SessionGrant
    (the token's session is checked against the path in SessionAPIView)."""

    def authenticate(self, request: Request) -> tuple[Any, access.SessionGrant] | None:
        header = request.headers.get("Authorization", "")
        token = _bearer(request)
        if token is None:
            if header.lower().startswith("basic "):
                raise access.ProofRequired(
                    "A write key cannot act on a session: send the session_token the start answered, as "
                    "Authorization: Bearer <session_token>.",
                    code="session_token_missing",
                )
            return None  # nothing, or another scheme (a staff token): HasSessionToken says what to send
        if token.startswith(SECRET_KEY_PREFIX):
            raise access.ProofRequired(
                "A secret key starts sessions; act on one with the session_token the start answered, as "
                "Authorization: Bearer <session_token>.",
                code="session_token_missing",
            )
        return AnonymousUser(), access.session_grant(token)

    def authenticate_header(self, request: Request) -> str:
        return f"Bearer {REALM}"


class WriteKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """Names the write-key authentication in the OpenAPI schema (HTTP Basic, the key as user name)."""

    target_class = "offers.api.WriteKeyAuthentication"
    name = "writeKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "basic",
            "description": "A source's write key as the user name. It only names the source: starting a session "
            "from the browser also needs user_id and auth_hash (hex HMAC-SHA256 of user_id under the source's "
            "secret key, computed by your server) in the body.",
        }


class SecretKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """Names the secret-key authentication of server starts in the OpenAPI schema."""

    target_class = "offers.api.SecretKeyAuthentication"
    name = "secretKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": f"A source's secret key ({SECRET_KEY_PREFIX}…), from your server only: starts a "
            "session for any customer.",
        }


class SessionTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """Names the session-token authentication of the calls on a session in the OpenAPI schema."""

    target_class = "offers.api.SessionTokenAuthentication"
    name = "sessionToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": f"The session_token ({access.SESSION_TOKEN_PREFIX}…) the start answered: it acts on "
            "that session only and expires (session_token_expires_at).",
        }


class HasWriteKey(BasePermission):
    """Only requests authenticated with a source's write key (the in-app prompt API, trials.in_app_api)."""

    message = "Send a source's write key as the HTTP Basic user name."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, Source)


class HasStartProof(BasePermission):
    """A start needs a write key (with auth_hash, checked by the view) or a secret key."""

    message = (
        "Send proof of who asks: from your server, Authorization: Bearer <the source's secret key>; from the "
        "browser, the source's write key as the HTTP Basic user name with user_id and auth_hash (hex "
        "HMAC-SHA256 of user_id under the secret key, computed on your server)."
    )
    code = "proof_missing"

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, Source | ServerCaller)


class HasSessionToken(BasePermission):
    """A call on a session needs the session token the start answered."""

    message = "Send the session_token the start answered, as Authorization: Bearer <session_token>."
    code = "session_token_missing"

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, access.SessionGrant)


class StartSerializer(serializers.Serializer[Any]):
    user_id = serializers.CharField(required=False, allow_blank=False, max_length=255)
    subscription_id = serializers.CharField(
        required=False, allow_blank=False, max_length=255, help_text="The Stripe subscription id (sub_…)."
    )
    auth_hash = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=128,
        default="",
        help_text="With a write key (browser start): hex HMAC-SHA256 of user_id under the source's secret key, "
        "computed by your server. Not needed with the secret key (server start).",
    )
    kind = serializers.ChoiceField(
        choices=["cancellation", "win_back"],
        default="cancellation",
        help_text="win_back: a session for the customer's trial that ended unpaid in the last 30 days.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("user_id") and not attrs.get("subscription_id"):
            raise serializers.ValidationError("Send user_id or subscription_id.")
        return attrs


class ReasonSerializer(serializers.Serializer[Any]):
    reason_id = serializers.IntegerField(required=False, allow_null=True)
    feedback = serializers.CharField(required=False, allow_blank=True, max_length=services.MAX_FEEDBACK, default="")


PROOF_ERRORS = {
    401: OpenApiResponse(
        description="Proof missing, unknown or expired (`proof_missing`, `auth_hash_missing`, "
        "`auth_hash_needs_user_id`, `secret_key_invalid`, `session_token_missing`, `session_token_invalid`, "
        "`session_token_expired`): "
        '`{"error", "code"}`, the message says what to send.'
    ),
    403: OpenApiResponse(
        description="Proof that does not cover the call (`auth_hash_invalid`, `session_token_other_session`): "
        '`{"error", "code"}`.'
    ),
}
"""The refusals every session call may answer, for the OpenAPI schema."""


def _answer(
    request: Request, grant: access.SessionGrant, status_code: int = status.HTTP_200_OK, *, with_token: bool = False
) -> Response:
    """The session's state, the hosted page's link (it carries the session token) and when the token expires;
    the token itself only in the start's answer."""
    session = services.session_get(grant.session.token)
    payload = session_payload(session)
    payload["hosted_url"] = request.build_absolute_uri(hosted_path(grant.token))
    payload["session_token_expires_at"] = grant.expires_at.isoformat()
    if with_token:
        payload["session_token"] = grant.token
    return Response(payload, status=status_code)


def _error(error: services.SessionError) -> Response:
    body: dict[str, Any] = {"error": error.message, "code": error.code}
    if isinstance(error, services.StripeStepFailed):
        body["stripe"] = {"status": error.stripe_status, "code": error.stripe_code}
        body["retryable"] = True
    return Response(body, status=error.status)


class SessionAPIView(APIView):
    """Shared parts: proof of who asks, and every refusal or SessionError → a JSON `{"error", "code"}` answer."""

    authentication_classes = [SessionTokenAuthentication]
    permission_classes = [HasSessionToken]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, services.SessionError):
            response = _error(exc)
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
        raise access.ProofRequired(message or HasSessionToken.message, code=code)

    def _grant(self, request: Request, token: str) -> access.SessionGrant:
        """The caller's grant, for the session the path names."""
        grant = request.auth
        assert isinstance(grant, access.SessionGrant)  # HasSessionToken let the call through
        return access.grant_covers(grant, token)


class SessionStartView(SessionAPIView):
    authentication_classes = [SecretKeyAuthentication, WriteKeyAuthentication]
    permission_classes = [HasStartProof]

    @extend_schema(request=StartSerializer, responses={201: dict[str, Any], 200: dict[str, Any], **PROOF_ERRORS})
    def post(self, request: Request) -> Response:
        """Start a session for a subscription (or resume the one still open) → flow, reasons and the
        session_token every later call needs."""
        data = StartSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user_id = data.validated_data.get("user_id")
        if isinstance(request.auth, ServerCaller):
            source = request.auth.source
        else:
            assert isinstance(request.auth, Source)  # HasStartProof let the call through
            source = request.auth
            access.browser_start_check(source=source, user_id=user_id, auth_hash=data.validated_data["auth_hash"])
        start = services.win_back_start if data.validated_data["kind"] == "win_back" else services.session_start
        session, created = start(
            source=source, user_id=user_id, stripe_subscription_id=data.validated_data.get("subscription_id")
        )
        grant = access.session_token_issue(session)
        return _answer(request, grant, status.HTTP_201_CREATED if created else status.HTTP_200_OK, with_token=True)


class SessionDetailView(SessionAPIView):
    @extend_schema(responses={200: dict[str, Any], **PROOF_ERRORS})
    def get(self, request: Request, token: str) -> Response:
        """The session's stage, reasons, offer and outcome."""
        return _answer(request, self._grant(request, token))


class SessionReasonView(SessionAPIView):
    @extend_schema(request=ReasonSerializer, responses={200: dict[str, Any], **PROOF_ERRORS})
    def post(self, request: Request, token: str) -> Response:
        """Answer the reason question (and feedback) → the offer to present, or none."""
        grant = self._grant(request, token)
        data = ReasonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.session_answer_reason(
            session=grant.session,
            reason_id=data.validated_data.get("reason_id"),
            feedback=data.validated_data.get("feedback", ""),
        )
        return _answer(request, grant)


class SessionAcceptView(SessionAPIView):
    @extend_schema(request=None, responses={200: dict[str, Any], **PROOF_ERRORS})
    def post(self, request: Request, token: str) -> Response:
        """Accept the presented offer; it is applied through Stripe (simulated for a test customer)."""
        grant = self._grant(request, token)
        services.session_accept(session=grant.session)
        return _answer(request, grant)


class SessionDeclineView(SessionAPIView):
    @extend_schema(request=None, responses={200: dict[str, Any], **PROOF_ERRORS})
    def post(self, request: Request, token: str) -> Response:
        """Decline the presented offer → the cancel confirmation."""
        grant = self._grant(request, token)
        services.session_decline(session=grant.session)
        return _answer(request, grant)


class SessionConfirmCancelView(SessionAPIView):
    @extend_schema(request=None, responses={200: dict[str, Any], **PROOF_ERRORS})
    def post(self, request: Request, token: str) -> Response:
        """Confirm the cancellation; it is sent to Stripe with the reason as cancellation feedback."""
        grant = self._grant(request, token)
        services.session_confirm_cancel(session=grant.session)
        return _answer(request, grant)


class CancellationReportView(APIView):
    """GET /api/v1/cancellation-reports/ — the figures of the Retention → Reports page, for staff (token or
    session auth) whose role may view cancellation sessions. The filters are the page's (`ReportFilterForm`):
    `days` (1–366, default 30) or `since`/`until` (YYYY-MM-DD), `flow`, `offer`, `plan` (ids), `include_test`;
    a bad filter answers 400 naming it."""

    permission_classes = [RoleModelPermissions]
    queryset = CancellationSession.objects.none()  # names the model whose view permission is required

    @extend_schema(
        parameters=[
            OpenApiParameter("days", int, description="The last N days (1–366, default 30)."),
            OpenApiParameter("since", str, description="First day, YYYY-MM-DD (instead of days)."),
            OpenApiParameter("until", str, description="Last day, YYYY-MM-DD (default today)."),
            OpenApiParameter("flow", int, description="Only sessions of this flow."),
            OpenApiParameter("offer", int, description="Only sessions that were presented this offer."),
            OpenApiParameter("plan", int, description="Only sessions of subscriptions on this plan."),
            OpenApiParameter("include_test", bool, description="Count test sessions too."),
        ],
        responses=dict[str, Any],
    )
    def get(self, request: Request) -> Response:
        """Sessions by outcome, save rate, MRR saved (and still saved after 30 days), acceptance by offer and
        by reason, breakdowns by plan and by segment, win-back recoveries and daily buckets."""
        form = ReportFilterForm(request.query_params)
        if not form.is_valid():
            raise ValidationError({field: [str(error) for error in errors] for field, errors in form.errors.items()})
        return Response(report_json(cancellation_report(filters=form.filters())))
