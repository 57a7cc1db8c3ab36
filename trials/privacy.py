"""What GDPR erasure (audiences.privacy) needs from the trials app: the Stripe ids and emails a person is known
by, their Stripe customers that are not linked to them, and the call-prep briefs of teammates that list them."""

from __future__ import annotations

from typing import Any

from django.db import models

from audiences.models import Customer
from audiences.privacy.rules import Action, ErasureRule, redacted_row
from audiences.privacy.traces import PersonTraces, Traces
from integrations.stripe.models import Charge, StripeCustomer
from trials.plays.models import Alert


def stripe_traces(customer: Customer) -> Traces:
    """The person's Stripe customers (ids, emails, names) and charge ids (a dispute event names only the charge)."""
    found = Traces(tagged={"stripe_customer_ids": set(), "stripe_charge_ids": set()})
    for stripe_id, email, name in StripeCustomer.objects.filter(customer=customer).values_list(
        "stripe_customer_id", "email", "name"
    ):
        found.ids |= {stripe_id, email}
        found.names.add(name)
        found.tagged["stripe_customer_ids"].add(stripe_id)
    found.tagged["stripe_charge_ids"] |= set(
        Charge.objects.filter(customer=customer).values_list("stripe_charge_id", flat=True)
    )
    return found


def _stripe_customers_owned(traces: PersonTraces) -> models.QuerySet[Any]:
    """Their Stripe customers, linked or not (a link can have been refused while the profile kept the id)."""
    return StripeCustomer.objects.filter(stripe_customer_id__in=traces.tag("stripe_customer_ids"))


def _stripe_customers_unlinked(traces: PersonTraces) -> models.QuerySet[Any]:
    return StripeCustomer.objects.filter(customer__isnull=True)


def _teammates_alerts(traces: PersonTraces) -> models.QuerySet[Any]:
    """Alerts of the person's colleagues: their frozen briefs list the account's members."""
    if traces.account_id is None:
        return Alert.objects.none()
    return Alert.objects.filter(customer__account_id=traces.account_id).exclude(customer_id=traces.customer_pk)


def _brief_without_teammate(row: models.Model, traces: PersonTraces) -> dict[str, Any]:
    """A colleague's alert: the person leaves its brief's teammates (title and activity would still tell who
    they were), and any other mention is redacted."""
    assert isinstance(row, Alert)
    brief = row.brief if isinstance(row.brief, dict) else {}
    teammates = brief.get("teammates")
    if isinstance(teammates, list):
        kept = [mate for mate in teammates if not (isinstance(mate, dict) and mate.get("id") == traces.customer_pk)]
        if len(kept) != len(teammates):
            row.brief = {**brief, "teammates": kept}
            return {**redacted_row(row, traces), "brief": traces.redact_json(row.brief)}
    return redacted_row(row, traces)


ERASURE_RULES = [
    ErasureRule(
        "integrations.StripeCustomer",
        action=Action.DELETE,
        owned=_stripe_customers_owned,
        searched=_stripe_customers_unlinked,
    ),
    ErasureRule("trials.Alert", searched=_teammates_alerts, redact=_brief_without_teammate),
]
