"""One object behind every staff URL, for the role-matrix walk (config/tests/test_role_matrix.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone

from audiences.models import Account, ComputedTrait, Customer, Source
from audiences.services import source_create
from config.roles import Role
from config.tests.factories import build
from integrations.destinations.models import DestinationDelivery
from integrations.destinations.services import destination_create
from integrations.stripe.event_models import StripeEvent
from integrations.stripe.models import StripeCustomer, Subscription
from integrations.tracking.models import ImportJob, TrackingPlan
from offers.models import CancellationFlow, CancellationReason, FlowRule, Offer, OfferRule
from offers.parameters import offer_parameters_clean
from segments.models import CustomProperty
from segments.services import segment_save
from trials.loop.models import FitRule, Trial
from trials.messaging.models import MessageTemplate
from trials.plays.models import Alert, Play

TREE = {"type": "group", "operator": "and", "children": [
    {"type": "condition", "property": "subscriber.mrr", "operator": "gte", "value": 100},
]}  # fmt: skip


@dataclass
class World:
    """The objects, by what URLs call them, and one user per role (plus a second rep)."""

    objects: dict[str, models.Model]
    users: dict[Role, AbstractUser]
    other_rep: AbstractUser
    write_key: str


def build_world(make_user: Callable[..., AbstractUser]) -> World:
    users = {role: make_user(role, f"walk_{role.name.lower()}") for role in Role}
    other_rep = make_user(Role.SALES_REP, "walk_other_rep")
    source, write_key = source_create(name="Walk source")
    account = Account.objects.create(group_id="grp_walk", name="Walk Inc", owner=users[Role.SALES_REP])  # type: ignore[misc]
    customer = Customer.objects.create(user_id="usr_walk", email="walk@example.test", account=account)
    built: dict[type[models.Model], models.Model] = {Source: source, Account: account}
    segment = segment_save(name="Walkers", conditions=TREE)
    destination = destination_create(
        name="Walk hook", kind="webhook", url="http://127.0.0.1:9/hook", kinds=["audience_entered"]
    )
    built[type(destination)] = destination
    objects: dict[str, models.Model] = {
        "account": account,
        "customer": customer,
        "segment": segment,
        "destination": destination,
        "source": source,
        "delivery": build(DestinationDelivery, customer, built),
        "computed_trait": build(ComputedTrait, customer, built),
        "custom_property": build(CustomProperty, customer, built),
        "subscription": build(Subscription, customer, built),
        "trial": build(Trial, customer, built),
        "tracking_plan": build(TrackingPlan, customer, built),
        "import_job": build(ImportJob, customer, built),
        "stripe_customer": build(StripeCustomer, customer, built),
        "stripe_event": build(StripeEvent, customer, built),
        "template": MessageTemplate.objects.order_by("pk").first() or build(MessageTemplate, customer, built),
        "fit_rule": FitRule.objects.order_by("pk").first() or build(FitRule, customer, built),
        "play": Play.objects.order_by("pk").first() or build(Play, customer, built),
        "offer": Offer.objects.create(
            name="Walk discount",
            kind="trial_extension",
            parameters=offer_parameters_clean("trial_extension", {"days": 7}),
        ),
        "reason": build(CancellationReason, customer, built),
        "flow": build(CancellationFlow, customer, built),
        "offer_rule": build(OfferRule, customer, built),
        "flow_rule": build(FlowRule, customer, built),
    }
    built[Play] = objects["play"]
    objects["my_alert"] = Alert.objects.create(
        play=objects["play"],  # type: ignore[misc]
        customer=customer,
        dedup_key="walk-mine",
        assignee=users[Role.SALES_REP],
        status=Alert.Status.CLAIMED,
        due_at=timezone.now(),
        created_at=timezone.now(),
    )
    objects["others_alert"] = Alert.objects.create(
        play=objects["play"],  # type: ignore[misc]
        customer=Customer.objects.create(user_id="usr_walk_2"),
        dedup_key="walk-others",
        assignee=other_rep,
        status=Alert.Status.CLAIMED,
        due_at=timezone.now(),
        created_at=timezone.now(),
    )
    return World(objects=objects, users=users, other_rep=other_rep, write_key=write_key)


def kwargs_for(url_name: str, pattern_keys: list[str], world: World) -> dict[str, Any]:
    """The URL kwargs that name world objects, chosen by the URL's name."""
    name = url_name.split(":")[-1].removeprefix("api-")
    families = [
        ("customer-events", "customer"),
        ("alert", "my_alert"),
        ("account", "account"),
        ("segment", "segment"),
        ("computed-trait", "computed_trait"),
        ("custom-property", "custom_property"),
        ("customer", "customer"),
        ("destination", "destination"),
        ("source", "source"),
        ("subscription", "subscription"),
        ("trial", "trial"),
        ("email-template", "template"),
        ("fit-rule", "fit_rule"),
        ("import", "import_job"),
        ("play", "play"),
        ("offer-rule", "offer_rule"),
        ("flow-rule", "flow_rule"),
        ("cancellation-flow", "flow"),
        ("flow", "flow"),
        ("cancellation-reason", "reason"),
        ("reason", "reason"),
        ("offer", "offer"),
        ("stripe-customer", "stripe_customer"),
        ("stripe-event", "stripe_event"),
        ("tracking-plan", "tracking_plan"),
        ("rule-move", "offer_rule"),
    ]
    target = next((key for prefix, key in families if name.startswith(prefix) or name.endswith(prefix)), None)
    values: dict[str, Any] = {}
    for key in pattern_keys:
        if key in ("pk", "customer_pk"):
            assert target is not None, f"no world object for {url_name}"
            values[key] = world.objects[target].pk
        elif key == "delivery_pk":
            values[key] = world.objects["delivery"].pk
        elif key == "number":
            values[key] = 1
        elif key == "kind":
            values[key] = "offer"
        elif key == "table":
            values[key] = "totals"
        elif key == "action":
            values[key] = "claim"
        else:
            raise AssertionError(f"no value for {key} in {url_name}")
    return values
