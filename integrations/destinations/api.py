"""REST endpoints for outbound destinations: CRUD with health, pause/resume, secret rotation, the delivery log
and replay. Thin: validation reports field errors, the writes are integrations.destinations.services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from config.facts import FactKind
from config.permissions import RoleModelPermissions
from integrations.destinations import selectors
from integrations.destinations.filters import DestinationDeliveryFilter
from integrations.destinations.models import Destination, DestinationDelivery
from integrations.destinations.outbound_http import UnsafeUrl, url_check
from integrations.destinations.services import (
    DestinationInvalid,
    ReplayRefused,
    destination_create,
    destination_delivery_replay,
    destination_pause,
    destination_resume,
    destination_rotate_secret,
    destination_update,
    kinds_check,
)


class ChangeOnPost(RoleModelPermissions):
    """For actions that change an existing destination (pause, rotate, replay): POST needs `change_*`."""

    perms_map = {**RoleModelPermissions.perms_map, "POST": ["%(app_label)s.change_%(model_name)s"]}


class DestinationHealthSerializer(serializers.Serializer[Any]):
    pending = serializers.IntegerField()
    failed = serializers.IntegerField()
    attempted_recently = serializers.IntegerField(help_text="Deliveries tried in the last 24 h.")
    delivered_recently = serializers.IntegerField(help_text="Of those, delivered.")
    success_rate = serializers.FloatField(allow_null=True, help_text="Percent delivered of those tried in 24 h.")
    last_success_at = serializers.DateTimeField(allow_null=True)
    last_failure_at = serializers.DateTimeField(allow_null=True)


class DestinationSerializer(serializers.ModelSerializer[Destination]):
    kinds = serializers.ListField(
        child=serializers.CharField(max_length=20),
        allow_empty=False,
        help_text=f"The messages to receive, any of: {', '.join(FactKind.values)}.",
    )
    write_key = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=255, help_text="Segment kind only."
    )
    write_key_set = serializers.SerializerMethodField()
    health = serializers.SerializerMethodField()

    class Meta:
        model = Destination
        fields = [
            "id",
            "name",
            "kind",
            "url",
            "kinds",
            "consent_category",
            "is_paused",
            "write_key",
            "write_key_set",
            "signing_secret",
            "secret_rotated_at",
            "health",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["is_paused", "signing_secret", "secret_rotated_at"]

    def get_write_key_set(self, destination: Destination) -> bool:
        return bool(destination.write_key)

    @extend_schema_field(DestinationHealthSerializer)
    def get_health(self, destination: Destination) -> dict[str, Any]:
        known = self.context.get("health") or {}
        health = known.get(destination.pk) or selectors.destination_health([destination.pk])[destination.pk]
        return dict(DestinationHealthSerializer(health).data)

    def to_representation(self, instance: Destination) -> dict[str, Any]:
        data = super().to_representation(instance)
        request = self.context.get("request")
        # The signing secret lets anyone forge our webhooks: it is returned once, in the answer that made it
        # (create, rotate-secret), and only to those who may change the destination.
        revealed = self.context.get("reveal_secret", False)
        if not revealed or request is None or not request.user.has_perm("integrations.change_destination"):
            data.pop("signing_secret", None)
        return data

    def validate_url(self, value: str) -> str:
        try:
            url_check(value)
        except UnsafeUrl as unsafe:
            raise ValidationError(str(unsafe)) from unsafe
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        instance = self.instance if isinstance(self.instance, Destination) else None
        if instance is not None and "kind" in attrs and attrs["kind"] != instance.kind:
            raise ValidationError({"kind": ["The kind cannot change; create another destination instead."]})
        kind = instance.kind if instance is not None else attrs.get("kind", Destination.Kind.WEBHOOK)
        if kind == Destination.Kind.SEGMENT and not attrs.get("write_key") and not (instance and instance.write_key):
            raise ValidationError({"write_key": ["A Segment destination needs the write key of the receiving source."]})
        if "kinds" in attrs:
            try:
                attrs["kinds"] = kinds_check(kind=kind, kinds=attrs["kinds"])
            except DestinationInvalid as invalid:
                raise ValidationError({invalid.field: [invalid.message]}) from invalid
        return attrs

    def create(self, validated_data: dict[str, Any]) -> Destination:
        return _saved(
            lambda: destination_create(
                name=validated_data["name"],
                kind=validated_data.get("kind", Destination.Kind.WEBHOOK),
                url=validated_data["url"],
                kinds=validated_data["kinds"],
                consent_category=validated_data.get("consent_category", Destination.DEFAULT_CONSENT_CATEGORY),
                write_key=validated_data.get("write_key", ""),
            )
        )

    def update(self, instance: Destination, validated_data: dict[str, Any]) -> Destination:
        return _saved(
            lambda: destination_update(
                destination=instance,
                name=validated_data.get("name", instance.name),
                url=validated_data.get("url", instance.url),
                kinds=validated_data.get("kinds", instance.kinds),
                consent_category=validated_data.get("consent_category", instance.consent_category),
                write_key=validated_data.get("write_key", ""),
            )
        )


def _saved(save: Callable[[], Destination]) -> Destination:
    try:
        destination = save()
    except DestinationInvalid as invalid:
        raise ValidationError({invalid.field: [invalid.message]}) from invalid
    return destination


class DestinationDeliverySerializer(serializers.ModelSerializer[DestinationDelivery]):
    class Meta:
        model = DestinationDelivery
        fields = [
            "id",
            "kind",
            "customer",
            "idempotency_key",
            "status",
            "attempts",
            "next_attempt_at",
            "last_attempt_at",
            "last_status_code",
            "last_error",
            "delivered_at",
            "created_at",
            "payload",
        ]


class DestinationViewSet(viewsets.ModelViewSet[Destination]):
    """Fact destinations (webhooks and Segment-compatible APIs) with their health; the delivery log of
    each, filtered by `status`, `kind`, `customer` or `idempotency_key`; replay; pause and resume; rotation
    of the signing secret (returned once, by create and rotate-secret, to roles that may change destinations)."""

    serializer_class = DestinationSerializer
    queryset = Destination.objects.order_by("name")

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        items = list(page) if page is not None else list(queryset)
        context = {**self.get_serializer_context(), "health": selectors.destination_health([d.pk for d in items])}
        data = DestinationSerializer(items, many=True, context=context).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    @extend_schema(request=None, responses=DestinationSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-secret", permission_classes=[ChangeOnPost])
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        """A new signing secret; the previous one keeps signing alongside for 24 hours."""
        destination = self.get_object()
        destination_rotate_secret(destination=destination)
        return Response(DestinationSerializer(destination, context=self._revealing_context()).data)

    def _revealing_context(self) -> dict[str, Any]:
        return {**self.get_serializer_context(), "reveal_secret": True}

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Create a destination; the answer carries its signing secret, the only time it is returned."""
        serializer = DestinationSerializer(data=request.data, context=self._revealing_context())
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data, status=201)

    @extend_schema(request=None, responses=DestinationSerializer)
    @action(detail=True, methods=["post"], permission_classes=[ChangeOnPost])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        """Stop sending; new deliveries wait, pending, until resumed."""
        destination = self.get_object()
        destination_pause(destination=destination)
        return Response(self.get_serializer(destination).data)

    @extend_schema(request=None, responses=DestinationSerializer)
    @action(detail=True, methods=["post"], permission_classes=[ChangeOnPost])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        """Send again, starting with what waited."""
        destination = self.get_object()
        destination_resume(destination=destination)
        return Response(self.get_serializer(destination).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=DestinationDelivery.Status.values),
            OpenApiParameter("kind", str, enum=FactKind.values),
            OpenApiParameter("customer", int),
            OpenApiParameter("idempotency_key", str),
        ],
        responses=DestinationDeliverySerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, pk: str | None = None) -> Response:
        """The delivery log, newest first."""
        if not request.user.has_perm("integrations.view_destinationdelivery"):
            raise PermissionDenied("Your role may not read delivery logs.")
        filterset = DestinationDeliveryFilter(
            request.query_params, queryset=selectors.destination_deliveries(self.get_object())
        )
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        page = self.paginate_queryset(filterset.qs)
        return self.get_paginated_response(DestinationDeliverySerializer(page, many=True).data)

    @extend_schema(request=None, responses=DestinationDeliverySerializer)
    @action(
        detail=True,
        methods=["post"],
        url_path=r"deliveries/(?P<delivery_pk>[0-9]+)/replay",
        permission_classes=[ChangeOnPost],
    )
    def replay(self, request: Request, pk: str | None = None, delivery_pk: str | None = None) -> Response:
        """Send a delivered or failed delivery again, with the same payload and idempotency key."""
        delivery = get_object_or_404(DestinationDelivery, pk=delivery_pk, destination=self.get_object())
        try:
            destination_delivery_replay(delivery=delivery)
        except ReplayRefused as refused:
            raise ValidationError({"status": [str(refused)]}) from refused
        delivery.refresh_from_db()
        return Response(DestinationDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
