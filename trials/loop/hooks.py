"""The loop's real-time door: the stored-batch hook that creates and refreshes the trials of the customers a batch
touched, when the batch holds an event or a change the trial definition reads (registered in TrialsConfig.ready).

Finding the relevant event names costs no query per batch: they are kept per process for a short while.
"""

from __future__ import annotations

import time
from datetime import datetime

from django.db.models import (
    Exists,
)

from audiences.pipeline import BatchFacts
from segments.conditions import parse_tree
from segments.live.dependencies import dependencies
from trials.loop.lifecycle import activation_definition, trial_traits_refresh, trials_refresh, trials_sync
from trials.loop.models import ActivationDefinition, Trial

RELEVANT_NAMES_TTL = 30.0  # seconds a worker process trusts its copy of the names the definition reads
_relevant: dict[str, tuple[float, frozenset[str], bool]] = {}


def _relevant_event_names() -> tuple[frozenset[str], bool]:
    """The event names that can change a trial (signup, activation, habit, and those the activation condition
    reads) and whether a condition is set, kept per process for RELEVANT_NAMES_TTL so a batch of other events
    costs no query. A stale copy only delays which batches are looked at; the sweep re-derives every open trial
    after a settings change."""
    cached = _relevant.get("names")
    if cached is not None and time.monotonic() - cached[0] < RELEVANT_NAMES_TTL:
        return cached[1], cached[2]

    definition = activation_definition()
    names = {str(name) for name in definition.habit_events} | {definition.activation_event, definition.signup_event}
    if definition.activation_condition:
        names |= dependencies(parse_tree(definition.activation_condition)).events
    found = frozenset(names - {""})
    _relevant["names"] = (time.monotonic(), found, bool(definition.activation_condition))
    return found, bool(definition.activation_condition)


def relevant_names_forget() -> None:
    """Drop this process's copy of the relevant event names (after the definition changed)."""
    _relevant.clear()


def trials_on_batch(facts: BatchFacts, now: datetime) -> set[int]:
    """The stored-batch hook, in the batch's transaction: trials are created or restarted for the customers the
    batch signed up or Stripe told about, and every current trial of a customer the batch touched with an event
    the loop reads, a profile change or billing is re-derived. Computed traits that read the trial are
    recomputed for the customers whose trial changed, and added to the batch's changed traits so the live
    audiences reading them are re-evaluated. A batch of other events costs no query; one about
    customers without a trial costs one (the definition, with whether any has a trial)."""
    names, has_condition = _relevant_event_names()
    customer_ids = {c for c, batch_names in facts.events.items() if batch_names & names}
    customer_ids |= facts.billing_changed | facts.profile_changed
    if has_condition:
        customer_ids |= set(facts.changed_traits)
    if not customer_ids:
        return set()
    found = (
        ActivationDefinition.objects.filter(pk=1)
        .annotate(any_trial=Exists(Trial.objects.filter(customer_id__in=customer_ids, is_current=True)))
        .first()
    )
    definition = found or activation_definition()
    any_trial = bool(getattr(found, "any_trial", True))
    signed_up = {c for c, names in facts.events.items() if definition.signup_event and definition.signup_event in names}
    to_sync = signed_up | facts.billing_changed
    if not any_trial and not to_sync:
        return set()
    created = trials_sync(customer_ids=to_sync, now=now, definition=definition)
    current = Trial.objects.filter(customer_id__in=customer_ids, is_current=True)
    changed = created | trials_refresh(trials=current, now=now, definition=definition)
    for customer_id, keys in trial_traits_refresh(changed, now).items():
        facts.changed_traits.setdefault(customer_id, set()).update(keys)
    return changed
