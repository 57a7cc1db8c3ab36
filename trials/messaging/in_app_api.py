"""The in-app prompt API the product calls about one customer, with proof of who asks (audiences.api_auth):

    GET  /api/v1/in-app/{user_id}   → {"prompt": {...}} — the prompt to show now — or {"prompt": null}
    POST /api/v1/in-app/{user_id}   {"prompt_id": N, "action": "shown" | "clicked" | "dismissed"} → the prompt
         from the server:  Authorization: Bearer <the source's secret key (tlsk_…)>
         from the browser: Authorization: Basic <write key>:, and auth_hash = hex HMAC-SHA256(secret key, user_id)
                           computed by the product's server — the `auth_hash` query parameter (GET) or body field
                           (POST), or the Trialloop-Auth-Hash header

A prompt holds personal data (the template's variables: first name, usage figures) and a report changes what the
customer is shown next, so the public write key alone answers 401. Errors are `{"error", "code"}` with a 4xx.
Repeating a report answers the same prompt with the first time kept.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from audiences.api_auth import AUTH_HASH_HEADER, ProductAPIView, customer_proof_check
from audiences.models import Customer, Source
from trials.messaging.in_app import ACTIONS, InAppError, Prompt, customer_for_user, in_app_prompt, in_app_record
from trials.messaging.models import MessageSend

AUTH_HASH_HELP = (
    "With a write key (the customer's browser): hex HMAC-SHA256 of the user id in the path under the source's "
    "secret key, computed by your server. Not needed with the secret key (a call from your server)."
)
AUTH_HASH_SENT = (
    f"auth_hash (the auth_hash query parameter on GET, the auth_hash body field on POST, or the {AUTH_HASH_HEADER} "
    "header)"
)
PROOF_ERRORS = {
    401: OpenApiResponse(
        description="Proof missing or unknown (`proof_missing`, `auth_hash_missing`, `write_key_missing`, "
        '`write_key_invalid`, `secret_key_invalid`): `{"error", "code"}`, the message says what to send.'
    ),
    403: OpenApiResponse(
        description='An auth_hash that does not match the user id (`auth_hash_invalid`): `{"error", "code"}`.'
    ),
    404: OpenApiResponse(description='`unknown_user` or `unknown_prompt`: `{"error", "code"}`.'),
}
"""The refusals every in-app call may answer, for the OpenAPI schema."""
HASH_HEADER_PARAMETER = OpenApiParameter(
    AUTH_HASH_HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER, required=False, description=AUTH_HASH_HELP
)


class ReportSerializer(serializers.Serializer[Any]):
    prompt_id = serializers.IntegerField(min_value=1)
    action = serializers.ChoiceField(choices=list(ACTIONS))
    auth_hash = serializers.CharField(
        required=False, allow_blank=True, max_length=128, default="", help_text=AUTH_HASH_HELP
    )


def _times(send: MessageSend) -> dict[str, str | None]:
    return {
        "shown_at": send.shown_at.isoformat() if send.shown_at else None,
        "clicked_at": send.clicked_at.isoformat() if send.clicked_at else None,
        "dismissed_at": send.dismissed_at.isoformat() if send.dismissed_at else None,
    }


def _prompt_payload(request: Request, prompt: Prompt) -> dict[str, Any]:
    report_url = request.build_absolute_uri(request.path)
    return {
        "id": prompt.send.pk,
        "template": prompt.send.template.key,
        "title": prompt.title,
        "body_text": prompt.text,
        "body_html": prompt.html,
        "served_at": prompt.send.created_at.isoformat(),
        **_times(prompt.send),
        "report": {
            "url": report_url,
            "method": "POST",
            "actions": {action: {"prompt_id": prompt.send.pk, "action": action} for action in ACTIONS},
        },
    }


class InAppView(ProductAPIView):
    """The prompt to show a customer now, and what happened to it: for the product's server (secret key), or for
    the customer's own browser (write key and the auth_hash of their user id)."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, InAppError):
            return Response({"error": exc.message, "code": exc.code}, status=exc.status)
        return super().handle_exception(exc)

    def _customer(self, request: Request, user_id: str, sent_hash: Any) -> Customer:
        """The customer the call is about, once the caller proved it may ask about them: a secret key may ask
        about anyone, a write key about the user id its auth_hash (sent here, else in the header) was signed for."""
        if isinstance(request.auth, Source):
            supplied = sent_hash if sent_hash not in (None, "") else request.headers.get(AUTH_HASH_HEADER, "")
            customer_proof_check(
                source=request.auth,
                user_id=user_id,
                auth_hash=str(supplied),
                action="read or report a customer's in-app prompts",
                send=AUTH_HASH_SENT,
            )
        return customer_for_user(user_id)

    @extend_schema(
        parameters=[
            OpenApiParameter("auth_hash", OpenApiTypes.STR, OpenApiParameter.QUERY, description=AUTH_HASH_HELP),
            HASH_HEADER_PARAMETER,
        ],
        responses={200: dict[str, Any], **PROOF_ERRORS},
    )
    def get(self, request: Request, user_id: str) -> Response:
        """The prompt to show now (served again unchanged until clicked or dismissed), or {"prompt": null}."""
        customer = self._customer(request, user_id, request.query_params.get("auth_hash"))
        prompt = in_app_prompt(customer)
        return Response({"prompt": _prompt_payload(request, prompt) if prompt else None})

    @extend_schema(
        parameters=[HASH_HEADER_PARAMETER],
        request=ReportSerializer,
        responses={200: dict[str, Any], **PROOF_ERRORS},
    )
    def post(self, request: Request, user_id: str) -> Response:
        """Record shown / clicked / dismissed for a served prompt (a repeat keeps the first time)."""
        body = request.data if isinstance(request.data, dict) else {}
        customer = self._customer(request, user_id, body.get("auth_hash"))
        if not isinstance(request.data, dict):
            raise InAppError("Send a JSON object.", code="bad_request")
        data = ReportSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        send = in_app_record(
            customer=customer, prompt_id=data.validated_data["prompt_id"], action=data.validated_data["action"]
        )
        return Response({"id": send.pk, "action": data.validated_data["action"], **_times(send)})
