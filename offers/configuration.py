"""Writes of the offers' configuration — offers, offer and flow rules, their order and publication — one service
each, called by the staff pages and the staff API alike, so every change is validated and audited the same way;
and what the segments' "used by" lists show of them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import transaction
from django.urls import reverse

from offers.models import (
    CancellationFlow,
    CancellationReason,
    FlowRule,
    Offer,
    OfferRule,
    OfferRuleOffer,
    OfferTag,
)
from offers.parameters import offer_parameters_clean
from segments.models import Segment
from segments.usage import SegmentUse


@transaction.atomic
def offer_save(
    *,
    offer: Offer | None = None,
    name: str,
    kind: str,
    parameters: Any,
    headline: str = "",
    body: str = "",
    tags: Iterable[str] = (),
    is_active: bool = True,
) -> Offer:
    """Create or update an offer; parameters are checked for the kind (InvalidOfferParameters when wrong)."""
    cleaned = offer_parameters_clean(kind, parameters)
    offer = offer or Offer()
    offer.name, offer.kind, offer.parameters = name, kind, cleaned
    offer.headline, offer.body, offer.is_active = headline, body, is_active
    offer.full_clean(exclude=["parameters"])
    offer.save()
    tag_objects = [OfferTag.objects.get_or_create(name=tag.strip())[0] for tag in tags if tag.strip()]
    offer.tags.set(tag_objects)
    return offer


@transaction.atomic
def offer_rule_save(
    *,
    rule: OfferRule | None = None,
    name: str = "",
    position: int | None = None,
    segments: Sequence[Segment] = (),
    reasons: Sequence[CancellationReason] = (),
    offers: Sequence[tuple[Offer, int]] = (),
    no_offer: bool = False,
    allow_repeat: bool = False,
    repeat_window_days: int = 90,
    is_active: bool = True,
    is_draft: bool = True,
    applies_to: str = OfferRule.AppliesTo.CANCELLATION,
) -> OfferRule:
    """Create or update an offer rule with its segments, reasons and weighted offers (at the end when new).

    A rule either shows no offer or names at least one; weights must be positive. A win-back rule
    (`applies_to=win_back`) is tried in win-back sessions only, where no reason is asked.
    """
    if no_offer and offers:
        raise ValueError("A 'no offer' rule cannot also name offers.")
    if not no_offer and not offers:
        raise ValueError("Name at least one offer, or choose 'no offer'.")
    if any(weight < 1 for _, weight in offers):
        raise ValueError("Weights must be at least 1.")
    if repeat_window_days < 1:
        raise ValueError("The repeat window is at least one day.")
    rule = rule or OfferRule()
    if position is None and rule.pk is None:
        last = OfferRule.objects.order_by("-position").values_list("position", flat=True).first()
        position = (last or 0) + 1
    if position is not None:
        rule.position = position
    rule.name, rule.no_offer, rule.allow_repeat = name, no_offer, allow_repeat
    rule.repeat_window_days, rule.is_active, rule.is_draft = repeat_window_days, is_active, is_draft
    if applies_to not in OfferRule.AppliesTo.values:
        raise ValueError(f"Unknown applies_to {applies_to!r}.")
    rule.applies_to = applies_to
    rule.save()
    rule.segments.set(segments)
    rule.reasons.set(reasons)
    OfferRuleOffer.objects.filter(rule=rule).delete()
    OfferRuleOffer.objects.bulk_create(OfferRuleOffer(rule=rule, offer=offer, weight=w) for offer, w in offers)
    return rule


@transaction.atomic
def flow_rule_save(
    *,
    rule: FlowRule | None = None,
    flow: CancellationFlow,
    name: str = "",
    position: int | None = None,
    segments: Sequence[Segment] = (),
    is_active: bool = True,
    is_draft: bool = True,
) -> FlowRule:
    """Create or update a flow rule (at the end of the list when new)."""
    rule = rule or FlowRule()
    if position is None and rule.pk is None:
        last = FlowRule.objects.order_by("-position").values_list("position", flat=True).first()
        position = (last or 0) + 1
    if position is not None:
        rule.position = position
    rule.flow, rule.name, rule.is_active, rule.is_draft = flow, name, is_active, is_draft
    rule.save()
    rule.segments.set(segments)
    return rule


@transaction.atomic
def offer_rule_save_cleaned(*, rule: OfferRule | None, data: dict[str, Any]) -> OfferRule:
    """offer_rule_save from a validated OfferRuleForm's cleaned data: the page and the staff API save alike."""
    return offer_rule_save(
        rule=rule,
        name=data["name"],
        segments=list(data["segments"]),
        reasons=list(data["reasons"]),
        offers=data["offers"],
        no_offer=data["no_offer"],
        allow_repeat=data["allow_repeat"],
        repeat_window_days=data["repeat_window_days"],
        is_active=data["is_active"],
        is_draft=data["is_draft"],
        applies_to=data["applies_to"] or OfferRule.AppliesTo.CANCELLATION,
    )


def flow_rule_save_cleaned(*, rule: FlowRule | None, data: dict[str, Any]) -> FlowRule:
    """flow_rule_save from a validated FlowRuleForm's cleaned data: the page and the staff API save alike."""
    return flow_rule_save(
        rule=rule,
        flow=data["flow"],
        name=data["name"],
        segments=list(data["segments"]),
        is_active=data["is_active"],
        is_draft=data["is_draft"],
    )


def rules_reorder(*, model: type[OfferRule] | type[FlowRule], ordered_ids: Sequence[int]) -> None:
    """Give rules the positions 1, 2, 3… in the order given (the first match wins, so order is the policy).

    Each moved rule is saved on its own, not updated in bulk, so the audit log records every change of order."""
    rules = model.objects.in_bulk(ordered_ids)
    for position, rule_id in enumerate(ordered_ids, start=1):
        rule = rules[rule_id]
        if rule.position != position:
            rule.position = position
            rule.save(update_fields=["position", "updated_at"])


def draft_publish(item: CancellationFlow | OfferRule | FlowRule) -> None:
    """Make a draft flow or rule live (used for live customers from now on), from any door: the staff page's form,
    the staff API's publish action. Saved, never updated in bulk, so the audit log records who published it."""
    if item.is_draft:
        item.is_draft = False
        item.save(update_fields=["is_draft", "updated_at"])


def segment_uses_in_offers(segment: Segment) -> list[SegmentUse]:
    """The active offer and flow rules that read a segment, for the segment editor's test-mode warning."""
    uses: list[SegmentUse] = []
    for offer_rule in OfferRule.objects.filter(segments=segment, is_active=True).order_by("position", "pk"):
        mode = "draft" if offer_rule.is_draft else "live"
        uses.append(SegmentUse(kind=f"offer rule ({mode})", name=str(offer_rule), url=reverse("offers:rule-list")))
    for flow_rule in FlowRule.objects.filter(segments=segment, is_active=True).select_related("flow"):
        mode = "draft" if flow_rule.is_draft else "live"
        uses.append(SegmentUse(kind=f"flow rule ({mode})", name=str(flow_rule), url=reverse("offers:rule-list")))
    return uses
