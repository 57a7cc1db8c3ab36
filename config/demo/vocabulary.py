"""The demo's vocabulary and its rules of thumb: names, titles, companies, pages, plans, coupons, and the conversion
rates the generator uses — the facts the product's analyses should rediscover."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from integrations.stripe.models import Subscription

DEMO_SOURCE_NAME = "Demo web app"

DEFAULT_CUSTOMERS = 3000

DEFAULT_SEED = 42

MIN_CUSTOMERS = 100  # below this the rarer statuses and the activation effect are left to chance

BATCH_SIZE = 1000

USER_ID_PREFIX = "usr_demo_"

GROUP_ID_PREFIX = "org_demo_"

STRIPE_CUSTOMER_PREFIX = "cus_demo_"

STRIPE_SUBSCRIPTION_PREFIX = "sub_demo_"

STRIPE_ITEM_PREFIX = "si_demo_"

STRIPE_PRODUCT_PREFIX = "prod_demo_"

STRIPE_PRICE_PREFIX = "price_demo_"

SIGNUP_WINDOW_DAYS = 120

ACTIVATION_WINDOW = timedelta(days=3)

HABIT_WINDOW = timedelta(days=7)

HABIT_MIN_ACTIONS = 3

HIGH_INTENT_EVENTS = frozenset({"Project Created", "Teammate Invited", "Report Generated", "Integration Connected"})

# Statuses of a trial subscription that has paid at least one invoice after its trial.
PAID_STATUSES = frozenset({Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE, Subscription.Status.UNPAID})

APP_URL = "https://app.demo-saas.example"

SITE_URL = "https://www.demo-saas.example"


def _words(text: str) -> tuple[str, ...]:
    """Split a block of whitespace-separated words: long name lists stay readable and diff-friendly."""
    return tuple(text.split())


FIRST_NAMES = _words(
    """
    Olivia Liam Emma Noah Ava Mateo Sofia Lucas Mia Ethan Amara Kenji Priya Arjun Chloe Diego Fatima Omar Hannah
    Jonas Leila Marco Nina Oscar Rosa Samuel Tara Victor Yara Zoe Aisha Ben Carmen Daniel Elena Felix Grace Hugo
    Ines Jack Kira Leo Maya Nadia Pablo Quinn Ravi Sara Tom Uma Wei Xavier Yusuf Anna Chen Dmitri Eva Gabriel Helena
    Isaac Julia Kofi
    """
)

LAST_NAMES = _words(
    """
    Smith Garcia Chen Patel Kim Nguyen Muller Rossi Silva Johnson Okafor Haddad Tanaka Kowalski Dubois Hansen
    Ivanova Jensen Lopez Martin Novak Olsen Park Quintero Reyes Schmidt Torres Ueda Varga Weber Yilmaz Zhang
    Anderson Brown Costa Davis Evans Fischer Gomez Hughes Ito Khan Larsen Mendes Nakamura Oliveira Price Ramirez
    Sato Thomas Vogel Walker Young Bauer Castillo Moreau
    """
)

# Title -> role family (what fit rules and the call-prep brief read).
TITLES: dict[str, str] = {
    "Founder": "executive",
    "CEO": "executive",
    "CTO": "executive",
    "VP Engineering": "engineering",
    "Engineering Manager": "engineering",
    "Software Engineer": "engineering",
    "Product Manager": "product",
    "Head of Product": "product",
    "Head of Growth": "marketing",
    "Marketing Manager": "marketing",
    "Data Analyst": "data",
    "Head of Data": "data",
    "Operations Manager": "operations",
    "Customer Success Lead": "operations",
    "Designer": "design",
    "Consultant": "other",
}

TITLE_WEIGHTS = (4, 3, 2, 2, 4, 8, 6, 2, 3, 4, 6, 2, 3, 2, 3, 3)

DECISION_ROLES = frozenset({"executive", "engineering", "product", "data"})

EDU_TITLES = {"Student": "student", "Researcher": "academic", "Professor": "academic", "Lab Manager": "academic"}

USE_CASES = (
    "Product analytics",
    "Marketing reporting",
    "Client reporting",
    "Internal dashboards",
    "Data exploration",
    "Just exploring",
)

USE_CASE_WEIGHTS = (26, 18, 12, 20, 12, 12)

SIGNUP_SOURCES = ("organic", "paid", "referral", "partner")

SIGNUP_SOURCE_WEIGHTS = (45, 25, 18, 12)

INDUSTRIES: dict[str, str] = {  # industry -> word used in company names
    "SaaS": "Software",
    "Fintech": "Financial",
    "E-commerce": "Commerce",
    "Healthcare": "Health",
    "Education": "Learning",
    "Agency": "Studio",
    "Manufacturing": "Industries",
    "Media": "Media",
    "Nonprofit": "Foundation",
    "Logistics": "Logistics",
    "Real estate": "Properties",
}

INDUSTRY_WEIGHTS = (22, 10, 12, 8, 5, 10, 7, 6, 4, 8, 4)

TARGET_INDUSTRIES = frozenset({"SaaS", "Fintech", "E-commerce", "Media"})

COMPANY_PREFIXES = _words(
    """
    North Blue Bright Silver Iron Cedar Harbor Summit Maple Granite Pixel Quantum Lumen Nimbus Atlas Vertex Orbit
    Copper Falcon Willow Beacon Kinetic Clear Open True Swift Red Oak Pine Stone Sun River
    """
)

COMPANY_SUFFIXES = _words(
    """
    wind path leaf point line field works labs stack loop bridge forge scale shift wave grid base flow craft ly
    """
)

# Company size buckets: (label, lowest, highest employees), with how often they sign up.
COMPANY_SIZES = (
    ("1-10", 1, 10),
    ("11-50", 11, 50),
    ("51-200", 51, 200),
    ("201-1000", 201, 1000),
    ("1000+", 1001, 8000),
)

COMPANY_SIZE_WEIGHTS = (30, 32, 20, 12, 6)

COUNTRIES = ("US", "GB", "DE", "CA", "FR", "AU", "NL", "IN", "BR", "ES")

COUNTRY_WEIGHTS = (50, 10, 8, 7, 5, 5, 4, 5, 3, 3)

FREE_MAIL_DOMAINS = ("gmail.com", "gmail.com", "gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "icloud.com")

UNIVERSITIES = _words(
    """
    hollowbrook stonereach fairhollow quillmont brackenridge-state elmstead marrowfield coldwater-tech westmarch
    larkspur-college
    """
)

APP_PAGES = ("Dashboard", "Projects", "Reports", "Integrations", "Settings", "Team", "Docs")

APP_PAGE_WEIGHTS = (30, 22, 16, 8, 6, 6, 12)

DASHBOARDS = ("Overview", "Acquisition", "Retention", "Revenue", "Custom")

REPORT_TYPES = ("funnel", "cohort", "retention", "revenue", "custom")

INTEGRATIONS = ("Slack", "Stripe", "HubSpot", "Postgres", "Google Sheets", "Salesforce", "Snowflake")

PROJECT_TEMPLATES = ("blank", "sample data", "template")

HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 3, 5, 8, 10, 11, 11, 9, 10, 11, 10, 9, 7, 5, 4, 3, 2, 2, 1)

# Conversion probability of an opt-in trial by (activated, habit); fit and signup source scale it.
CONVERSION_BASE: dict[tuple[bool, bool], float] = {
    (True, True): 0.43,
    (True, False): 0.26,
    (False, True): 0.14,
    (False, False): 0.045,
}

FIT_CONVERSION = {"high": 1.15, "medium": 1.0, "low": 0.75}

SOURCE_CONVERSION = {"organic": 1.0, "paid": 0.85, "referral": 1.15, "partner": 1.2}

FIT_ENGAGEMENT = {"high": 1.2, "medium": 1.0, "low": 0.75}


@dataclass(frozen=True)
class _Tier:
    key: str
    name: str
    monthly_cents: int
    yearly_cents: int
    included_seats: int
    description: str


TIERS = (
    _Tier("free", "Free", 0, 0, 1, "One seat, three dashboards, community support."),
    _Tier("starter", "Starter", 2900, 29000, 1, "For one analyst: unlimited dashboards and reports."),
    _Tier("team", "Team", 9900, 99000, 3, "Shared projects, three seats included, integrations."),
    _Tier("business", "Business", 29900, 299000, 10, "Ten seats, SSO, audit log and priority support."),
)

SEAT_MONTHLY_CENTS = 1200

SEAT_YEARLY_CENTS = 12000

API_CALLS_UNIT_CENTS = 100  # per 1,000 API calls, metered


@dataclass(frozen=True)
class Coupon:
    coupon_id: str
    percent: Decimal | None
    amount_cents: int | None
    duration: str


COUPON_PARTNER = Coupon("PARTNER20", Decimal("20.00"), None, Subscription.DiscountDuration.FOREVER)

COUPON_LOYALTY = Coupon("LOYALTY15", Decimal("15.00"), None, Subscription.DiscountDuration.FOREVER)

COUPON_WELCOME = Coupon("WELCOME50", None, 5000, Subscription.DiscountDuration.ONCE)

COUPON_LAUNCH = Coupon("LAUNCH25", Decimal("25.00"), None, Subscription.DiscountDuration.REPEATING)

REPEATING_MONTHS = 3
