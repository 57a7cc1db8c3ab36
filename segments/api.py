"""REST endpoints for segments: the property catalogue, preview of a draft tree, CRUD, members, evaluation,
explain, and the declared custom properties."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.api import CustomerSerializer
from audiences.models import Customer
from config.pagination import NewestFirstCursorPagination
from config.permissions import RoleModelPermissions
from config.roles import LIVE_AUDIENCE_PERMISSION
from segments import evaluation, selectors, services
from segments.audience_services import InvalidAudience, segment_live_set
from segments.catalogue import EVENT_FILTER_OPERATORS, catalogue
from segments.conditions import EVENT_OPERATORS, OPERATORS, InvalidCondition, parse_tree
from segments.live.publish import audience_key
from segments.models import CustomProperty, Segment, SegmentMembershipChange, SegmentVersion
from segments.traits.api import CustomerSummarySerializer, ViewsCustomers
from segments.usage import segment_uses


def _checked(conditions: Any, *, segment_id: int | None = None) -> Any:
    try:
        parse_tree(conditions, segment_id=segment_id)
    except InvalidCondition as invalid:
        raise ValidationError(str(invalid)) from invalid
    return conditions


class SegmentSerializer(serializers.ModelSerializer[Segment]):
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, write_only=True)
    conditions = serializers.JSONField()
    evaluation_failure = serializers.CharField(
        read_only=True, help_text="'evaluation failing since …: reason' while evaluations fail; empty otherwise."
    )

    class Meta:
        model = Segment
        fields = [
            "id",
            "name",
            "description",
            "tags",
            "conditions",
            "owner",
            "member_count",
            "last_evaluated_at",
            "last_evaluation_ms",
            "evaluation_failing_since",
            "evaluation_error",
            "evaluation_failure",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "owner",
            "member_count",
            "last_evaluated_at",
            "last_evaluation_ms",
            "evaluation_failing_since",
            "evaluation_error",
        ]

    def validate_conditions(self, value: Any) -> Any:
        return _checked(value, segment_id=self.instance.pk if isinstance(self.instance, Segment) else None)

    def to_representation(self, instance: Segment) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["tags"] = [tag.name for tag in instance.tags.all()]
        return data

    def create(self, validated_data: dict[str, Any]) -> Segment:
        request = self.context["request"]
        return services.segment_save(owner=request.user, **validated_data)

    def update(self, instance: Segment, validated_data: dict[str, Any]) -> Segment:
        return services.segment_save(
            segment=instance,
            name=validated_data.get("name", instance.name),
            description=validated_data.get("description", instance.description),
            conditions=validated_data.get("conditions", instance.conditions),
            tags=validated_data.get("tags", [tag.name for tag in instance.tags.all()]),
        )


class PreviewSerializer(serializers.Serializer[Any]):
    conditions = serializers.JSONField()

    def validate_conditions(self, value: Any) -> Any:
        return _checked(value)


class DraftSerializer(serializers.Serializer[Any]):
    conditions = serializers.JSONField()
    test_customers = serializers.ListField(child=serializers.IntegerField(), required=False)


class RestoreSerializer(serializers.Serializer[Any]):
    version = serializers.IntegerField(min_value=1)


class SegmentViewSet(viewsets.ModelViewSet[Segment]):
    """Segments; filter the list by `tag`. Saving validates the tree and names the bad leaf when it is invalid."""

    serializer_class = SegmentSerializer

    def get_queryset(self) -> QuerySet[Segment]:
        segments = Segment.objects.prefetch_related("tags").order_by("name")
        tag = self.request.query_params.get("tag")
        return segments.filter(tags__name=tag) if tag else segments

    def perform_destroy(self, instance: Segment) -> None:
        services.segment_delete(segment=instance)

    @extend_schema(request=None)
    @action(detail=False, methods=["get"])
    def catalogue(self, request: Request) -> Response:
        """Every property a condition may use, with its type and the operators that fit it."""
        return Response(
            {
                "properties": [
                    {
                        "key": spec.key,
                        "label": spec.label,
                        "group": spec.group,
                        "type": spec.value_type,
                        "choices": list(spec.choices),
                        "operators": sorted(OPERATORS[spec.value_type]),
                    }
                    for spec in catalogue()
                ],
                "event_operators": sorted(EVENT_OPERATORS),
                "event_filter_operators": sorted(EVENT_FILTER_OPERATORS),
                "segments": [{"id": pk, "name": name} for pk, name in Segment.objects.values_list("pk", "name")],
            }
        )

    @extend_schema(request=PreviewSerializer)
    @action(detail=False, methods=["post"])
    def preview(self, request: Request) -> Response:
        """Count and a sample of who a draft tree matches now; nothing is saved."""
        serializer = PreviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(selectors.segment_preview(serializer.validated_data["conditions"]))

    @extend_schema(responses=CustomerSerializer(many=True))
    @action(detail=True, methods=["get"])
    def members(self, request: Request, pk: str | None = None) -> Response:
        """The materialised members (as of the last evaluation), newest first."""
        members = selectors.segment_members(self.get_object()).prefetch_related("anonymous_ids")
        page = self.paginate_queryset(members)  # type: ignore[arg-type]  # the page holds customers, not segments
        return self.get_paginated_response(CustomerSerializer(page, many=True).data)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def evaluate(self, request: Request, pk: str | None = None) -> Response:
        """Re-evaluate now; answers how many entered and exited."""
        try:
            result = evaluation.segment_evaluate(segment=self.get_object())
        except InvalidCondition as broken:
            raise ValidationError({"conditions": [f"cannot evaluate: {broken}"]}) from broken
        return Response(result.__dict__)

    @extend_schema(request=DraftSerializer)
    @action(detail=True, methods=["get", "post", "put", "delete"])
    def draft(self, request: Request, pk: str | None = None) -> Response:
        """Test mode. GET: the saved draft compared with live. POST: compare the draft in the body, unsaved.
        PUT: save the draft (and the test customers forced into it). DELETE: discard it. The live segment and
        its membership never change here; publish does that."""
        segment = self.get_object()
        if request.method == "DELETE":
            services.segment_draft_discard(segment=segment)
            return Response(status=204)
        conditions, forced = None, None
        if request.method in ("POST", "PUT"):
            serializer = DraftSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            conditions = _checked(serializer.validated_data["conditions"], segment_id=segment.pk)
            forced = serializer.validated_data.get("test_customers", [])
        if request.method == "PUT":
            try:
                services.segment_draft_save(
                    segment=segment, conditions=conditions, test_customer_ids=forced or [], author=request.user
                )
            except services.NotATestCustomer as refused:
                raise ValidationError({"test_customers": [str(refused)]}) from refused
            conditions, forced = None, None
        comparison = selectors.segment_draft_compare(segment, conditions, forced=forced)
        uses = [use.__dict__ for use in segment_uses(segment)]
        segment.refresh_from_db()
        return Response(
            {**comparison.__dict__, "used_by": uses, "draft": segment.draft_conditions, "live": segment.conditions}
        )

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def publish(self, request: Request, pk: str | None = None) -> Response:
        """Make the saved draft live (a new version) and re-evaluate."""
        segment = self.get_object()
        if segment.draft_conditions is None:
            raise ValidationError({"draft": ["This segment has no draft to publish."]})
        result = services.segment_draft_publish(segment=segment, author=request.user)
        return Response(result.__dict__)

    @extend_schema(request=None)
    @action(detail=True, methods=["get"])
    def versions(self, request: Request, pk: str | None = None) -> Response:
        """Every published version, newest first, with its author and the lines changed since the one before."""
        return Response(
            [
                {
                    "number": item["version"].number,
                    "author": str(item["version"].author) if item["version"].author else None,
                    "created_at": item["version"].created_at,
                    "note": item["version"].note,
                    "diff": item["diff"],
                }
                for item in selectors.segment_versions(self.get_object())
            ]
        )

    @extend_schema(request=RestoreSerializer)
    @action(detail=True, methods=["post"])
    def restore(self, request: Request, pk: str | None = None) -> Response:
        """Make an earlier version current again (kept as a new version)."""
        segment = self.get_object()
        serializer = RestoreSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = get_object_or_404(SegmentVersion, segment=segment, number=serializer.validated_data["version"])
        restored = services.segment_version_restore(version=version, author=request.user)
        return Response(self.get_serializer(restored).data)

    @extend_schema(parameters=[OpenApiParameter("customer", int, required=True)])
    @action(detail=True, methods=["get"])
    def explain(self, request: Request, pk: str | None = None) -> Response:
        """For one customer: each condition's actual value and whether it held, and the overall result."""
        customer_id = request.query_params.get("customer", "")
        if not customer_id.isdigit():
            raise ValidationError({"customer": ["Give the customer's id, e.g. ?customer=42."]})
        customer = get_object_or_404(Customer, pk=int(customer_id))
        return Response(selectors.explain(self.get_object().conditions, customer))


class CustomPropertySerializer(serializers.ModelSerializer[CustomProperty]):
    class Meta:
        model = CustomProperty
        fields = ["id", "scope", "key", "label", "value_type", "created_at"]


class CustomPropertyViewSet(viewsets.ModelViewSet[CustomProperty]):
    """Customer and account traits declared with a type, usable in conditions as `trait.<key>` and
    `account.trait.<key>`."""

    serializer_class = CustomPropertySerializer
    queryset = CustomProperty.objects.order_by("scope", "key")
    pagination_class = None


# --- live audiences: size over time, entries and exits, the live switch ------------------------------------
# Routed in config/urls.py under /api/v1/segments/{id}/history/, /changes/ and /live/.


class SizePointSerializer(serializers.Serializer[Any]):
    at = serializers.DateTimeField(help_text="Start of the bucket (UTC).")
    size = serializers.IntegerField(help_text="Members at the close of the bucket.")
    entered = serializers.IntegerField()
    exited = serializers.IntegerField()


class HistoryQuerySerializer(serializers.Serializer[Any]):
    bucket = serializers.ChoiceField(choices=["hour", "day"], default="day")
    days = serializers.IntegerField(min_value=1, max_value=365, default=30)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["bucket"] == "hour" and attrs["days"] > 14:
            raise ValidationError({"days": ["Hourly history covers at most 14 days; use bucket=day."]})
        return attrs


class SegmentHistoryView(APIView):
    """A segment's member count per hour or day, from its enter/exit history (UTC buckets, oldest first)."""

    queryset = Segment.objects.none()  # the permission check reads the model (view_segment) from here

    @extend_schema(
        parameters=[OpenApiParameter("bucket", str, enum=["hour", "day"]), OpenApiParameter("days", int)],
        responses=SizePointSerializer(many=True),
    )
    def get(self, request: Request, pk: int) -> Response:
        segment = get_object_or_404(Segment, pk=pk)
        query = HistoryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        bucket, days = query.validated_data["bucket"], query.validated_data["days"]
        now = timezone.now()
        since = now - timedelta(days=days) + selectors.BUCKETS[bucket]
        points = selectors.segment_size_history(segment, since=since, until=now, bucket=bucket)
        return Response(
            {
                "segment": segment.pk,
                "bucket": bucket,
                "member_count": segment.member_count,
                "points": SizePointSerializer(points, many=True).data,
            }
        )


class MembershipChangeSerializer(serializers.ModelSerializer[SegmentMembershipChange]):
    customer = CustomerSummarySerializer(read_only=True)

    class Meta:
        model = SegmentMembershipChange
        fields = ["id", "customer", "kind", "at"]


class NewestChangeFirstPagination(NewestFirstCursorPagination):
    ordering = "-at"  # the (segment, -at) index serves it


class SegmentChangesView(APIView):
    """A segment's entries and exits, newest first (cursor-paginated); `?kind=entered|exited` for one kind."""

    queryset = Segment.objects.none()  # view_segment, plus view_customer for the customers named
    permission_classes = [RoleModelPermissions, ViewsCustomers]

    @extend_schema(
        parameters=[OpenApiParameter("kind", str, enum=SegmentMembershipChange.Kind.values)],
        responses=MembershipChangeSerializer(many=True),
    )
    def get(self, request: Request, pk: int) -> Response:
        segment = get_object_or_404(Segment, pk=pk)
        kind = request.query_params.get("kind", "")
        if kind and kind not in SegmentMembershipChange.Kind.values:
            raise ValidationError({"kind": [f"Use one of {', '.join(SegmentMembershipChange.Kind.values)}."]})
        paginator = NewestChangeFirstPagination()
        page = paginator.paginate_queryset(selectors.segment_changes(segment, kind=kind), request, view=self)
        return paginator.get_paginated_response(MembershipChangeSerializer(page, many=True).data)


class SegmentLiveSerializer(serializers.Serializer[Any]):
    is_live = serializers.BooleanField()
    audience_key = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)


class SegmentLiveStateSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    is_live = serializers.BooleanField()
    audience_key = serializers.CharField(help_text="The key as set; empty when derived from the name.")
    effective_audience_key = serializers.CharField(help_text="The key destinations see.")


class LiveAudiencePermission(BasePermission):
    """Reading the live state needs view_segment; switching it needs the live-audience permission (config.roles)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        wanted = "segments.view_segment" if request.method in SAFE_METHODS else LIVE_AUDIENCE_PERMISSION
        return bool(user.has_perm(wanted))


class SegmentLiveView(APIView):
    """Whether a segment is a live audience, and under which key. POST `{"is_live": bool, "audience_key": str}`
    switches it (an empty key derives one from the name); switching on queues a full evaluation."""

    permission_classes = [LiveAudiencePermission]

    def _state(self, segment: Segment) -> dict[str, Any]:
        return {
            "id": segment.pk,
            "name": segment.name,
            "is_live": segment.is_live,
            "audience_key": segment.audience_key,
            "effective_audience_key": audience_key(segment),
        }

    @extend_schema(request=None, responses=SegmentLiveStateSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(self._state(get_object_or_404(Segment, pk=pk)))

    @extend_schema(request=SegmentLiveSerializer, responses=SegmentLiveStateSerializer)
    def post(self, request: Request, pk: int) -> Response:
        segment = get_object_or_404(Segment, pk=pk)
        body = SegmentLiveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            saved = segment_live_set(
                segment=segment,
                is_live=body.validated_data["is_live"],
                audience_key=body.validated_data["audience_key"],
            )
        except InvalidAudience as invalid:
            raise ValidationError({invalid.field: [invalid.message]}) from invalid
        return Response(self._state(saved))
