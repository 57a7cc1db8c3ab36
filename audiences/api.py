"""REST endpoints for customers, accounts, a customer's events and (admins) sources."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from audiences import selectors, services
from audiences.filters import AccountFilter, CustomerFilter, EventFilter
from audiences.models import Account, AnonymousId, Customer, Event, Source
from audiences.privacy.erase import ERASE_PERMISSION, AlreadyErased, customer_erase
from audiences.privacy.export import EXPORT_PERMISSION, customer_export
from config.pagination import NewestFirstCursorPagination
from config.permissions import IsAdminRole


class AccountSummarySerializer(serializers.ModelSerializer[Account]):
    class Meta:
        model = Account
        fields = ["id", "group_id", "name"]


class CustomerSerializer(serializers.ModelSerializer[Customer]):
    account = AccountSummarySerializer(read_only=True)
    anonymous_ids: serializers.SlugRelatedField[AnonymousId] = serializers.SlugRelatedField(
        many=True, read_only=True, slug_field="anonymous_id"
    )

    class Meta:
        model = Customer
        fields = [
            "id",
            "user_id",
            "email",
            "stripe_customer_id",
            "anonymous_ids",
            "name",
            "traits",
            "account",
            "consent",
            "is_test",
            "subscriber_status",
            "mrr_cents",
            "ltv_cents",
            "first_seen_at",
            "last_seen_at",
            "created_at",
        ]


class AccountSerializer(serializers.ModelSerializer[Account]):
    class Meta:
        model = Account
        fields = ["id", "group_id", "name", "domain", "traits", "owner", "created_at"]


class EventSerializer(serializers.ModelSerializer[Event]):
    source_name = serializers.CharField(source="source.name", read_only=True)

    class Meta:
        model = Event
        fields = [
            "id",
            "source_name",
            "message_id",
            "type",
            "name",
            "user_id",
            "anonymous_id",
            "properties",
            "context",
            "timestamp",
            "original_timestamp",
            "sent_at",
            "received_at",
        ]


class EventPagination(NewestFirstCursorPagination):
    ordering = "-timestamp"


class ErasureRequestSerializer(serializers.Serializer[Any]):
    suppress_future_events = serializers.BooleanField(
        default=True, help_text="Tombstone the customer's ids so later calls under them are dropped."
    )


class ErasureResponseSerializer(serializers.Serializer[Any]):
    erased_customer = serializers.IntegerField()
    suppress_future_events = serializers.BooleanField()
    deleted_rows = serializers.DictField(child=serializers.IntegerField())
    redacted_rows = serializers.DictField(child=serializers.IntegerField())


class CustomerViewSet(viewsets.ReadOnlyModelViewSet[Customer]):
    """Customers, newest first; filter by `user_id`, `email`, `stripe_customer_id`, `anonymous_id`, ..."""

    serializer_class = CustomerSerializer
    filterset_class = CustomerFilter

    def get_queryset(self) -> QuerySet[Customer]:
        return selectors.customer_list().prefetch_related("anonymous_ids")

    @extend_schema(
        summary="Export everything held about the customer (GDPR access request)",
        responses={200: OpenApiTypes.OBJECT},
    )
    @action(detail=True, methods=["get"], url_path="export")
    def export(self, request: Request, pk: str | None = None) -> Response:
        if not request.user.has_perm(EXPORT_PERMISSION):
            raise PermissionDenied("Your role may not export customer data.")
        return Response(customer_export(self.get_object()))

    @extend_schema(
        summary="Erase the customer everywhere (GDPR erasure request)",
        request=ErasureRequestSerializer,
        responses={200: ErasureResponseSerializer},
    )
    @action(detail=True, methods=["post"], url_path="erase")
    def erase(self, request: Request, pk: str | None = None) -> Response:
        if not request.user.has_perm(ERASE_PERMISSION):
            raise PermissionDenied("Your role may not erase customers.")
        options = ErasureRequestSerializer(data=request.data)
        options.is_valid(raise_exception=True)
        customer = self.get_object()
        try:
            report = customer_erase(
                customer=customer,
                actor=request.user,
                via="api",
                suppress_future_events=options.validated_data["suppress_future_events"],
            )
        except AlreadyErased as gone:
            raise NotFound(str(gone)) from gone
        body = {
            "erased_customer": report.erasure.customer_pk,
            "suppress_future_events": report.erasure.suppress_future_events,
            "deleted_rows": report.deleted_rows,
            "redacted_rows": report.redacted_rows,
        }
        return Response(ErasureResponseSerializer(body).data)


class CustomerEventList(generics.ListAPIView[Event]):
    """A customer's event timeline, newest first; filter by `name`, `type`, `since`, `until`."""

    serializer_class = EventSerializer
    filterset_class = EventFilter
    pagination_class = EventPagination
    queryset = Event.objects.none()  # the permission check reads the model from here

    def get_queryset(self) -> QuerySet[Event]:
        customer = get_object_or_404(Customer.objects.only("pk"), pk=self.kwargs["customer_pk"])
        return selectors.customer_events(customer.pk)


class AccountViewSet(viewsets.ReadOnlyModelViewSet[Account]):
    """B2B accounts with their firmographic traits."""

    serializer_class = AccountSerializer
    filterset_class = AccountFilter
    queryset = selectors.account_list()


class SourceSerializer(serializers.ModelSerializer[Source]):
    class Meta:
        model = Source
        fields = [
            "id",
            "name",
            "kind",
            "write_key_prefix",
            "secret_key_prefix",
            "is_active",
            "created_at",
            "key_rotated_at",
            "secret_rotated_at",
            "cancel_page_frame_ancestors",
        ]
        read_only_fields = [
            "write_key_prefix",
            "secret_key_prefix",
            "created_at",
            "key_rotated_at",
            "secret_rotated_at",
        ]
        extra_kwargs = {
            "cancel_page_frame_ancestors": {
                "help_text": "Origins allowed to embed the hosted cancellation page of this source's sessions: https "
                "origins or 'self'; empty: it cannot be embedded. Set when creating (or on the Sources page)."
            }
        }

    def validate_cancel_page_frame_ancestors(self, value: Any) -> list[str]:
        if not isinstance(value, list):
            raise serializers.ValidationError("A list of origins.")
        try:
            return services.frame_ancestors_clean(value)
        except DjangoValidationError as invalid:
            raise serializers.ValidationError(invalid.messages) from invalid


class SourceKeysSerializer(SourceSerializer):
    """A source with the keys just made: each is in the one answer that made it, and in no other."""

    write_key = serializers.CharField(
        read_only=True, required=False, help_text="When created or the write key was rotated: store it now."
    )
    secret_key = serializers.CharField(
        read_only=True,
        required=False,
        help_text="When created or the secret key was rotated: store it now, on your servers only (it signs "
        "auth_hash and starts cancellation sessions).",
    )

    class Meta(SourceSerializer.Meta):
        fields = [*SourceSerializer.Meta.fields, "write_key", "secret_key"]


class SourceRotateSerializer(serializers.Serializer[Any]):
    key = serializers.ChoiceField(
        choices=["write", "secret"], default="write", help_text="Which key to replace (default: the write key)."
    )


def _with_keys(source: Source, **keys: str) -> dict[str, Any]:
    return {**SourceSerializer(source).data, **keys}


class SourceViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet[Source]):
    """Event sources and their keys (Admin role only). Creating answers the write key and the secret key once;
    rotating either answers the new one once."""

    serializer_class = SourceSerializer
    permission_classes = [IsAdminRole]
    queryset = Source.objects.order_by("name")
    pagination_class = None
    filter_backends: list[Any] = []

    @extend_schema(request=SourceSerializer, responses={201: SourceKeysSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = SourceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        source, write_key = services.source_create(
            name=serializer.validated_data["name"],
            kind=serializer.validated_data.get("kind", Source.Kind.TRACKING_API),
        )
        origins = serializer.validated_data.get("cancel_page_frame_ancestors")
        if origins:
            services.source_cancel_page_frame_ancestors_set(source=source, origins=origins)
        return Response(
            _with_keys(source, write_key=write_key, secret_key=source.secret_key), status=status.HTTP_201_CREATED
        )

    @extend_schema(request=SourceRotateSerializer, responses=SourceKeysSerializer)
    @action(detail=True, methods=["post"])
    def rotate(self, request: Request, pk: str | None = None) -> Response:
        """Replace the write key (the old one stops working at once) or, with `{"key": "secret"}`, the secret key
        (the previous one keeps working for 24 hours); the answer carries the new key, once."""
        source = self.get_object()
        which = SourceRotateSerializer(data=request.data)
        which.is_valid(raise_exception=True)
        if which.validated_data["key"] == "secret":
            return Response(_with_keys(source, secret_key=services.source_rotate_secret(source=source)))
        return Response(_with_keys(source, write_key=services.source_rotate_key(source=source)))
