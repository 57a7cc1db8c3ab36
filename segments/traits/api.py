"""REST endpoints for computed traits: definitions (CRUD through the engine's computed_trait_save), the customers
holding a value, and the recent value changes.

Invalid definitions come back as a 400 naming the field, in the project's error shape:
`{"error": "where: where[0]: ...", "details": {"where": ["where[0]: ..."]}}`.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.models import ComputedTrait, ComputedTraitChange, ComputedTraitValue, Customer
from config.pagination import NewestFirstCursorPagination
from config.permissions import RoleModelPermissions
from segments.traits import selectors
from segments.traits.definitions import InvalidTrait
from segments.traits.services import TraitInUse, computed_trait_delete, computed_trait_save

DEFINITION_FIELDS = (
    "key", "name", "description", "kind", "event", "property", "where", "window_days", "since_trial_start",
)  # fmt: skip


class CustomerSummarySerializer(serializers.ModelSerializer[Customer]):
    class Meta:
        model = Customer
        fields = ["id", "user_id", "email", "name"]


class ComputedTraitSerializer(serializers.ModelSerializer[ComputedTrait]):
    """A definition with its backfill progress; writes go through computed_trait_save, which checks the fields
    together (which kinds need a property, the filters, the window) and names the bad one."""

    where = serializers.JSONField(required=False, help_text="Event property filters, as in segment event conditions.")
    window_days = serializers.IntegerField(required=False, allow_null=True, help_text="Last N days; null: all time.")
    since_trial_start = serializers.BooleanField(
        required=False, help_text="Only events since the current trial started (instead of window_days)."
    )
    customers_with_value = serializers.IntegerField(read_only=True)
    backfill_percent = serializers.SerializerMethodField()

    class Meta:
        model = ComputedTrait
        fields = [
            "id",
            *DEFINITION_FIELDS,
            "customers_with_value",
            "backfill_status",
            "backfill_total",
            "backfill_done",
            "backfill_percent",
            "backfill_started_at",
            "backfill_finished_at",
            "backfill_error",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "backfill_status",
            "backfill_total",
            "backfill_done",
            "backfill_started_at",
            "backfill_finished_at",
            "backfill_error",
        ]
        # Uniqueness of the key is decided by the database in computed_trait_save, not by a racy pre-check.
        extra_kwargs: dict[str, dict[str, Any]] = {"key": {"validators": []}}

    def get_backfill_percent(self, trait: ComputedTrait) -> int:
        if trait.backfill_status == ComputedTrait.Backfill.DONE:
            return 100
        return min(100, round(trait.backfill_done * 100 / trait.backfill_total)) if trait.backfill_total else 0

    def _save(self, trait: ComputedTrait | None, data: dict[str, Any]) -> ComputedTrait:
        try:
            saved = computed_trait_save(trait=trait, **data)
        except InvalidTrait as invalid:
            raise ValidationError({invalid.field: [invalid.message]}) from invalid
        return selectors.computed_trait_list().get(pk=saved.pk)

    def create(self, validated_data: dict[str, Any]) -> ComputedTrait:
        return self._save(None, validated_data)

    def update(self, instance: ComputedTrait, validated_data: dict[str, Any]) -> ComputedTrait:
        current = {field: getattr(instance, field) for field in DEFINITION_FIELDS}
        return self._save(instance, {**current, **validated_data})


class ComputedTraitValueSerializer(serializers.ModelSerializer[ComputedTraitValue]):
    customer = CustomerSummarySerializer(read_only=True)

    class Meta:
        model = ComputedTraitValue
        fields = ["customer", "value", "updated_at"]


class ComputedTraitChangeSerializer(serializers.ModelSerializer[ComputedTraitChange]):
    customer = CustomerSummarySerializer(read_only=True)

    class Meta:
        model = ComputedTraitChange
        fields = ["id", "customer", "old", "new", "at"]


class ByKeyPagination(NewestFirstCursorPagination):
    ordering = "key"


class NewestCustomerFirstPagination(NewestFirstCursorPagination):
    ordering = "-customer_id"  # the (trait, customer) unique index serves it


class NewestChangeFirstPagination(NewestFirstCursorPagination):
    ordering = "-at"  # the (trait, -at) index serves it


class ViewsCustomers(BasePermission):
    """Lists that name customers also need the permission to see customers."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        return bool(request.user and request.user.has_perm("audiences.view_customer"))


class TraitInUseConflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "in_use"


class ComputedTraitViewSet(viewsets.ModelViewSet[ComputedTrait]):
    """Computed trait definitions by key. Creating one, or changing what it computes, starts a backfill from
    history; follow it with `backfill_status` and `backfill_done` / `backfill_total`."""

    serializer_class = ComputedTraitSerializer
    pagination_class = ByKeyPagination
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[ComputedTrait]:
        return selectors.computed_trait_list()

    def perform_destroy(self, instance: ComputedTrait) -> None:
        try:
            computed_trait_delete(trait=instance)
        except TraitInUse as in_use:
            raise TraitInUseConflict(str(in_use)) from in_use

    @extend_schema(responses=ComputedTraitValueSerializer(many=True))
    @action(detail=True, methods=["get"], permission_classes=[RoleModelPermissions, ViewsCustomers])
    def values(self, request: Request, pk: str | None = None) -> Response:
        """The customers holding a value, newest customers first (cursor-paginated)."""
        paginator = NewestCustomerFirstPagination()
        page = paginator.paginate_queryset(selectors.computed_trait_values(self.get_object()), request, view=self)
        return paginator.get_paginated_response(ComputedTraitValueSerializer(page, many=True).data)

    @extend_schema(responses=ComputedTraitChangeSerializer(many=True))
    @action(detail=True, methods=["get"], permission_classes=[RoleModelPermissions, ViewsCustomers])
    def changes(self, request: Request, pk: str | None = None) -> Response:
        """Value changes (old → new, when, who), newest first (cursor-paginated)."""
        paginator = NewestChangeFirstPagination()
        page = paginator.paginate_queryset(selectors.computed_trait_changes(self.get_object()), request, view=self)
        return paginator.get_paginated_response(ComputedTraitChangeSerializer(page, many=True).data)
