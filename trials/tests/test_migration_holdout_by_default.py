"""Migration trials.0014 on a populated database: every template and play that never explicitly chose "no
holdout" holds 10% out; a 0 the audit log shows someone setting keeps 0 with `no_holdout` ticked; a holdout
someone typed stays; each change is in the audit log."""

from __future__ import annotations

import pytest
from django.utils import timezone

from config.tests.migrating import migrate_to

BEFORE = [("trials", "0013_message_priority_window"), ("project", "0005_remove_hand_written_sign_in_lockout")]
AFTER = [("trials", "0014_holdout_by_default")]


@pytest.mark.django_db(transaction=True)
def test_holdouts_never_chosen_become_ten_percent() -> None:
    old = migrate_to(BEFORE)
    Template, Play, AuditEntry = (
        old.get_model("trials", "MessageTemplate"),
        old.get_model("trials", "Play"),
        old.get_model("project", "AuditEntry"),
    )
    seeded = set(Template.objects.values_list("key", flat=True)) | set(Play.objects.values_list("key", flat=True))
    assert seeded and not Template.objects.exclude(holdout_percent=0).exists()  # the seeds: 0, never chosen
    fields = {"name": "T", "trigger": "event", "trigger_event": "X"}
    Template.objects.create(key="never", **fields)
    created_at_zero = Template.objects.create(key="created-at-zero", **fields)
    edited_to_zero = Template.objects.create(key="edited-to-zero", **fields)
    typed = Template.objects.create(key="typed", holdout_percent=25, **fields)
    quiet_play = Play.objects.create(key="quiet-play", name="P", condition={})
    edited_play = Play.objects.create(key="edited-play", name="P", condition={})
    now = timezone.now()
    for label, row, action, change in (
        ("trials.MessageTemplate", created_at_zero, "created", [None, 0]),
        ("trials.MessageTemplate", edited_to_zero, "changed", [20, 0]),
        ("trials.Play", edited_play, "changed", [10, 0]),
    ):
        AuditEntry.objects.create(
            at=now, via="ui", action=action, model=label, object_id=str(row.pk), object_repr="x",
            changes={"holdout_percent": change},
        )  # fmt: skip
    AuditEntry.objects.create(
        at=now, via="ui", action="changed", model="trials.Play", object_id=str(quiet_play.pk), object_repr="x",
        changes={"priority": [100, 0]},
    )  # fmt: skip

    new = migrate_to(AFTER)
    NewTemplate, NewPlay, NewAudit = (
        new.get_model("trials", "MessageTemplate"),
        new.get_model("trials", "Play"),
        new.get_model("project", "AuditEntry"),
    )
    templates = dict(NewTemplate.objects.values_list("key", "holdout_percent"))
    chosen = set(NewTemplate.objects.filter(no_holdout=True).values_list("key", flat=True))
    plays = dict(NewPlay.objects.values_list("key", "holdout_percent"))
    # Created with 0 is the old default pre-filled by the editor, not a choice; edited down to 0 is one.
    assert chosen == {"edited-to-zero"}
    assert (templates["never"], templates["created-at-zero"], templates["typed"]) == (10, 10, 25)
    assert templates["edited-to-zero"] == 0
    assert (plays["quiet-play"], plays["edited-play"]) == (10, 0)
    assert set(NewPlay.objects.filter(no_holdout=True).values_list("key", flat=True)) == {"edited-play"}
    assert all(templates[key] == 10 for key in seeded if key in templates)
    assert all(plays[key] == 10 for key in seeded if key in plays)
    recorded = NewAudit.objects.filter(via="system", actor_name="trials.0014_holdout_by_default")
    assert recorded.get(model="trials.MessageTemplate", object_id=str(created_at_zero.pk)).changes == {
        "holdout_percent": [0, 10]
    }
    assert recorded.get(model="trials.Play", object_id=str(edited_play.pk)).changes == {"no_holdout": [False, True]}
    assert not recorded.filter(model="trials.MessageTemplate", object_id=str(typed.pk)).exists()

    # Going back keeps the percentages (the old schema cannot say "chosen").
    back = migrate_to(BEFORE).get_model("trials", "MessageTemplate")
    assert dict(back.objects.filter(key__in=["never", "created-at-zero"]).values_list("key", "holdout_percent")) == {
        "never": 10,
        "created-at-zero": 10,
    }
    migrate_to()
