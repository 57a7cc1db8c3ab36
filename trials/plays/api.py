"""The alert queue API, so the queue can be embedded elsewhere (a CRM sidebar, Slack):

    GET  /api/v1/alerts/                 my alerts and the unassigned ones, by SLA due time then priority
    GET  /api/v1/alerts/{id}/            one alert with its brief
    POST /api/v1/alerts/{id}/claim/      take it (409 when another rep holds it)
    POST /api/v1/alerts/{id}/release/    give it back to the unassigned queue
    POST /api/v1/alerts/{id}/snooze/     {"until": ISO 8601 with zone}
    POST /api/v1/alerts/{id}/done/       {"outcome": reached|meeting_booked|converted|not_interested|wrong_person,
                                          "notes": "..."}
    POST /api/v1/alerts/{id}/dismiss/    {"notes": "..."}

Session or token auth; reads need trials.view_alert, actions trials.change_alert. Errors are JSON
`{"error", "details"}` with 400 (bad input), 403 (role), 404 (not in your queue) or 409 (state conflict).
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from trials.plays.alerts import (
    AlertActionError,
    alert_claim,
    alert_dismiss,
    alert_done,
    alert_release,
    alert_snooze,
    alerts_queue,
    alerts_visible,
)
from trials.plays.models import Alert


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The alert's state does not allow this."
    default_code = "conflict"


class AlertPermission(BasePermission):
    """Reads need view_alert; actions need change_alert too."""

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.has_perm("trials.view_alert")):
            return False
        return request.method in ("GET", "HEAD", "OPTIONS") or bool(user.has_perm("trials.change_alert"))


class QueuePagination(CursorPagination):
    ordering = ("due_at", "priority", "id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class AlertSerializer(serializers.ModelSerializer[Alert]):
    play = serializers.SerializerMethodField()
    customer = serializers.SerializerMethodField()
    assignee = serializers.SerializerMethodField()
    overdue = serializers.SerializerMethodField()

    class Meta:
        model = Alert
        fields = [
            "id", "play", "customer", "account", "status", "assignee", "priority", "due_at", "overdue",
            "snoozed_until", "outcome", "notes", "created_at", "claimed_at", "closed_at", "brief_refreshed_at",
            "brief",
        ]  # fmt: skip
        read_only_fields = fields

    def get_play(self, alert: Alert) -> dict[str, Any]:
        return {"key": alert.play.key, "name": alert.play.name}

    def get_customer(self, alert: Alert) -> dict[str, Any]:
        return {"id": alert.customer_id, "name": alert.customer.name, "email": alert.customer.email}

    def get_assignee(self, alert: Alert) -> str | None:
        return alert.assignee.get_username() if alert.assignee is not None else None

    def get_overdue(self, alert: Alert) -> bool:
        return alert.status in Alert.QUEUE_STATUSES and alert.due_at < timezone.now()


class SnoozeSerializer(serializers.Serializer[Any]):
    until = serializers.DateTimeField()


class DoneSerializer(serializers.Serializer[Any]):
    outcome = serializers.ChoiceField(choices=[value for value in Alert.Outcome.values if value])
    notes = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")


class DismissSerializer(serializers.Serializer[Any]):
    notes = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")


def _refused(refused: AlertActionError) -> APIException:
    if refused.code == "not_found":
        return NotFound(refused.message)
    if refused.code == "forbidden":
        return PermissionDenied(refused.message)
    if refused.code == "conflict":
        return Conflict(refused.message)
    return ValidationError({"detail": refused.message})


class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Alert]):
    """The rep's alert queue (mine and unassigned) and the actions on an alert."""

    serializer_class = AlertSerializer
    permission_classes = [AlertPermission]
    pagination_class = QueuePagination
    filterset_class = None
    lookup_value_regex = r"\d+"

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return Alert.objects.none()
        if self.action == "list":
            return alerts_queue(self.request.user, now=timezone.now())
        return alerts_visible(self.request.user).select_related("play", "customer", "assignee")

    def _act(self, request: Request, pk: str | None, run: Any) -> Response:
        try:
            alert = run(int(pk or 0))
        except AlertActionError as refused:
            raise _refused(refused) from refused
        fresh = self.get_queryset().get(pk=alert.pk)
        return Response(AlertSerializer(fresh).data)

    @action(detail=True, methods=["post"])
    def claim(self, request: Request, pk: str | None = None) -> Response:
        return self._act(request, pk, lambda alert_id: alert_claim(alert_id=alert_id, user=request.user))

    @action(detail=True, methods=["post"])
    def release(self, request: Request, pk: str | None = None) -> Response:
        return self._act(request, pk, lambda alert_id: alert_release(alert_id=alert_id, user=request.user))

    @action(detail=True, methods=["post"], serializer_class=SnoozeSerializer)
    def snooze(self, request: Request, pk: str | None = None) -> Response:
        body = SnoozeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        until = body.validated_data["until"]
        return self._act(request, pk, lambda alert_id: alert_snooze(alert_id=alert_id, user=request.user, until=until))

    @action(detail=True, methods=["post"], serializer_class=DoneSerializer)
    def done(self, request: Request, pk: str | None = None) -> Response:
        body = DoneSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        return self._act(
            request,
            pk,
            lambda alert_id: alert_done(
                alert_id=alert_id, user=request.user, outcome=data["outcome"], notes=data["notes"]
            ),
        )

    @action(detail=True, methods=["post"], serializer_class=DismissSerializer)
    def dismiss(self, request: Request, pk: str | None = None) -> Response:
        body = DismissSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        notes = body.validated_data["notes"]
        return self._act(request, pk, lambda alert_id: alert_dismiss(alert_id=alert_id, user=request.user, notes=notes))
