"""Known effects planted in the demo data, so the measurement reports can be checked against the truth.

Why: a report that finds "an effect" on random data proves nothing; one that recovers an effect of a known size,
and reads "no detectable effect" where none was planted, does. `plant_effects` adds a population of ended trials
whose conversion probability is additive in three switches, each drawn independently:

    p(convert) = base + activation_lift · did(activation event in the first 3 days)
                      + template_uplift · sent(uplift template) + 0 · sent(null template)

Because the switches are independent and the effects additive, the difference in conversion between doers and
non-doers is exactly `activation_lift` in expectation, between the uplift template's treatment and holdout exactly
`template_uplift`, and 0 for the null template — whatever the mix. Treatment vs holdout is drawn from the seed
(each template's holdout share), so a rebuild plants the same rows. Customers use the demo id prefix
(`usr_demo_fx_…`) so the demo reset deletes them with their trials, events and sends; the two templates are
inactive (nothing is ever sent from them) and reused by a re-seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from audiences.models import Customer, Event, Source
from trials.loop.models import Trial, TrialStage
from trials.messaging.models import MessageSend, MessageTemplate

USER_ID_PREFIX = "usr_demo_fx_"
TRIAL_DAYS = 14
PLANTED_EMAIL_DOMAIN = "@effects.demo-saas.example"
NOISE_EVENT = "Help Article Viewed"


@dataclass(frozen=True)
class PlantedEffects:
    """The truth the reports should recover (absolute differences in conversion probability)."""

    activation_event: str = "Dashboard Shared"
    doer_share: float = 0.4
    base_conversion: float = 0.10
    activation_lift: float = 0.20
    template_uplift: float = 0.10
    uplift_template: str = "demo-effect-checklist"
    null_template: str = "demo-effect-newsletter"
    holdout_percent: int = 50


@dataclass(frozen=True)
class PlantedSummary:
    trials: int
    events: int
    sends: int


def _template(key: str, name: str, holdout_percent: int) -> MessageTemplate:
    template, _ = MessageTemplate.objects.update_or_create(
        key=key,
        defaults={
            "name": name,
            "active": False,
            "subject": name,
            "text_body": "Planted by the demo data to measure holdout uplift.",
            "trigger": MessageTemplate.Trigger.TRIAL_DAY,
            "trigger_number": 1,
            "holdout_percent": holdout_percent,
        },
    )
    return template


def plant_effects(
    *, source: Source, trials: int, seed: int, now: datetime, effects: PlantedEffects | None = None
) -> PlantedSummary:
    """Add `trials` ended opt-in trials (started 50–140 days before `now`) carrying the planted effects, with their
    customers, events and template sends (sent or holdout), written with bulk inserts."""
    effects = effects or PlantedEffects()
    rng = random.Random(seed)
    uplift = _template(effects.uplift_template, "Demo: onboarding checklist (planted uplift)", effects.holdout_percent)
    null = _template(effects.null_template, "Demo: product newsletter (planted null)", effects.holdout_percent)
    first = Customer.objects.filter(user_id__startswith=USER_ID_PREFIX).count()
    customers = Customer.objects.bulk_create(
        Customer(
            user_id=f"{USER_ID_PREFIX}{first + index}",
            email=f"fx{first + index}{PLANTED_EMAIL_DOMAIN}",
            name=f"Planted trial {first + index}",
            traits={"signup_source": rng.choice(("organic", "paid", "referral"))},
        )
        for index in range(trials)
    )
    trial_rows: list[Trial] = []
    events: list[Event] = []
    sends: list[MessageSend] = []
    for customer in customers:  # planning rows in memory once, before a few bulk inserts (the generator's job)
        started = now - timedelta(days=rng.uniform(50, 140))
        ends = started + timedelta(days=TRIAL_DAYS)
        doer = rng.random() < effects.doer_share
        # Drawn from the seed rather than by the product's id-based holdout, so a rebuild (new ids) plants the same
        # data set: same seed, same day, same rows.
        treated = {template.pk: rng.random() * 100 >= template.holdout_percent for template in (uplift, null)}
        probability = (
            effects.base_conversion + effects.activation_lift * doer + effects.template_uplift * treated[uplift.pk]
        )
        converted = rng.random() < probability
        converted_at = None
        if converted:
            converted_at = (
                started + timedelta(days=rng.uniform(3, TRIAL_DAYS))
                if rng.random() < 0.7
                else ends + timedelta(days=rng.uniform(0.1, 10))
            )
        trial_rows.append(
            Trial(
                customer=customer,
                model=Trial.Model.OPT_IN,
                started_at=started,
                ends_at=ends,
                source=customer.traits["signup_source"],
                stage=TrialStage.CONVERT if converted else TrialStage.LOST,
                stage_changed_at=converted_at or ends,
                converted_at=converted_at,
                expired_at=None if converted else ends,
                next_check_at=None,
            )
        )
        moments = [(effects.activation_event, rng.uniform(0.1, 3)) for _ in range(rng.randint(1, 3) if doer else 0)]
        moments += [(NOISE_EVENT, rng.uniform(0.1, TRIAL_DAYS)) for _ in range(rng.randint(0, 3))]
        for name, day in moments:
            when = started + timedelta(days=day)
            events.append(
                Event(
                    source=source,
                    message_id=f"fx-{customer.pk}-{len(events)}",
                    customer=customer,
                    type=Event.Type.TRACK,
                    name=name,
                    user_id=customer.user_id or "",
                    timestamp=when,
                    received_at=when,
                )
            )
        for template in (uplift, null):
            decided = started + timedelta(days=1)
            sends.append(
                MessageSend(
                    customer=customer,
                    template=template,
                    status=MessageSend.Status.SENT if treated[template.pk] else MessageSend.Status.HOLDOUT,
                    reason="" if treated[template.pk] else "holdout",
                    created_at=decided,
                    sent_at=decided if treated[template.pk] else None,
                )
            )
    Trial.objects.bulk_create(trial_rows, batch_size=1000)
    Event.objects.bulk_create(events, batch_size=1000)
    MessageSend.objects.bulk_create(sends, batch_size=1000)
    return PlantedSummary(trials=len(trial_rows), events=len(events), sends=len(sends))
