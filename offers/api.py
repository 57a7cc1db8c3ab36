"""The cancellation session API the product calls. Who may start is decided by audiences.api_auth (shared with
the in-app prompt API), who may act on a session by offers.access:

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

from typing import Any

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.api_auth import (
    REALM,
    HasCustomerProof,
    ProductAPIView,
    ProofRequired,
    SecretKeyAuthentication,
    ServerCaller,
    WriteKeyAuthentication,
    bearer,
    customer_proof_check,
)
from audiences.models import Source
from audiences.services import SECRET_KEY_PREFIX
from config.permissions import RoleModelPermissions
from offers import access, errors, outcomes, sessions, win_back
from offers.forms import ReportFilterForm
from offers.hosted import hosted_path
from offers.models import CancellationSession
from offers.selectors import cancellation_report, report_json, session_payload


class SessionTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <session token>` on every call on a session; `request.auth` is the SessionGrant
    (the token's session is checked against the path in SessionAPIView)."""

    def authenticate(self, request: Request) -> tuple[Any, access.SessionGrant] | None:
        header = request.headers.get("Authorization", "")
        token = bearer(header)
        if token is None:
            if header.lower().startswith("basic "):
                raise ProofRequired(
                    "A write key cannot act on a session: send the session_token the start answered, as "
                    "Authorization: Bearer <session_token>.",
                    code="session_token_missing",
                )
            return None  # nothing, or another scheme (a staff token): HasSessionToken says what to send
        if token.startswith(SECRET_KEY_PREFIX):
            raise ProofRequired(
                "A secret key starts sessions; act on one with the session_token the start answered, as "
                "Authorization: Bearer <session_token>.",
                code="session_token_missing",
            )
        return AnonymousUser(), access.session_grant(token)

    def authenticate_header(self, request: Request) -> str:
        return f"Bearer {REALM}"


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
    feedback = serializers.CharField(required=False, allow_blank=True, max_length=sessions.MAX_FEEDBACK, default="")


PROOF_ERRORS = {
    401: OpenApiResponse(
        description="Proof missing, unknown or expired (`proof_missing`, `auth_hash_missing`, "
        "`auth_hash_needs_user_id`, `write_key_missing`, `write_key_invalid`, `secret_key_invalid`, "
        "`session_token_missing`, `session_token_invalid`, `session_token_expired`): "
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
    session = sessions.session_get(grant.session.token)
    payload = session_payload(session)
    payload["hosted_url"] = request.build_absolute_uri(hosted_path(grant.token))
    payload["session_token_expires_at"] = grant.expires_at.isoformat()
    if with_token:
        payload["session_token"] = grant.token
    return Response(payload, status=status_code)


def _error(error: errors.SessionError) -> Response:
    body: dict[str, Any] = {"error": error.message, "code": error.code}
    if isinstance(error, errors.StripeStepFailed):
        body["stripe"] = {"status": error.stripe_status, "code": error.stripe_code}
        body["retryable"] = True
    return Response(body, status=error.status)


class SessionAPIView(ProductAPIView):
    """Shared parts: the session token as proof, and every SessionError too → a JSON `{"error", "code"}` answer."""

    authentication_classes = [SessionTokenAuthentication]
    permission_classes = [HasSessionToken]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, errors.SessionError):
            return _error(exc)
        return super().handle_exception(exc)

    def _grant(self, request: Request, token: str) -> access.SessionGrant:
        """The caller's grant, for the session the path names."""
        grant = request.auth
        assert isinstance(grant, access.SessionGrant)  # HasSessionToken let the call through
        return access.grant_covers(grant, token)


class SessionStartView(SessionAPIView):
    authentication_classes = [SecretKeyAuthentication, WriteKeyAuthentication]
    permission_classes = [HasCustomerProof]

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
            assert isinstance(request.auth, Source)  # HasCustomerProof let the call through
            source = request.auth
            customer_proof_check(
                source=source,
                user_id=user_id,
                auth_hash=data.validated_data["auth_hash"],
                action="start a session",
                send="user_id with auth_hash",
            )
        start = win_back.win_back_start if data.validated_data["kind"] == "win_back" else sessions.session_start
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
        sessions.session_answer_reason(
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
        outcomes.session_accept(session=grant.session)
        return _answer(request, grant)


class SessionDeclineView(SessionAPIView):
    @extend_schema(request=None, responses={200: dict[str, Any], **PROOF_ERRORS})
    def post(self, request: Request, token: str) -> Response:
        """Decline the presented offer → the cancel confirmation."""
        grant = self._grant(request, token)
        sessions.session_decline(session=grant.session)
        return _answer(request, grant)


class SessionConfirmCancelView(SessionAPIView):
    @extend_schema(request=None, responses={200: dict[str, Any], **PROOF_ERRORS})
    def post(self, request: Request, token: str) -> Response:
        """Confirm the cancellation; it is sent to Stripe with the reason as cancellation feedback."""
        grant = self._grant(request, token)
        outcomes.session_confirm_cancel(session=grant.session)
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
