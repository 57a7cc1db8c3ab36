"""The in-app prompt API the product calls, authenticated by a source's write key like the tracking API.

    GET  /api/v1/in-app/{user_id}   → {"prompt": {...}} — the prompt to show now — or {"prompt": null}
    POST /api/v1/in-app/{user_id}   {"prompt_id": N, "action": "shown" | "clicked" | "dismissed"} → the prompt

Errors are `{"error", "code"}` with a 4xx. Repeating a report answers the same prompt with the first time kept.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from offers.api import HasWriteKey, WriteKeyAuthentication
from trials.in_app import ACTIONS, InAppError, Prompt, customer_for_user, in_app_prompt, in_app_record
from trials.models import MessageSend


class ReportSerializer(serializers.Serializer[Any]):
    prompt_id = serializers.IntegerField(min_value=1)
    action = serializers.ChoiceField(choices=list(ACTIONS))


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


class InAppView(APIView):
    """The prompt to show a customer now, and what happened to it."""

    authentication_classes = [WriteKeyAuthentication]
    permission_classes = [HasWriteKey]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, InAppError):
            return Response({"error": exc.message, "code": exc.code}, status=exc.status)
        return super().handle_exception(exc)

    @extend_schema(responses={200: dict[str, Any]})
    def get(self, request: Request, user_id: str) -> Response:
        """The prompt to show now (served again unchanged until clicked or dismissed), or {"prompt": null}."""
        prompt = in_app_prompt(customer_for_user(user_id))
        return Response({"prompt": _prompt_payload(request, prompt) if prompt else None})

    @extend_schema(request=ReportSerializer, responses={200: dict[str, Any]})
    def post(self, request: Request, user_id: str) -> Response:
        """Record shown / clicked / dismissed for a served prompt (a repeat keeps the first time)."""
        if not isinstance(request.data, dict):
            raise InAppError("Send a JSON object.", code="bad_request")
        data = ReportSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        customer = customer_for_user(user_id)
        send = in_app_record(
            customer=customer, prompt_id=data.validated_data["prompt_id"], action=data.validated_data["action"]
        )
        return Response({"id": send.pk, "action": data.validated_data["action"], **_times(send)})
