"""Issue 18: an identity merge never deletes data. Every row of the merged profile moves to the kept one; the few
that collide with the kept profile's under a unique constraint are reconciled by their model's rule, and the merge
record says what moved and what was reconciled."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from audiences import merges
from audiences.ingestion import IncomingMessage, messages_ingest
from audiences.merges import MergeRuleMissing, customer_links
from audiences.models import AnonymousId, ComputedTrait, ComputedTraitValue, Customer, Event, ProfileMerge, Source
from audiences.pipeline import stored_events_process
from segments.models import Segment, SegmentMembership
from segments.tests.test_computed_traits import make_trait
from trials.loop.models import Trial, TrialStage, TrialStageChange
from trials.messaging.models import CustomerMessageLock

pytestmark = pytest.mark.django_db


def call(message_id: str, *, user_id: str | None = None, anonymous_id: str | None = None, **fields: Any) -> Any:
    now = timezone.now()
    return IncomingMessage(
        type=fields.pop("type", "track"),
        message_id=message_id,
        user_id=user_id,
        anonymous_id=anonymous_id,
        name=fields.pop("name", ""),
        properties=fields.pop("properties", {}),
        context={},
        timestamp=fields.pop("timestamp", now),
        received_at=now,
        **fields,
    )


def ingest(source: Source, *messages: IncomingMessage) -> list[int]:
    """Store calls and apply them to profiles, as the request and its queued task do."""
    event_ids = messages_ingest(source=source, messages=list(messages)).event_ids
    stored_events_process(event_ids=event_ids)
    return event_ids


def trial(customer: Customer, started_days_ago: int) -> Trial:
    now = timezone.now()
    started = now - timedelta(days=started_days_ago)
    created = Trial.objects.create(
        customer=customer, started_at=started, ends_at=started + timedelta(days=14), stage_changed_at=started
    )
    TrialStageChange.objects.create(
        trial=created, customer=customer, from_stage=TrialStage.TRIGGER, to_stage=TrialStage.ACTIVATE, changed_at=now
    )
    return created


def segment(name: str) -> Segment:
    return Segment.objects.create(name=name, conditions={"all": []})


@pytest.fixture
def profiles(source: Source) -> tuple[Customer, Customer]:
    """usr_1 (identified) and the anonymous profile of its phone, each with history of its own."""
    ingest(source, call("k-1", user_id="usr_1", name="Logged In"))
    ingest(source, call("p-1", anonymous_id="phone", name="App Opened"))
    return Customer.objects.get(user_id="usr_1"), Customer.objects.get(anonymous_ids__anonymous_id="phone")


def sign_in(source: Source) -> None:
    ingest(source, call("link", type="identify", user_id="usr_1", anonymous_id="phone"))


def test_both_on_a_current_trial_the_older_becomes_non_current_and_nothing_is_lost(
    source: Source, profiles: tuple[Customer, Customer]
) -> None:
    kept, merged = profiles
    kept_trial, merged_trial = trial(kept, started_days_ago=3), trial(merged, started_days_ago=9)
    merged_lapsed = Trial.objects.create(
        customer=merged,
        started_at=timezone.now() - timedelta(days=90),
        ends_at=timezone.now() - timedelta(days=76),
        stage_changed_at=timezone.now(),
        stage=TrialStage.LOST,
        is_current=False,
    )
    sign_in(source)
    # Every trial and its stage history now belongs to the kept profile; the older current one is not current.
    assert set(Trial.objects.filter(customer=kept).values_list("pk", "is_current")) == {
        (kept_trial.pk, True),
        (merged_trial.pk, False),
        (merged_lapsed.pk, False),
    }
    assert Trial.objects.get(pk=merged_trial.pk).next_check_at is None  # no longer swept
    assert TrialStageChange.objects.filter(customer=kept).count() == 2
    assert not Customer.objects.filter(pk=merged.pk).exists()
    record = ProfileMerge.objects.get(outcome=ProfileMerge.Outcome.MERGED)
    assert record.detail["moved"]["trials.Trial"] == 2
    assert record.detail["moved"]["trials.TrialStageChange"] == 1
    assert record.detail["reconciled"] == {"trials.Trial older current trial made non-current": 1}


def test_the_newer_current_trial_wins_whichever_profile_holds_it(
    source: Source, profiles: tuple[Customer, Customer]
) -> None:
    kept, merged = profiles
    kept_trial, merged_trial = trial(kept, started_days_ago=20), trial(merged, started_days_ago=2)
    sign_in(source)
    assert Trial.objects.get(is_current=True).pk == merged_trial.pk
    assert Trial.objects.get(pk=kept_trial.pk).customer_id == kept.pk


def test_segment_memberships_the_kept_profile_lacks_move_and_shared_ones_keep_the_earlier_entry(
    source: Source, profiles: tuple[Customer, Customer]
) -> None:
    kept, merged = profiles
    shared, only_merged, only_kept = segment("Shared"), segment("Only merged"), segment("Only kept")
    long_ago, lately = timezone.now() - timedelta(days=30), timezone.now() - timedelta(days=1)
    SegmentMembership.objects.create(segment=shared, customer=kept, entered_at=lately)
    SegmentMembership.objects.create(segment=shared, customer=merged, entered_at=long_ago)
    SegmentMembership.objects.create(segment=only_merged, customer=merged, entered_at=long_ago)
    SegmentMembership.objects.create(segment=only_kept, customer=kept, entered_at=lately)
    both_drafts, merged_draft = segment("Draft both"), segment("Draft merged")
    both_drafts.draft_test_customers.add(kept, merged)
    merged_draft.draft_test_customers.add(merged)
    sign_in(source)
    memberships = {m.segment.name: m.entered_at for m in SegmentMembership.objects.filter(customer=kept)}
    assert memberships == {"Shared": long_ago, "Only merged": long_ago, "Only kept": lately}
    assert list(both_drafts.draft_test_customers.all()) == [kept]
    assert list(merged_draft.draft_test_customers.all()) == [kept]
    reconciled = ProfileMerge.objects.get(outcome=ProfileMerge.Outcome.MERGED).detail["reconciled"]
    assert reconciled["segments.SegmentMembership in both (earlier entry kept)"] == 1


def test_the_send_throttle_keeps_the_later_send(source: Source, profiles: tuple[Customer, Customer]) -> None:
    kept, merged = profiles
    later = timezone.now() - timedelta(hours=1)
    CustomerMessageLock.objects.create(customer=kept, last_sent_at=later - timedelta(days=5))
    CustomerMessageLock.objects.create(customer=merged, last_sent_at=later)
    sign_in(source)
    assert list(CustomerMessageLock.objects.values_list("customer_id", "last_sent_at")) == [(kept.pk, later)]


def test_a_lone_throttle_row_moves(source: Source, profiles: tuple[Customer, Customer]) -> None:
    kept, merged = profiles
    sent = timezone.now() - timedelta(hours=2)
    CustomerMessageLock.objects.create(customer=merged, last_sent_at=sent)
    sign_in(source)
    assert list(CustomerMessageLock.objects.values_list("customer_id", "last_sent_at")) == [(kept.pk, sent)]


def test_computed_traits_of_the_kept_profile_count_the_merged_profiles_events(
    source: Source, profiles: tuple[Customer, Customer]
) -> None:
    kept, merged = profiles
    opened = make_trait("apps_opened", ComputedTrait.Kind.COUNT, event="App Opened")
    logged_in = make_trait("logged_in", ComputedTrait.Kind.COUNT, event="Logged In")
    ingest(source, call("k-2", user_id="usr_1", name="App Opened"))
    ingest(source, *(call(f"p-{n}", anonymous_id="phone", name="App Opened") for n in range(2, 4)))
    assert ComputedTraitValue.objects.get(trait=opened, customer=kept).value == 1
    assert ComputedTraitValue.objects.get(trait=opened, customer=merged).value == 2  # the fixture's came first
    sign_in(source)  # an identify: no App Opened in this batch
    # Recomputed from the kept profile's whole history: its own, the merged profile's, the one before the trait.
    assert ComputedTraitValue.objects.get(trait=opened, customer=kept).value == 4
    assert ComputedTraitValue.objects.get(trait=logged_in, customer=kept).value == 1
    assert not ComputedTraitValue.objects.filter(customer_id=merged.pk).exists()


def test_consent_refused_by_either_profile_stays_refused(source: Source, profiles: tuple[Customer, Customer]) -> None:
    kept, merged = profiles
    Customer.objects.filter(pk=kept.pk).update(consent={"destinations": False})
    Customer.objects.filter(pk=merged.pk).update(consent={"email": False, "destinations": True})
    sign_in(source)
    assert Customer.objects.get(pk=kept.pk).consent == {"email": False, "destinations": False}


def test_every_model_with_one_row_per_customer_has_a_merge_rule() -> None:
    # A table added later with a unique constraint over its customer must say how a merge reconciles it.
    for link in customer_links():
        if link.unique_sets:
            assert link.model in merges._rules or link.model._meta.auto_created, link.label


def test_rows_without_a_rule_stop_the_merge_instead_of_being_deleted(
    source: Source, profiles: tuple[Customer, Customer], monkeypatch: pytest.MonkeyPatch
) -> None:
    kept, merged = profiles
    trial(kept, started_days_ago=3)
    trial(merged, started_days_ago=9)
    monkeypatch.setattr(merges, "_rules", {k: v for k, v in merges._rules.items() if k is not Trial})
    with pytest.raises(MergeRuleMissing, match=r"trials\.Trial"):
        messages_ingest(source=source, messages=[call("link", type="identify", user_id="usr_1", anonymous_id="phone")])
    assert Trial.objects.filter(customer=merged).count() == 1
    assert Customer.objects.filter(pk=merged.pk).exists()
    assert AnonymousId.objects.get(anonymous_id="phone").customer_id == merged.pk


def test_events_of_the_merged_profile_follow_it(source: Source, profiles: tuple[Customer, Customer]) -> None:
    kept, _ = profiles
    sign_in(source)
    assert set(Event.objects.values_list("customer_id", flat=True)) == {kept.pk}
    assert Event.objects.count() == 3


def test_the_customer_page_shows_what_was_reconciled(
    source: Source, profiles: tuple[Customer, Customer], admin_user: Any
) -> None:
    kept, merged = profiles
    trial(kept, started_days_ago=3)
    trial(merged, started_days_ago=9)
    sign_in(source)
    client = Client()
    client.force_login(admin_user)
    page = client.get(f"/customers/{kept.pk}/").content.decode()
    assert "reconciled: 1 trials.Trial older current trial made non-current" in page
