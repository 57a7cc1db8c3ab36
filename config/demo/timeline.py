"""One customer's product events over their trial: page views, actions and their properties, in time order."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from audiences.models import Customer, Event
from config.demo.plan import PlannedEvent, World, random_uuid
from config.demo.vocabulary import (
    APP_PAGE_WEIGHTS,
    APP_PAGES,
    APP_URL,
    DASHBOARDS,
    INTEGRATIONS,
    PROJECT_TEMPLATES,
    REPORT_TYPES,
    SITE_URL,
)


def _high_intent_properties(rng: random.Random, name: str) -> dict[str, Any]:
    """Plausible properties for a high-intent action, so property filters in segments have something to match."""
    if name == "Project Created":
        return {"project_id": f"prj_{rng.randrange(16**8):08x}", "template": rng.choice(PROJECT_TEMPLATES)}
    if name == "Teammate Invited":
        role = rng.choices(("member", "admin"), weights=(4, 1))[0]
        return {"invitee_role": role, "method": rng.choice(("email", "link"))}
    if name == "Report Generated":
        output = rng.choices(("web", "pdf", "csv"), weights=(6, 2, 2))[0]
        return {"report_type": rng.choice(REPORT_TYPES), "format": output}
    if name == "Integration Connected":
        return {"integration": rng.choice(INTEGRATIONS)}
    return {}


@dataclass
class Timeline:
    """One customer's events while they are planned: the browsers they use and the context their calls carry.

    Events at or after "now" are dropped here, so the simulation can run a customer's life past today freely.
    """

    world: World
    customer: Customer
    browsers: list[str]
    context: dict[str, Any]
    events: list[PlannedEvent] = field(default_factory=list)

    def add(
        self,
        when: datetime,
        type_: str,
        name: str = "",
        properties: dict[str, Any] | None = None,
        *,
        browser: str | None = None,
        identified: bool = True,
        context: dict[str, Any] | None = None,
    ) -> None:
        """Plan one call; `browser` defaults to one of the customer's anonymous ids, as analytics.js sends both."""
        if when >= self.world.now:
            return
        self.events.append(
            PlannedEvent(
                timestamp=when,
                customer=self.customer,
                type=type_,
                name=name,
                user_id=str(self.customer.user_id) if identified else "",
                anonymous_id=self.browser() if browser is None else browser,
                properties=properties or {},
                context=self.context if context is None else context,
                message_id=random_uuid(self.world.rng),
            )
        )

    def browser(self) -> str:
        """The anonymous id of the device used for a visit (most people have one, some a second one)."""
        return self.browsers[0] if len(self.browsers) == 1 else self.world.rng.choice(self.browsers)

    def track(self, when: datetime, name: str, properties: dict[str, Any] | None = None) -> None:
        """Plan a track call; high-intent actions get their usual properties unless given."""
        if properties is None:
            properties = _high_intent_properties(self.world.rng, name)
        self.add(when, Event.Type.TRACK, name, properties)

    def page(self, when: datetime, name: str, *, site: str = APP_URL, referrer: str = "", **options: Any) -> None:
        """Plan a page view with the properties analytics.js sends (path, url, title, referrer)."""
        path = "/" + name.lower().replace(" ", "-") if name != "Home" else "/"
        properties: dict[str, Any] = {"path": path, "url": site + path, "title": f"{name} · Demo SaaS"}
        if referrer:
            properties["referrer"] = referrer
        self.add(when, Event.Type.PAGE, name, properties, **options)

    def signup(
        self,
        signed_up: datetime,
        *,
        landing_pages: Sequence[str],
        referrer: str,
        campaign: dict[str, str] | None,
        signed_up_properties: dict[str, Any],
    ) -> None:
        """Anonymous visits before signup, then identify (with traits), Signed Up, and group for account members."""
        rng = self.world.rng
        first_browser = self.browsers[0]
        if first_browser:
            lead_minutes = 60 * 24 * (5 if len(landing_pages) > 1 else 0.2)
            first_visit = signed_up - timedelta(minutes=rng.uniform(3, lead_minutes))
            step = (signed_up - first_visit) / len(landing_pages)
            for index, name in enumerate(landing_pages):
                context = {**self.context, "campaign": campaign} if index == 0 and campaign else self.context
                self.page(
                    first_visit + step * index,
                    name,
                    site=SITE_URL,
                    referrer=referrer if index == 0 else "",
                    browser=first_browser,
                    identified=False,
                    context=context,
                )
        traits = {"email": self.customer.email, "name": self.customer.name, **self.customer.traits}
        self.add(signed_up, Event.Type.IDENTIFY, "", traits, browser=first_browser)
        self.add(
            signed_up + timedelta(seconds=1), Event.Type.TRACK, "Signed Up", signed_up_properties, browser=first_browser
        )
        account = self.customer.account
        if account is not None:
            self.add(
                signed_up + timedelta(seconds=3), Event.Type.GROUP, "", dict(account.traits), browser=first_browser
            )

    def session(self, start: datetime, extra: Sequence[tuple[str, float]] = ()) -> None:
        """One visit to the app: a few page views and dashboard views, plus `extra` (event, probability) actions."""
        rng = self.world.rng
        browser = self.browser()
        when = start
        for _ in range(rng.choices((1, 2, 3), weights=(4, 4, 2))[0]):
            self.page(when, rng.choices(APP_PAGES, weights=APP_PAGE_WEIGHTS)[0], browser=browser)
            when += timedelta(seconds=rng.uniform(20, 600))
        for _ in range(rng.choices((0, 1, 2), weights=(3, 4, 2))[0]):
            self.add(when, Event.Type.TRACK, "Dashboard Viewed", {"dashboard": rng.choice(DASHBOARDS)}, browser=browser)
            when += timedelta(seconds=rng.uniform(20, 900))
        for name, probability in extra:
            if rng.random() < probability:
                self.add(when, Event.Type.TRACK, name, _high_intent_properties(rng, name), browser=browser)
                when += timedelta(seconds=rng.uniform(30, 900))

    def weekly_usage(
        self,
        start: datetime,
        end: datetime,
        *,
        sessions_per_week: Sequence[int],
        extra: Sequence[tuple[str, float]],
        fade_from: datetime | None = None,
    ) -> None:
        """Use after the trial, or as a teammate: weights for 0, 1, 2… visits a week, fading before a cancellation."""
        rng = self.world.rng
        end = min(end, self.world.now)
        week = start
        while week < end:
            weights = sessions_per_week if fade_from is None or week < fade_from else (6, 3, 1)
            for _ in range(rng.choices(range(len(weights)), weights=weights)[0]):
                moment = week + timedelta(days=rng.uniform(0, 7))
                if moment < end:
                    self.session(moment, extra)
            week += timedelta(days=7)

    def commit(self) -> None:
        """Hand the planned events to the data set."""
        self.world.events.extend(self.events)
