"""The parameters of each offer kind: checked when an offer is saved, never at the moment a customer accepts.

Each kind takes a small dict (stored in `Offer.parameters`); `offer_parameters_clean` returns the normalised
form or raises `InvalidOfferParameters` naming the bad field:

| kind | parameters |
|---|---|
| discount | `percent_off` (0 < p ≤ 100) **or** `amount_off_cents` (> 0) with `currency`; `duration` once /
  repeating / forever; `duration_in_months` (repeating only); `existing_coupon` replace / keep |
| trial_extension | `days` (1–365) |
| pause | `unit` days / weeks / months with `count` (≥ 1), **or** `until` (an ISO date) |
| plan_change | `plan_id` (a Plan with a Stripe price); `proration_behavior` create_prorations / none / always_invoice |
| redirect | `url` (http or https); optional `label` |
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from django.utils.translation import gettext, gettext_lazy

from integrations.stripe.models import Plan

DURATIONS = ("once", "repeating", "forever")
EXISTING_COUPON = ("replace", "keep")
PAUSE_UNITS = ("days", "weeks", "months")
PRORATION_BEHAVIORS = ("create_prorations", "none", "always_invoice")


class InvalidOfferParameters(ValueError):
    """The parameters do not fit the offer's kind; the message names the field."""


def _positive_int(params: dict[str, Any], name: str, *, maximum: int | None = None) -> int:
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidOfferParameters(f"{name}: a whole number is required.")
    try:
        number = int(value)
    except ValueError:
        raise InvalidOfferParameters(f"{name}: a whole number is required.") from None
    if number < 1 or (maximum is not None and number > maximum):
        limit = f" and at most {maximum}" if maximum is not None else ""
        raise InvalidOfferParameters(f"{name}: must be at least 1{limit}.")
    return number


def _choice(params: dict[str, Any], name: str, choices: tuple[str, ...], default: str | None = None) -> str:
    value = params.get(name, default)
    if value not in choices:
        raise InvalidOfferParameters(f"{name}: one of {', '.join(choices)}.")
    return str(value)


def _discount(params: dict[str, Any]) -> dict[str, Any]:
    has_percent = params.get("percent_off") not in (None, "")
    has_amount = params.get("amount_off_cents") not in (None, "")
    if has_percent == has_amount:
        raise InvalidOfferParameters("percent_off or amount_off_cents: give exactly one.")
    cleaned: dict[str, Any] = {}
    if has_percent:
        try:
            percent = Decimal(str(params["percent_off"]))
        except InvalidOperation:
            raise InvalidOfferParameters("percent_off: a number is required.") from None
        if not Decimal(0) < percent <= Decimal(100):
            raise InvalidOfferParameters("percent_off: more than 0 and at most 100.")
        cleaned["percent_off"] = float(percent)
    else:
        cleaned["amount_off_cents"] = _positive_int(params, "amount_off_cents")
        currency = str(params.get("currency") or "").lower()
        if len(currency) != 3 or not currency.isalpha():
            raise InvalidOfferParameters("currency: a three-letter ISO code is required with amount_off_cents.")
        cleaned["currency"] = currency
    cleaned["duration"] = _choice(params, "duration", DURATIONS)
    if cleaned["duration"] == "repeating":
        cleaned["duration_in_months"] = _positive_int(params, "duration_in_months", maximum=36)
    cleaned["existing_coupon"] = _choice(params, "existing_coupon", EXISTING_COUPON, default="replace")
    return cleaned


def _trial_extension(params: dict[str, Any]) -> dict[str, Any]:
    return {"days": _positive_int(params, "days", maximum=365)}


def _pause(params: dict[str, Any]) -> dict[str, Any]:
    if params.get("until") not in (None, ""):
        if "unit" in params or "count" in params:
            raise InvalidOfferParameters("until: give either until or unit and count, not both.")
        try:
            until = date.fromisoformat(str(params["until"]))
        except ValueError:
            raise InvalidOfferParameters("until: a date as YYYY-MM-DD is required.") from None
        return {"until": until.isoformat()}
    unit = _choice(params, "unit", PAUSE_UNITS)
    maximum = {"days": 365, "weeks": 52, "months": 12}[unit]
    return {"unit": unit, "count": _positive_int(params, "count", maximum=maximum)}


def _plan_change(params: dict[str, Any]) -> dict[str, Any]:
    plan_id = _positive_int(params, "plan_id")
    plan = Plan.objects.filter(pk=plan_id).only("stripe_price_id").first()
    if plan is None:
        raise InvalidOfferParameters(f"plan_id: no plan {plan_id}.")
    if not plan.stripe_price_id:
        raise InvalidOfferParameters(f"plan_id: plan {plan_id} has no Stripe price, so Stripe cannot switch to it.")
    behavior = _choice(params, "proration_behavior", PRORATION_BEHAVIORS, default="create_prorations")
    return {"plan_id": plan_id, "proration_behavior": behavior}


def _redirect(params: dict[str, Any]) -> dict[str, Any]:
    url = str(params.get("url") or "")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidOfferParameters("url: an http(s) address is required.")
    cleaned: dict[str, Any] = {"url": url}
    if params.get("label"):
        cleaned["label"] = str(params["label"])[:100]
    return cleaned


_CLEANERS = {
    "discount": _discount,
    "trial_extension": _trial_extension,
    "pause": _pause,
    "plan_change": _plan_change,
    "redirect": _redirect,
}


def offer_parameters_clean(kind: str, parameters: Any) -> dict[str, Any]:
    """The normalised parameters of an offer of `kind`, or InvalidOfferParameters naming the bad field."""
    if kind not in _CLEANERS:
        raise InvalidOfferParameters(f"kind: one of {', '.join(_CLEANERS)}.")
    if not isinstance(parameters, dict):
        raise InvalidOfferParameters("parameters: an object is required.")
    return _CLEANERS[kind](parameters)


PAUSE_UNIT_LABELS = {"days": gettext_lazy("days"), "weeks": gettext_lazy("weeks"), "months": gettext_lazy("months")}


def offer_summary(kind: str, parameters: dict[str, Any]) -> str:
    """A one-line description of an offer for pages and the session API ("20% off for 3 months"), in the active
    language (the hosted page renders it in the customer's; the API in English)."""
    if kind == "discount":
        amount = (
            f"{parameters['percent_off']:g}%"
            if "percent_off" in parameters
            else f"{parameters['amount_off_cents'] / 100:.2f} {parameters['currency'].upper()}"
        )
        if parameters["duration"] == "once":
            return gettext("%(amount)s off the next invoice") % {"amount": amount}
        if parameters["duration"] == "forever":
            return gettext("%(amount)s off for ever") % {"amount": amount}
        return gettext("%(amount)s off for %(months)s months") % {
            "amount": amount,
            "months": parameters.get("duration_in_months"),
        }
    if kind == "trial_extension":
        return gettext("%(days)s more trial days") % {"days": parameters["days"]}
    if kind == "pause":
        if "until" in parameters:
            return gettext("pause until %(date)s") % {"date": parameters["until"]}
        unit = PAUSE_UNIT_LABELS[parameters["unit"]]
        return gettext("pause for %(count)s %(unit)s") % {"count": parameters["count"], "unit": unit}
    if kind == "plan_change":
        plan = Plan.objects.filter(pk=parameters["plan_id"]).first()
        return gettext("switch to %(plan)s") % {"plan": plan.name if plan else gettext("another plan")}
    return str(parameters.get("label") or gettext("talk to us"))
