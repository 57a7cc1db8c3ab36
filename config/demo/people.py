"""The people and companies of the demo: accounts, customers with realistic titles and emails, how they came."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from audiences.models import Account, AnonymousId, Customer
from config.demo.plan import World, random_token, random_uuid
from config.demo.timeline import Timeline
from config.demo.vocabulary import (
    COMPANY_PREFIXES,
    COMPANY_SIZE_WEIGHTS,
    COMPANY_SIZES,
    COMPANY_SUFFIXES,
    COUNTRIES,
    COUNTRY_WEIGHTS,
    DECISION_ROLES,
    EDU_TITLES,
    FIRST_NAMES,
    FREE_MAIL_DOMAINS,
    GROUP_ID_PREFIX,
    INDUSTRIES,
    INDUSTRY_WEIGHTS,
    LAST_NAMES,
    STRIPE_CUSTOMER_PREFIX,
    TARGET_INDUSTRIES,
    TITLE_WEIGHTS,
    TITLES,
    UNIVERSITIES,
    USER_ID_PREFIX,
)


def new_account(world: World, signed_up: datetime) -> Account:
    """A B2B company with firmographic traits and a unique `.example` domain (never a deliverable address)."""
    rng = world.rng
    industry = rng.choices(list(INDUSTRIES), weights=INDUSTRY_WEIGHTS)[0]
    size_label, low, high = rng.choices(COMPANY_SIZES, weights=COMPANY_SIZE_WEIGHTS)[0]
    employees = int(low + (high - low) * rng.random() ** 2)
    while True:
        stem = rng.choice(COMPANY_PREFIXES) + rng.choice(COMPANY_SUFFIXES)
        name = f"{stem} {INDUSTRIES[industry]}"
        domain = f"{stem.lower()}.example"
        if domain in world.used_domains:
            domain = f"{stem.lower()}{INDUSTRIES[industry].lower()}.example"
        if domain not in world.used_domains:
            break
    world.used_domains.add(domain)
    account = Account(
        group_id=random_token(world, GROUP_ID_PREFIX, 10),
        name=name,
        domain=domain,
        traits={
            "name": name,
            "domain": domain,
            "industry": industry,
            "employees": employees,
            "company_size": size_label,
            "country": rng.choices(COUNTRIES, weights=COUNTRY_WEIGHTS)[0],
            "website": f"https://www.{domain}",
            "created_at": signed_up.isoformat(),
        },
    )
    world.accounts.append(account)
    world.signed_up_at[id(account)] = signed_up
    return account


def _email(world: World, first: str, last: str, kind: str, domain: str) -> str:
    """A lowercased, unique email in the style people really use for each kind of address."""
    rng = world.rng
    first, last = first.lower(), last.lower()
    while True:
        if kind == "freemail":
            local = rng.choice((f"{first}.{last}{rng.randrange(10, 9999)}", f"{first}{last}{rng.randrange(1, 99)}"))
        elif kind == "edu":
            local = rng.choice((f"{first}.{last}", f"{first[0]}{last}{rng.randrange(1, 99)}"))
        else:
            local = rng.choices((f"{first}.{last}", first, f"{first[0]}{last}"), weights=(6, 2, 2))[0]
        email = f"{local}@{domain}"
        if email not in world.used_emails:
            world.used_emails.add(email)
            return email
        last = last + rng.choice("abcdefgh")  # a second jane.smith becomes jane.smitha… and tries again


@dataclass(frozen=True)
class Signup:
    """What a person picked or brought at signup: the kind of address, their company, source and use case."""

    kind: str
    account: Account | None
    signed_up: datetime
    signup_source: str
    use_case: str


def new_customer(world: World, signup: Signup, *, with_stripe: bool, invited_by: Customer | None = None) -> Customer:
    """One person who signed up: identities, traits picked at signup, consent; revenue fields are filled later."""
    rng = world.rng
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    if signup.kind == "edu":
        title = rng.choices(list(EDU_TITLES), weights=(6, 2, 1, 1))[0]
        role = EDU_TITLES[title]
        university = rng.choice(UNIVERSITIES)
        domain, company = f"{university}.edu", university.replace("-", " ").title() + " University"
    elif signup.kind == "freemail":
        title = rng.choices(list(TITLES), weights=TITLE_WEIGHTS)[0]
        role = TITLES[title]
        domain, company = rng.choice(FREE_MAIL_DOMAINS), rng.choice(("", "", "Freelance", "Self-employed"))
    else:
        assert signup.account is not None
        title = rng.choices(list(TITLES), weights=TITLE_WEIGHTS)[0]
        role = TITLES[title]
        domain, company = signup.account.domain, signup.account.name
    traits: dict[str, Any] = {
        "first_name": first,
        "last_name": last,
        "title": title,
        "role": role,
        "company": company,
        "use_case": signup.use_case,
        "signup_source": signup.signup_source,
        "created_at": signup.signed_up.isoformat(),
    }
    if invited_by is not None:
        traits["invited_by"] = invited_by.user_id
    consent: dict[str, bool] = {}
    if rng.random() < 0.04:
        consent["email"] = False
    if rng.random() < 0.02:
        consent["destinations"] = False
    customer = Customer(
        user_id=random_token(world, USER_ID_PREFIX, 12),
        email=_email(world, first, last, signup.kind, domain),
        stripe_customer_id=random_token(world, STRIPE_CUSTOMER_PREFIX) if with_stripe else None,
        name=f"{first} {last}",
        traits=traits,
        account=signup.account,
        consent=consent,
    )
    world.customers.append(customer)
    world.signed_up_at[id(customer)] = signup.signed_up
    return customer


def customer_timeline(world: World, customer: Customer, *, browsers: int) -> Timeline:
    """Start a customer's timeline with `browsers` anonymous ids (0: identified from the first call, no AnonymousId)."""
    ids = []
    for _ in range(browsers):
        value = random_uuid(world.rng)
        world.anonymous_ids.append(AnonymousId(anonymous_id=value, customer=customer))
        ids.append(value)
    context: dict[str, Any] = {"library": {"name": "analytics.js", "version": "5.2.0"}}
    if customer.account is not None:
        context["groupId"] = customer.account.group_id
    return Timeline(world=world, customer=customer, browsers=ids or [""], context=context)


def fit_tier(signup: Signup, role: str) -> str:
    """Firmographic fit as a rep would judge it: mid-size companies in target industries, decision makers."""
    if signup.kind != "company" or signup.account is None:
        return "low"
    employees = int(signup.account.traits["employees"])
    score = 2 if 11 <= employees <= 1000 else 1 if employees > 1000 else 0
    score += 1 if signup.account.traits["industry"] in TARGET_INDUSTRIES else 0
    score += 1 if role in DECISION_ROLES else 0
    return "high" if score >= 3 else "medium" if score >= 2 else "low"


def acquisition(rng: random.Random, signup_source: str) -> tuple[dict[str, str] | None, str]:
    """The first touch that brought a signup: a UTM campaign for paid and partner, a referrer otherwise."""
    if signup_source == "paid":
        site, medium = rng.choice((("google", "cpc"), ("linkedin", "paid-social"), ("capterra", "cpc")))
        name = rng.choice(("brand-search", "competitor-keywords", "trial-q3", "retargeting"))
        return {"source": site, "medium": medium, "name": name}, f"https://www.{site}.com/"
    if signup_source == "partner":
        partner = rng.choice(("agencyhub", "cloudmarket", "dataguild"))
        return {"source": partner, "medium": "partner", "name": f"{partner}-listing"}, f"https://{partner}.example/"
    if signup_source == "referral":
        return None, rng.choice(("https://news.ycombinator.com/", "https://www.g2.com/", "https://blog.example/"))
    return None, rng.choice(("https://www.google.com/", "https://duckduckgo.com/", "https://www.bing.com/", ""))
