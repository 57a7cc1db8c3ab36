"""Stripe customers: mirroring them, linking each to a profile, and mapping it to the account (company) it bills.

Linking is by stored Stripe id, then a unique email match, then `metadata.user_id`; conflicting or ambiguous
signals leave the Stripe customer unlinked (a payment must never land on the wrong profile) and its billing events
wait (CustomerNotLinked). Which email domains are free mail (never mapped to an account by domain) is said by the
layers above through `free_mail_domains_register`, called from their AppConfig.ready: the mirror imports none of
them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from audiences.models import Account, AnonymousId, Customer
from integrations.stripe.catalogue import discount_upsert
from integrations.stripe.currency import billing_settings
from integrations.stripe.models import StripeCustomer


class CustomerNotLinked(Exception):
    """The event belongs to a Stripe customer not linked to any profile yet: it waits to be replayed."""

    def __init__(self, stripe_customer_id: str) -> None:
        super().__init__(f"Stripe customer {stripe_customer_id} is not linked to a profile")
        self.stripe_customer_id = stripe_customer_id


FreeMailDomains = Callable[[], Iterable[str]]
"""Gives the email domains that are free mail (gmail.com, ...), read when a Stripe customer is mapped."""

_free_mail_sources: list[FreeMailDomains] = []


def free_mail_domains_register(source: FreeMailDomains) -> None:
    """Add where free-mail domains come from (trials: its score settings' list), from an AppConfig.ready: a Stripe
    customer is never mapped to an account by a free-mail domain."""
    if source not in _free_mail_sources:
        _free_mail_sources.append(source)


def _free_mail_domains() -> set[str]:
    return {domain.lower() for source in _free_mail_sources for domain in source()}


def _link_candidate(obj: Mapping[str, Any]) -> tuple[Customer | None, str, str]:
    """(profile, method, reason): the profile a Stripe customer belongs to, or None with why not."""
    stripe_id = str(obj["id"])
    by_stripe_id = Customer.objects.filter(stripe_customer_id=stripe_id).first()
    if by_stripe_id is not None:
        return by_stripe_id, StripeCustomer.LinkMethod.STRIPE_ID, ""
    email = str(obj.get("email") or "").strip().lower()
    by_email: Customer | None = None
    if email:
        matches = list(Customer.objects.filter(email=email)[:2])
        if len(matches) > 1:
            return None, "", f"{len(matches)}+ profiles share the email {email}"
        by_email = matches[0] if matches else None
    user_id = str((obj.get("metadata") or {}).get("user_id") or "")
    by_user_id = Customer.objects.filter(user_id=user_id).first() if user_id else None
    if by_email and by_user_id and by_email.pk != by_user_id.pk:
        return None, "", f"email points at profile {by_email.pk}, metadata.user_id at profile {by_user_id.pk}"
    chosen, method = (
        (by_email, StripeCustomer.LinkMethod.EMAIL) if by_email else (by_user_id, StripeCustomer.LinkMethod.USER_ID)
    )
    if chosen is None:
        return None, "", "no profile with this email or metadata.user_id"
    if chosen.stripe_customer_id and chosen.stripe_customer_id != stripe_id:
        return None, "", f"profile {chosen.pk} is already linked to {chosen.stripe_customer_id}"
    return chosen, method, ""


def stripe_customer_link(*, stripe_customer: StripeCustomer, customer: Customer, method: str) -> None:
    """Link a Stripe customer to a profile: the profile keeps the Stripe id and answers to it from now on, and
    joins the Stripe customer's account when it has none."""
    stripe_customer.customer, stripe_customer.link_method, stripe_customer.unlinked_reason = customer, method, ""
    stripe_customer.save(update_fields=["customer", "link_method", "unlinked_reason", "updated_at"])
    Customer.objects.filter(pk=customer.pk).update(stripe_customer_id=stripe_customer.stripe_customer_id)
    if stripe_customer.account_id is not None:
        Customer.objects.filter(pk=customer.pk, account__isnull=True).update(account_id=stripe_customer.account_id)
    customer.stripe_customer_id = stripe_customer.stripe_customer_id
    AnonymousId.objects.bulk_create(
        [AnonymousId(anonymous_id=f"stripe:{stripe_customer.stripe_customer_id}", customer=customer)],
        ignore_conflicts=True,
    )
    if not customer.email and stripe_customer.email:
        Customer.objects.filter(pk=customer.pk).update(email=stripe_customer.email)


def customer_upsert(obj: Mapping[str, Any], *, as_of: datetime) -> StripeCustomer:
    """Mirror a Stripe customer and link it to a profile when the evidence is unambiguous."""
    stripe_customer, _ = StripeCustomer.objects.get_or_create(stripe_customer_id=str(obj["id"]))
    if stripe_customer.stripe_state_at is None or as_of >= stripe_customer.stripe_state_at:
        stripe_customer.email = str(obj.get("email") or "").strip().lower()[:254]
        stripe_customer.name = str(obj.get("name") or "")[:255]
        stripe_customer.metadata = dict(obj.get("metadata") or {})
        stripe_customer.deleted = bool(obj.get("deleted"))
        stripe_customer.stripe_state_at = as_of
        stripe_customer.save()
    if stripe_customer.customer_id is None:
        candidate, method, reason = _link_candidate(obj)
        if candidate is not None:
            stripe_customer_link(stripe_customer=stripe_customer, customer=candidate, method=method)
        elif stripe_customer.unlinked_reason != reason:
            stripe_customer.unlinked_reason = reason
            stripe_customer.save(update_fields=["unlinked_reason", "updated_at"])
    if isinstance(obj.get("discount"), Mapping):  # older API versions: the customer-wide discount inline
        discount_upsert(obj["discount"], as_of=as_of)
    if "email" in obj or "metadata" in obj:
        stripe_customer_map_account(stripe_customer)
    return stripe_customer


def _account_match(stripe_customer: StripeCustomer) -> tuple[Account | None, str]:
    """(account, how) by the configured rule: the metadata key's value as the account's group id (the account
    is created when the product has not grouped anyone under it yet), then the email's domain when exactly one
    account has it (free-mail domains never match)."""
    settings = billing_settings()
    key = settings.account_metadata_key.strip()
    group_id = str((stripe_customer.metadata or {}).get(key) or "").strip()[:255] if key else ""
    if group_id:
        account, created = Account.objects.get_or_create(group_id=group_id, defaults={"name": stripe_customer.name})
        return account, f"metadata.{key} = {group_id}" + (" (account created)" if created else "")
    if settings.account_by_email_domain and "@" in stripe_customer.email:
        domain = stripe_customer.email.rpartition("@")[2].lower()
        if domain in _free_mail_domains():
            return None, f"{domain} is a free-mail domain"
        matches = list(Account.objects.filter(domain__iexact=domain)[:2])
        if len(matches) == 1:
            return matches[0], f"email domain {domain}"
        return None, f"{len(matches) or 'no'}{'+' if len(matches) > 1 else ''} accounts with the domain {domain}"
    return None, "no rule matched" if key or settings.account_by_email_domain else "no rule configured"


def stripe_customer_map_account(stripe_customer: StripeCustomer) -> Account | None:
    """Map a Stripe customer to the account (company) it bills, by the rule in BillingSettings; its linked
    profile joins that account when it belongs to none yet (a group call stays the authority)."""
    account, reason = _account_match(stripe_customer)
    if (stripe_customer.account_id, stripe_customer.account_reason) != (account.pk if account else None, reason):
        stripe_customer.account, stripe_customer.account_reason = account, reason[:255]
        stripe_customer.save(update_fields=["account", "account_reason", "updated_at"])
    if account is not None and stripe_customer.customer_id is not None:
        Customer.objects.filter(pk=stripe_customer.customer_id, account__isnull=True).update(account=account)
    return account


def linked_customer(stripe_customer_id: str) -> Customer:
    """The profile a Stripe customer is linked to; raises CustomerNotLinked (its events wait) when none is."""
    stripe_customer = (
        StripeCustomer.objects.select_related("customer").filter(stripe_customer_id=stripe_customer_id).first()
    )
    if stripe_customer is None:
        stripe_customer = customer_upsert({"id": stripe_customer_id}, as_of=datetime.min.replace(tzinfo=UTC))
    if stripe_customer.customer is None:
        raise CustomerNotLinked(stripe_customer_id)
    return stripe_customer.customer
