"""The staff REST API for offers, cancellation reasons, flows, offer rules and flow rules.

    /api/v1/offers/              /api/v1/cancellation-reasons/     /api/v1/cancellation-flows/
    /api/v1/offer-rules/         /api/v1/flow-rules/

Each is list / retrieve / create (POST) / update (PUT, PATCH) / delete. The body is validated by the very forms
the staff pages use (`offers.forms`) and saved by the same services, so the API and the UI cannot disagree on
what is valid: a JSON body is turned into the form's input, PATCH starting from the object's current values.
Permissions are the roles' model permissions (`config.roles`: every role reads; Admin, Growth and CS manage —
what the staff pages enforce). Rules and flows are created as drafts unless `is_draft` is sent, an edit keeps
the draft flag as it is, and `POST …/{id}/publish/` makes one live — the same draft switch as the UI's.
Deleting an object still used (an offer presented in a session, a flow with sessions or rules) answers 409
`in_use`: archive it instead with `PATCH {"is_active": false}`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

from django import forms
from django.db import transaction
from django.db.models import ProtectedError, QuerySet
from django.http import QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from offers import configuration, selectors
from offers.forms import FlowForm, FlowRuleForm, OfferForm, OfferRuleForm, ReasonForm
from offers.models import CancellationFlow, CancellationReason, FlowRule, Offer, OfferRule
from offers.parameters import offer_summary


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def offer_json(offer: Offer) -> dict[str, Any]:
    """An offer as the staff API answers it."""
    return {
        "id": offer.pk,
        "name": offer.name,
        "kind": offer.kind,
        "parameters": offer.parameters,
        "summary": offer_summary(offer.kind, offer.parameters),
        "headline": offer.headline,
        "body": offer.body,
        "tags": sorted(tag.name for tag in offer.tags.all()),
        "is_active": offer.is_active,
        "created_at": _iso(offer.created_at),
        "updated_at": _iso(offer.updated_at),
    }


def reason_json(reason: CancellationReason) -> dict[str, Any]:
    """A cancellation reason as the staff API answers it."""
    return {
        "id": reason.pk,
        "label": reason.label,
        "stripe_feedback": reason.stripe_feedback,
        "position": reason.position,
        "is_active": reason.is_active,
    }


def flow_json(flow: CancellationFlow) -> dict[str, Any]:
    """A cancellation flow as the staff API answers it (reasons and feedback reasons as ids)."""
    # The fields the staff page edits (FlowForm), so the page and the API cannot drift apart.
    data: dict[str, Any] = {"id": flow.pk, **{field: getattr(flow, field) for field in FlowForm.Meta.fields}}
    data["reasons"] = [reason.pk for reason in flow.reasons.all()]
    data["feedback_reasons"] = [reason.pk for reason in flow.feedback_reasons.all()]
    return data


def offer_rule_json(rule: OfferRule) -> dict[str, Any]:
    """An offer rule as the staff API answers it, with its weighted offers."""
    return {
        "id": rule.pk,
        "name": rule.name,
        "position": rule.position,
        "applies_to": rule.applies_to,
        "segments": [segment.pk for segment in rule.segments.all()],
        "reasons": [reason.pk for reason in rule.reasons.all()],
        "offers": [{"offer": entry.offer_id, "weight": entry.weight} for entry in rule.weighted_offers.all()],
        "no_offer": rule.no_offer,
        "allow_repeat": rule.allow_repeat,
        "repeat_window_days": rule.repeat_window_days,
        "is_active": rule.is_active,
        "is_draft": rule.is_draft,
    }


def flow_rule_json(rule: FlowRule) -> dict[str, Any]:
    """A flow rule as the staff API answers it."""
    return {
        "id": rule.pk,
        "name": rule.name,
        "position": rule.position,
        "flow": rule.flow_id,
        "segments": [segment.pk for segment in rule.segments.all()],
        "is_active": rule.is_active,
        "is_draft": rule.is_draft,
    }


def _form_errors(form: forms.BaseForm) -> dict[str, list[str]]:
    """The form's errors keyed by field (`non_field_errors` for the whole form), as DRF answers them."""
    return {
        ("non_field_errors" if field == "__all__" else field): [str(message) for message in messages]
        for field, messages in form.errors.items()
    }


class FormBackedViewSet(viewsets.GenericViewSet[Any]):
    """CRUD whose writes go through a staff-page form (validation) and an offers service (saving).

    Subclasses say how an object reads as input (`current_input`, the shape of the JSON body), how to build the form
    from such input and save it, and how an object is answered (`as_json`).
    """

    pagination_class = None  # a handful of configuration objects; rules come back in the order they are tried
    draft_default: ClassVar[bool | None] = None  # created as drafts unless the body says otherwise

    def as_json(self, instance: Any) -> dict[str, Any]:
        raise NotImplementedError

    def current_input(self, instance: Any) -> dict[str, Any]:
        raise NotImplementedError

    def build_form(self, data: dict[str, Any], instance: Any) -> forms.BaseForm:
        raise NotImplementedError

    def save(self, form: Any, instance: Any) -> Any:
        raise NotImplementedError

    def _body(self, request: Request) -> dict[str, Any]:
        # A form-encoded body parses to a QueryDict (a dict of lists): refused rather than saved as lists.
        if not isinstance(request.data, dict) or isinstance(request.data, QueryDict):
            raise ValidationError({"non_field_errors": ["The body must be a JSON object (application/json)."]})
        return dict(request.data)

    def _write(self, request: Request, instance: Any, *, partial: bool) -> Any:
        body = self._body(request)
        data = self.current_input(instance) if (instance is not None and partial) else {}
        if instance is None and self.draft_default is not None:
            data["is_draft"] = self.draft_default
        elif instance is not None and self.draft_default is not None and "is_draft" not in body:
            data["is_draft"] = instance.is_draft  # an edit, PUT or PATCH, never publishes or unpublishes by omission
        data.update(body)
        form = self.build_form(data, instance)
        if not form.is_valid():
            raise ValidationError(_form_errors(form))
        try:
            return self.save(form, instance)
        except ValueError as refused:  # the service's own checks (forms catch these first; kept as a net)
            raise ValidationError({"non_field_errors": [str(refused)]}) from refused

    @extend_schema(responses={200: serializers.ListSerializer(child=serializers.DictField())})
    def list(self, request: Request) -> Response:
        return Response([self.as_json(instance) for instance in self.get_queryset()])

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(self.as_json(self.get_object()))

    @extend_schema(request=OpenApiTypes.OBJECT, responses={201: OpenApiTypes.OBJECT})
    def create(self, request: Request) -> Response:
        saved = self._write(request, None, partial=False)
        return Response(self.as_json(self.get_queryset().get(pk=saved.pk)), status=status.HTTP_201_CREATED)

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT})
    def update(self, request: Request, pk: str | None = None) -> Response:
        saved = self._write(request, self.get_object(), partial=False)
        return Response(self.as_json(self.get_queryset().get(pk=saved.pk)))

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        saved = self._write(request, self.get_object(), partial=True)
        return Response(self.as_json(self.get_queryset().get(pk=saved.pk)))

    @extend_schema(responses={204: None, 409: OpenApiTypes.OBJECT})
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        instance = self.get_object()
        blocker = self.in_use(instance)
        if blocker:
            return Response(
                {"error": f"{instance} is {blocker}; archive it instead (PATCH is_active=false).", "code": "in_use"},
                status=status.HTTP_409_CONFLICT,
            )
        try:
            with transaction.atomic():
                instance.delete()
        except ProtectedError:
            return Response(
                {"error": f"{instance} is still referenced; archive it instead.", "code": "in_use"},
                status=status.HTTP_409_CONFLICT,
            )
        return Response(status=status.HTTP_204_NO_CONTENT)

    def in_use(self, instance: Any) -> str:
        """Why the object may not be deleted ("" when it may)."""
        return ""

    def _require_change(self, request: Request) -> None:
        model = self.get_queryset().model
        if not request.user.has_perm(f"offers.change_{model._meta.model_name}"):
            raise PermissionDenied("Your role does not allow changing these.")


def _ids(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValidationError({field: ["A list of ids is required."]})
    return value


class OfferViewSet(FormBackedViewSet):
    """Offers: `parameters` is a JSON object checked for the kind (see docs/offers.md), `tags` a list."""

    queryset = Offer.objects.none()

    def get_queryset(self) -> QuerySet[Offer]:
        return selectors.offer_list()

    def as_json(self, instance: Offer) -> dict[str, Any]:
        return offer_json(instance)

    def current_input(self, instance: Offer) -> dict[str, Any]:
        return {
            "name": instance.name,
            "kind": instance.kind,
            "parameters": instance.parameters,
            "headline": instance.headline,
            "body": instance.body,
            "tags": [tag.name for tag in instance.tags.all()],
            "is_active": instance.is_active,
        }

    def build_form(self, data: dict[str, Any], instance: Offer | None) -> forms.BaseForm:
        data = {"is_active": True, **data}
        if "parameters" in data and not isinstance(data["parameters"], str):
            data["parameters"] = json.dumps(data["parameters"])
        if isinstance(data.get("tags"), list):
            data["tags"] = ", ".join(str(tag) for tag in data["tags"])
        return OfferForm(data, offer=instance)

    def save(self, form: Any, instance: Offer | None) -> Offer:
        return configuration.offer_save(offer=instance, **form.cleaned_data)

    def in_use(self, instance: Offer) -> str:
        if instance.rule_entries.exists():
            return "offered by an offer rule"
        if instance.offered_sessions.exists() or instance.accepted_sessions.exists():
            return "recorded in cancellation sessions"
        return ""


class ReasonViewSet(FormBackedViewSet):
    """Cancellation reasons (the answers flows ask for, each mapped to Stripe's feedback value)."""

    queryset = CancellationReason.objects.none()

    def get_queryset(self) -> QuerySet[CancellationReason]:
        return CancellationReason.objects.order_by("position", "pk")

    def as_json(self, instance: CancellationReason) -> dict[str, Any]:
        return reason_json(instance)

    def current_input(self, instance: CancellationReason) -> dict[str, Any]:
        return {key: value for key, value in reason_json(instance).items() if key != "id"}

    def build_form(self, data: dict[str, Any], instance: CancellationReason | None) -> forms.BaseForm:
        return ReasonForm({"is_active": True, "position": 0, "stripe_feedback": "other", **data}, instance=instance)

    def save(self, form: Any, instance: CancellationReason | None) -> CancellationReason:
        reason: CancellationReason = form.save()  # plain fields, as on the staff page
        return reason

    def in_use(self, instance: CancellationReason) -> str:
        return "the answer of cancellation sessions" if instance.sessions.exists() else ""


class FlowViewSet(FormBackedViewSet):
    """Cancellation flows; `reasons` and `feedback_reasons` are lists of reason ids."""

    queryset = CancellationFlow.objects.none()
    draft_default = True

    def get_queryset(self) -> QuerySet[CancellationFlow]:
        return selectors.flow_list()

    def as_json(self, instance: CancellationFlow) -> dict[str, Any]:
        return flow_json(instance)

    def current_input(self, instance: CancellationFlow) -> dict[str, Any]:
        return {key: value for key, value in flow_json(instance).items() if key != "id"}

    def build_form(self, data: dict[str, Any], instance: CancellationFlow | None) -> forms.BaseForm:
        defaults = {"is_active": True, "ask_feedback": True, "brand_color": "#2f54eb"}
        return FlowForm({**defaults, **data}, instance=instance)

    def save(self, form: Any, instance: CancellationFlow | None) -> CancellationFlow:
        flow: CancellationFlow = form.save()  # plain fields and the reasons, as on the staff page
        return flow

    def in_use(self, instance: CancellationFlow) -> str:
        if instance.sessions.exists():
            return "the flow of cancellation sessions"
        if instance.rules.exists():
            return "chosen by flow rules"
        return ""

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def publish(self, request: Request, pk: str | None = None) -> Response:
        """Make the draft flow live (live customers' sessions may use it from now on)."""
        self._require_change(request)
        flow = self.get_object()
        configuration.draft_publish(flow)
        return Response(self.as_json(self.get_queryset().get(pk=flow.pk)))


class ReorderMixin(FormBackedViewSet):
    """`POST …/reorder/ {"ids": [...]}`: every rule's id, in the order they should be tried."""

    rule_model: ClassVar[type[OfferRule] | type[FlowRule]]

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT})
    @action(detail=False, methods=["post"])
    def reorder(self, request: Request) -> Response:
        """Give the rules the order sent (the first match wins, so order is policy)."""
        self._require_change(request)
        ids = _ids(self._body(request).get("ids"), "ids")
        existing = set(self.rule_model.objects.values_list("pk", flat=True))
        if not all(isinstance(pk, int) for pk in ids) or len(set(ids)) != len(ids) or set(ids) != existing:
            raise ValidationError({"ids": ["Send every rule's id exactly once."]})
        configuration.rules_reorder(model=self.rule_model, ordered_ids=ids)
        return Response([self.as_json(rule) for rule in self.get_queryset()])

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def publish(self, request: Request, pk: str | None = None) -> Response:
        """Make the draft rule live (it is tried for live customers from now on)."""
        self._require_change(request)
        rule = self.get_object()
        configuration.draft_publish(rule)
        return Response(self.as_json(self.get_queryset().get(pk=rule.pk)))


class OfferRuleViewSet(ReorderMixin):
    """Offer rules in the order they are tried; `offers` is a list of `{"offer": id, "weight": n}`."""

    queryset = OfferRule.objects.none()
    rule_model = OfferRule
    draft_default = True

    def get_queryset(self) -> QuerySet[OfferRule]:
        return selectors.offer_rule_list()

    def as_json(self, instance: OfferRule) -> dict[str, Any]:
        return offer_rule_json(instance)

    def current_input(self, instance: OfferRule) -> dict[str, Any]:
        data = {key: value for key, value in offer_rule_json(instance).items() if key not in ("id", "position")}
        # As on the staff page, an archived offer drops out of the rule when it is next saved.
        data["offers"] = [
            {"offer": entry.offer_id, "weight": entry.weight}
            for entry in instance.weighted_offers.all()
            if entry.offer.is_active
        ]
        return data

    def build_form(self, data: dict[str, Any], instance: OfferRule | None) -> forms.BaseForm:
        data = {"is_active": True, "repeat_window_days": 90, **data}
        weights = _weights(data.pop("offers", []))
        form = OfferRuleForm(data, rule=instance)
        known = {offer.pk for _, offer in form.offer_fields}
        unknown = sorted(set(weights) - known)
        if unknown:
            raise ValidationError({"offers": [f"No active offer {', '.join(map(str, unknown))}."]})
        form.data = {**form.data, **{f"weight_{offer_id}": weight for offer_id, weight in weights.items()}}
        return form

    def save(self, form: Any, instance: OfferRule | None) -> OfferRule:
        return configuration.offer_rule_save_cleaned(rule=instance, data=form.cleaned_data)


def _weights(entries: Any) -> dict[int, Any]:
    """`[{"offer": id, "weight": n}, …]` → {id: n}; a malformed entry is a 400 naming `offers`."""
    if not isinstance(entries, Sequence) or isinstance(entries, str):
        raise ValidationError({"offers": ['A list of {"offer": id, "weight": n} is required.']})
    weights: dict[int, Any] = {}
    for entry in entries:
        offer_id = entry.get("offer") if isinstance(entry, dict) else None
        if not isinstance(offer_id, int) or isinstance(offer_id, bool) or offer_id in weights:
            raise ValidationError({"offers": ['Each entry is {"offer": <id>, "weight": <n ≥ 1>}, an offer once.']})
        weight = entry.get("weight", 1)
        if not isinstance(weight, int) or isinstance(weight, bool) or weight < 1:
            raise ValidationError({"offers": [f"Offer {offer_id}: the weight is a whole number of at least 1."]})
        weights[offer_id] = weight
    return weights


class FlowRuleViewSet(ReorderMixin):
    """Flow rules in the order they are tried; `flow` is a flow id, `segments` a list of segment ids."""

    queryset = FlowRule.objects.none()
    rule_model = FlowRule
    draft_default = True

    def get_queryset(self) -> QuerySet[FlowRule]:
        return selectors.flow_rule_list()

    def as_json(self, instance: FlowRule) -> dict[str, Any]:
        return flow_rule_json(instance)

    def current_input(self, instance: FlowRule) -> dict[str, Any]:
        return {key: value for key, value in flow_rule_json(instance).items() if key not in ("id", "position")}

    def build_form(self, data: dict[str, Any], instance: FlowRule | None) -> forms.BaseForm:
        return FlowRuleForm({"is_active": True, **data}, instance=instance)

    def save(self, form: Any, instance: FlowRule | None) -> FlowRule:
        return configuration.flow_rule_save_cleaned(rule=instance, data=form.cleaned_data)


STAFF_ROUTES: list[tuple[str, type[FormBackedViewSet], str]] = [
    ("offers", OfferViewSet, "offer"),
    ("cancellation-reasons", ReasonViewSet, "cancellation-reason"),
    ("cancellation-flows", FlowViewSet, "cancellation-flow"),
    ("offer-rules", OfferRuleViewSet, "offer-rule"),
    ("flow-rules", FlowRuleViewSet, "flow-rule"),
]
"""(prefix, viewset, basename) for the API router in config/urls.py."""
