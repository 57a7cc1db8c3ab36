"""The cancellation session API the product calls (authenticated by a source's write key, like the tracking API).

    POST /api/v1/cancellation-sessions/                      {"user_id"} or {"subscription_id"} → flow, reasons,
                                                             hosted_url; with {"kind": "win_back"} a session for
                                                             a trial that lapsed unpaid (starts at the offer)
    GET  /api/v1/cancellation-sessions/{token}/              the session as it is
    POST /api/v1/cancellation-sessions/{token}/reason/       {"reason_id", "feedback"} → the offer to present
    POST /api/v1/cancellation-sessions/{token}/accept/       apply the offer through Stripe → saved
    POST /api/v1/cancellation-sessions/{token}/decline/      → on to the confirmation
    POST /api/v1/cancellation-sessions/{token}/confirm-cancel/  cancel through Stripe → canceled

Every answer is the session's state (`session_payload`); every error is `{"error", "code"}` with a 4xx (or 502
when Stripe failed, 503 when Stripe is not configured). Repeating a move that already happened answers the
same state, so a product can retry any call safely.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed, ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.models import Source
from audiences.selectors import source_for_write_key
from config.permissions import RoleModelPermissions
from integrations.segment import RequestRejected, write_key_from
from offers import services
from offers.forms import ReportFilterForm
from offers.hosted import hosted_path
from offers.models import CancellationSession
from offers.selectors import cancellation_report, report_json, session_payload


class WriteKeyAuthentication(BaseAuthentication):
    """HTTP Basic with a source's write key as the user name (empty password) — what the tracking API takes.

    The authenticated "user" is anonymous; `request.auth` is the Source.
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
        return 'Basic realm="trialloop"'


class WriteKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """Names the write-key authentication in the OpenAPI schema (HTTP Basic, the key as user name)."""

    target_class = "offers.api.WriteKeyAuthentication"
    name = "writeKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "basic", "description": "A source's write key as the user name."}


class HasWriteKey(BasePermission):
    """Only requests authenticated with a source's write key."""

    message = "Send a source's write key as the HTTP Basic user name."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, Source)


class StartSerializer(serializers.Serializer[Any]):
    user_id = serializers.CharField(required=False, allow_blank=False, max_length=255)
    subscription_id = serializers.CharField(
        required=False, allow_blank=False, max_length=255, help_text="The Stripe subscription id (sub_…)."
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


def _answer(request: Request, token: str, status_code: int = status.HTTP_200_OK) -> Response:
    """The session's state, plus the signed link to the hosted page for products without their own UI."""
    session = services.session_get(token)
    payload = session_payload(session)
    payload["hosted_url"] = request.build_absolute_uri(hosted_path(session))
    return Response(payload, status=status_code)


def _error(error: services.SessionError) -> Response:
    body: dict[str, Any] = {"error": error.message, "code": error.code}
    if isinstance(error, services.StripeStepFailed):
        body["stripe"] = {"status": error.stripe_status, "code": error.stripe_code}
        body["retryable"] = True
    return Response(body, status=error.status)


class SessionAPIView(APIView):
    """Shared parts: write-key auth, and SessionError → a JSON error answer."""

    authentication_classes = [WriteKeyAuthentication]
    permission_classes = [HasWriteKey]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, services.SessionError):
            return _error(exc)
        return super().handle_exception(exc)

    def _session(self, token: str) -> Any:
        return services.session_get(token)


class SessionStartView(SessionAPIView):
    @extend_schema(request=StartSerializer, responses={201: dict[str, Any], 200: dict[str, Any]})
    def post(self, request: Request) -> Response:
        """Start a session for a subscription (or resume the one still open) → flow, reasons and token."""
        data = StartSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        source = request.auth if isinstance(request.auth, Source) else None
        start = services.win_back_start if data.validated_data["kind"] == "win_back" else services.session_start
        session, created = start(
            source=source,
            user_id=data.validated_data.get("user_id"),
            stripe_subscription_id=data.validated_data.get("subscription_id"),
        )
        return _answer(request, session.token, status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class SessionDetailView(SessionAPIView):
    @extend_schema(responses=dict[str, Any])
    def get(self, request: Request, token: str) -> Response:
        """The session's stage, reasons, offer and outcome."""
        return _answer(request, self._session(token).token)


class SessionReasonView(SessionAPIView):
    @extend_schema(request=ReasonSerializer, responses=dict[str, Any])
    def post(self, request: Request, token: str) -> Response:
        """Answer the reason question (and feedback) → the offer to present, or none."""
        data = ReasonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        session = services.session_answer_reason(
            session=self._session(token),
            reason_id=data.validated_data.get("reason_id"),
            feedback=data.validated_data.get("feedback", ""),
        )
        return _answer(request, session.token)


class SessionAcceptView(SessionAPIView):
    @extend_schema(request=None, responses=dict[str, Any])
    def post(self, request: Request, token: str) -> Response:
        """Accept the presented offer; it is applied through Stripe (simulated for a test customer)."""
        session = services.session_accept(session=self._session(token))
        return _answer(request, session.token)


class SessionDeclineView(SessionAPIView):
    @extend_schema(request=None, responses=dict[str, Any])
    def post(self, request: Request, token: str) -> Response:
        """Decline the presented offer → the cancel confirmation."""
        session = services.session_decline(session=self._session(token))
        return _answer(request, session.token)


class SessionConfirmCancelView(SessionAPIView):
    @extend_schema(request=None, responses=dict[str, Any])
    def post(self, request: Request, token: str) -> Response:
        """Confirm the cancellation; it is sent to Stripe with the reason as cancellation feedback."""
        session = services.session_confirm_cancel(session=self._session(token))
        return _answer(request, session.token)


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
