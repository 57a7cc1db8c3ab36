"""GDPR erasure leaves nothing: one person is put into every table that can hold personal data, through the
doors real data comes in by (the tracking API, Stripe webhooks, outbound deliveries, lifecycle emails, plays
and briefs, a cancellation session, a segment naming them, an upload, a failed job, the admin), erased through
the API, and then every column of every table the database has — found by introspection, so a table added later
is searched too — and every file under the upload folder is searched for their email, ids, name and phone.

A colleague in the same account goes through the same doors and must keep everything but the mentions of the
person (their alert's brief no longer lists them).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import AbstractUser
from django.contrib.contenttypes.models import ContentType
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client, TestCase
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audiences.models import Account, Customer, CustomerErasure, Event, ProfileMerge, Source
from audiences.privacy.erase import customer_erase
from audiences.privacy.relations import customer_relations
from audiences.privacy.rules import NOT_SEARCHED, erasure_rules
from audiences.services import source_create
from config.facts import Fact, FactKind
from config.jobs import task_run_recorded
from config.models import AuditEntry, TaskRun
from integrations.destinations.emit import outbound_emit
from integrations.destinations.models import Destination, DestinationDelivery
from integrations.destinations.services import destination_create
from integrations.stripe.event_models import StripeEvent, StripeWebhookDelivery
from integrations.stripe.models import StripeCustomer
from integrations.tests import stripe_payloads as sp
from integrations.tests.receiver import Receiver
from integrations.tracking.models import ImportJob, IngestionError, TrackingPlan, TrackingPlanViolation
from integrations.tracking.plans import source_tracking_plan_set
from offers import sessions
from offers.models import CancellationFlow, CancellationReason, CancellationSession, FlowRule
from segments.evaluation import segment_evaluate
from segments.services import segment_save
from trials.messaging.models import EmailSettings, MessageSend, MessageTemplate
from trials.messaging.realtime import event_templates_forget
from trials.messaging.templates import message_template_save
from trials.plays.alerts import Target, alert_claim, alert_done, alerts_create
from trials.plays.models import Alert, Play

SECRET = "whsec_erasure"
ADA = {
    "user_id": "usr_ada_7f3k",
    "anonymous_id": "anon-5c1e-4bd2-ada",
    "email": "ada.lovelace@analytical.test",
    "name": "Ada Lövelace",
    "phone": "+44 20 7946 0958",
    "stripe_customer_id": "cus_AdaLovelace01",
}
BOB = {"user_id": "usr_bob_2", "email": "bob.babbage@analytical.test", "name": "Bob Babbage"}


def _variants(value: str) -> set[str]:
    """How a value can sit in a column: as is, or inside JSON written with ASCII escapes (SQLite, raw bodies)."""
    return {value.lower(), json.dumps(value)[1:-1].lower()}


def every_column_of_every_table() -> Iterator[tuple[str, str, str]]:
    """(table, column, value as text) for every non-null value in the database, tables found by introspection."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            columns = [column.name for column in connection.introspection.get_table_description(cursor, table)]
            casts = ", ".join(f"CAST({quote(column)} AS TEXT)" for column in columns)
            cursor.execute(f"SELECT {casts} FROM {quote(table)}")
            for row in cursor.fetchall():
                for column, value in zip(columns, row, strict=True):
                    if value is not None:
                        yield table, column, str(value)


def hits(person: dict[str, str], files: Path) -> list[str]:
    """Where the database or a file under `files` still names the person."""
    needles = {variant for value in person.values() for variant in _variants(value)}
    found = [
        f"{table}.{column}: {value[:200]}"
        for table, column, value in every_column_of_every_table()
        if any(needle in value.lower() for needle in needles)
    ]
    for path in sorted(files.rglob("*")):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace").lower()
            found += [f"file {path.name}: {needle}" for needle in needles if needle in text]
    return found


def track(write_key: str, *calls: dict[str, Any]) -> dict[str, Any]:
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = Client().post(
            "/v1/batch",
            data=json.dumps({"batch": list(calls)}),
            content_type="application/json",
            HTTP_AUTHORIZATION=auth,
        )
    assert response.status_code == 200, response.content
    answer: dict[str, Any] = response.json()
    return answer


def stripe_deliver(event: dict[str, Any], secret: str = SECRET) -> int:
    body, header = sp.signed(event, secret)
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = Client().post(
            "/webhooks/stripe/", data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
        )
    return int(response.status_code)


@pytest.fixture
def world(settings: Any, tmp_path: Path, receiver: Receiver) -> Iterator[dict[str, Any]]:
    settings.STRIPE_WEBHOOK_SECRETS = [SECRET]
    settings.STRIPE_API_KEY = ""
    settings.DESTINATIONS_ALLOW_PRIVATE_URLS = True
    settings.IMPORT_DIR = tmp_path / "imports"
    EmailSettings.objects.update_or_create(pk=1, defaults={"quiet_start_hour": 0, "quiet_end_hour": 0})
    MessageTemplate.objects.update(active=False)
    event_templates_forget()
    sp.reset_ids()
    yield {"imports": tmp_path / "imports", "receiver": receiver}
    event_templates_forget()


def everyone_goes_through_every_door(
    world: dict[str, Any], admin: AbstractUser, rep: AbstractUser
) -> tuple[Customer, Customer]:
    source, write_key = source_create(name="Web app")
    receiver: Receiver = world["receiver"]
    receiver.echo_failures = True
    destination_create(name="CRM", kind=Destination.Kind.WEBHOOK, url=receiver.url, kinds=list(FactKind.values))
    destination_create(
        name="Warehouse",
        kind=Destination.Kind.SEGMENT,
        url=receiver.url.rsplit("/", 2)[0],
        kinds=["audience_entered", "audience_exited", "trait_changed", "billing_event"],
        write_key="wk_warehouse",
    )

    # A tracking plan whose identify schema the phone breaks: the violation quotes the value.
    plan = TrackingPlan.objects.create(
        name="Web", identify_schema={"type": "object", "properties": {"phone": {"type": "integer"}}}
    )
    source_tracking_plan_set(source=source, plan=plan, mode="flag")

    # A lifecycle email on sign-up.
    message_template_save(
        MessageTemplate(
            key="welcome",
            name="Welcome",
            subject="Welcome {{ first_name }}",
            html_body="<p>Hi {{ name }}</p>",
            text_body="Hi {{ name }}",
            trigger=MessageTemplate.Trigger.EVENT,
            trigger_event="Signed Up",
            holdout_percent=0,
            no_holdout=True,  # everyone is sent it, whatever their ids
        )
    )

    for person in (ADA, BOB):
        first, last = person["name"].split(" ")
        traits = {"email": person["email"], "name": person["name"], "first_name": first, "last_name": last}
        if "phone" in person:
            traits["phone"] = person["phone"]
        track(
            write_key,
            {"type": "identify", "userId": person["user_id"], "traits": traits},
            {
                "type": "group",
                "userId": person["user_id"],
                "groupId": "grp_analytical",
                "traits": {"name": "Analytical Engines", f"contact_{first.lower()}": person["email"]},
            },
            # Rejected (a track without an event name): the error log keeps the call.
            {"type": "track", "userId": person["user_id"], "properties": {"email": person["email"]}},
        )
    # Ada browsed anonymously first: a profile of its own, with a delivery about it...
    track(write_key, {"type": "page", "anonymousId": ADA["anonymous_id"], "name": "Pricing"})
    anonymous = Customer.objects.get(anonymous_ids__anonymous_id=ADA["anonymous_id"])
    receiver.answer(400, 400)  # refused for good, quoting what it got: the response is logged with the delivery
    with TestCase.captureOnCommitCallbacks(execute=True):
        outbound_emit(
            [
                Fact(
                    kind=FactKind.AUDIENCE_ENTERED,
                    customer_id=anonymous.pk,
                    idempotency_key=f"audience:1:entered:{anonymous.pk}",
                    occurred_at=timezone.now(),
                    data={"audience": {"id": 1, "key": "visitors", "name": "Visitors"}},
                )
            ]
        )
    # ... then signed up: the anonymous profile is merged into hers, its delivery kept without a customer.
    track(
        write_key,
        {"type": "identify", "userId": ADA["user_id"], "anonymousId": ADA["anonymous_id"]},
        {"type": "track", "userId": ADA["user_id"], "event": "Signed Up", "properties": {"email": ADA["email"]}},
        {
            "type": "track",
            "userId": ADA["user_id"],
            "event": "Project Created",
            "properties": {"owner": ADA["name"], "contact": ADA["phone"]},
        },
    )
    track(write_key, {"type": "track", "userId": BOB["user_id"], "event": "Signed Up"})
    ada = Customer.objects.get(user_id=ADA["user_id"])
    bob = Customer.objects.get(user_id=BOB["user_id"])
    assert ProfileMerge.objects.filter(customer=ada).exists()
    # The merge moved the anonymous profile's delivery to her (audiences.merges): it is hers to erase.
    [orphan] = [d for d in DestinationDelivery.objects.filter(customer=ada) if ADA["anonymous_id"] in d.last_error]
    # A delivery orphaned by a merge made before merges moved rows: still found by what its payload says.
    orphan.pk = None
    orphan.customer = None
    orphan.idempotency_key = f"{orphan.idempotency_key}:orphaned"
    orphan.save()

    # Stripe: her customer (linked by email), a trialing subscription, an invoice, a charge and its dispute, an
    # event type Trialloop ignores, and a delivery refused for its signature.
    customer = sp.customer(ADA["stripe_customer_id"], email=ADA["email"], name=ADA["name"])
    customer["phone"] = ADA["phone"]
    customer["metadata"] = {"user_id": ADA["user_id"]}
    price = sp.price("price_team", product="prod_team", unit_amount=4900)
    subscription = sp.subscription("sub_ada", customer=ADA["stripe_customer_id"], items=[(price, 1)], status="trialing")
    charge = sp.charge("ch_ada", customer=ADA["stripe_customer_id"], amount=4900)
    dispute = {
        "id": "du_ada",
        "object": "dispute",
        "charge": "ch_ada",
        "amount": 4900,
        "currency": "usd",
        "reason": "fraudulent",
        "evidence": {"customer_email_address": ADA["email"], "customer_name": ADA["name"]},
    }
    for event in (
        sp.event("product.created", sp.product("prod_team", name="Team")),
        sp.event("price.created", price),
        sp.event("customer.created", customer),
        sp.event("customer.subscription.created", subscription),
        sp.event(
            "invoice.paid",
            sp.invoice(
                "in_ada", customer=ADA["stripe_customer_id"], subscription_id="sub_ada", amount_due=4900, status="paid"
            ),
        ),
        sp.event("charge.succeeded", charge),
        sp.event("charge.dispute.created", dispute),
        sp.event(
            "payment_intent.succeeded",
            {
                "id": "pi_ada",
                "object": "payment_intent",
                "customer": ADA["stripe_customer_id"],
                "receipt_email": ADA["email"],
            },
        ),
    ):
        assert stripe_deliver(event) == 200
    assert stripe_deliver(sp.event("customer.updated", customer), secret="whsec_wrong") == 400
    assert StripeCustomer.objects.get(stripe_customer_id=ADA["stripe_customer_id"]).customer == ada

    # Alerts with briefs for both; Bob's brief lists Ada as a teammate. A rep closes Ada's with notes.
    play = Play.objects.order_by("pk").first()
    assert play is not None
    play.holdout_percent, play.no_holdout = 0, True  # both are alerted, whatever their ids
    now = timezone.now()
    alerts_create(
        play=play, targets=[Target(ada.pk, ada.account_id, None), Target(bob.pk, bob.account_id, None)], now=now
    )
    bobs_alert = Alert.objects.get(customer=bob)
    assert ADA["email"] in json.dumps(bobs_alert.brief)
    adas_alert = Alert.objects.get(customer=ada)
    alert_claim(alert_id=adas_alert.pk, user=rep)
    alert_done(alert_id=adas_alert.pk, user=rep, outcome="reached", notes=f"Called {ADA['name']} on {ADA['phone']}")

    # A cancellation session with feedback.
    reason = CancellationReason.objects.create(label="Too expensive", stripe_feedback="too_expensive", position=1)
    flow = CancellationFlow.objects.create(name="Standard", ask_feedback=True, is_draft=False)
    flow.reasons.set([reason])
    FlowRule.objects.create(flow=flow, position=1, is_draft=False)
    session, _ = sessions.session_start(source=source, user_id=ADA["user_id"])
    sessions.session_answer_reason(
        session=session, reason_id=reason.pk, feedback=f"Too pricey. {ADA['name']}, {ADA['email']}"
    )

    # A segment that names her: configuration, its versions and the audit log quote the email.
    segment = segment_save(
        name="Key contacts",
        conditions={"type": "condition", "property": "customer.email", "operator": "equals", "value": ADA["email"]},
        owner=admin,
    )
    segment_evaluate(segment=segment)

    # A historical import whose upload holds her rows, one of them rejected.
    upload = "userId,event,timestamp,email\n" + "\n".join(
        [
            f"{ADA['user_id']},Report Run,2026-09-01T10:00:00Z,{ADA['email']}",
            f"{ADA['user_id']},Report Run,yesterday,{ADA['email']}",
            f"{BOB['user_id']},Report Run,2026-09-01T11:00:00Z,{BOB['email']}",
        ]
    )
    client = Client()
    client.force_login(admin)  # type: ignore[arg-type]
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(
            reverse("import-list"),
            {"file": SimpleUploadedFile("events.csv", upload.encode()), "kind": "events", "source": source.pk},
        )
    assert response.status_code == 302
    assert ImportJob.objects.get().rejected_count == 1

    # A job that failed on her row, and an admin's change to her profile.
    with pytest.raises(RuntimeError), task_run_recorded("profile sync"):
        raise RuntimeError(f"duplicate key value violates unique constraint: (email)=({ADA['email']})")
    LogEntry.objects.log_actions(
        user_id=admin.pk, queryset=[ada], action_flag=CHANGE, change_message=f"Changed email to {ADA['email']}."
    )
    return ada, bob


@pytest.mark.django_db
def test_erasure_leaves_nothing_of_the_person_in_any_table_or_upload(
    world: dict[str, Any], admin_user: AbstractUser, rep_user: AbstractUser, api_client_for: Any
) -> None:
    ada, bob = everyone_goes_through_every_door(world, admin_user, rep_user)
    present = hits(ADA, world["imports"])
    for where in (
        "integrations_ingestionerror",
        "integrations_stripewebhookdelivery",
        "integrations_stripeevent",
        "integrations_destinationdelivery",
        "project_auditentry",
        "project_taskrun",
        "trials_alert",
        "trials_messagesend",
        "offers_cancellationsession",
        "integrations_trackingplanviolation",
        "django_admin_log",
        "audiences_account",
        "segments_segmentversion",
        "file ",
    ):
        assert any(hit.startswith(where) for hit in present), f"the setup put nothing of Ada into {where}"
    assert mail.outbox and MessageSend.objects.filter(customer=ada).exists()
    bob_before = {
        "events": Event.objects.filter(customer=bob).count(),
        "errors": IngestionError.objects.filter(payload__contains=BOB["user_id"]).count(),
        "violations": TrackingPlanViolation.objects.count(),
    }

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = api_client_for(admin_user).post(f"/api/v1/customers/{ada.pk}/erase/", {}, format="json")

    assert response.status_code == 200, response.content
    left = hits(ADA, world["imports"])
    assert left == [], "\n".join(left)
    redacted = response.json()["redacted_rows"]
    for label in ("audiences.Account", "project.AuditEntry", "trials.Alert", "integrations.ImportJob file"):
        assert redacted.get(label), f"{label} not reported as redacted: {redacted}"
    assert CustomerErasure.objects.get().redacted_rows == redacted
    # Everyone else keeps their data: Bob, his account, his alert (without Ada), his row of the upload.
    assert Event.objects.filter(customer=bob).count() == bob_before["events"]
    assert IngestionError.objects.filter(payload__contains=BOB["user_id"]).count() == bob_before["errors"] == 1
    assert TrackingPlanViolation.objects.count() == bob_before["violations"]
    assert Account.objects.get(group_id="grp_analytical").traits["contact_bob"] == BOB["email"]
    brief = Alert.objects.get(customer=bob).brief
    assert brief["who"]["email"] == BOB["email"] and brief["teammates"] == []
    assert StripeEvent.objects.filter(type__in=["product.created", "price.created"]).count() == 2
    assert not StripeWebhookDelivery.objects.filter(event__isnull=True, status_code=200).exists()
    upload = next(world["imports"].glob("*events.csv")).read_text().splitlines()
    assert upload[0] == "userId,event,timestamp,email" and upload[1:3] == [",,,", ",,,"]
    assert upload[3].startswith(BOB["user_id"])
    assert not CancellationSession.objects.exists() and Customer.objects.filter(pk=bob.pk).exists()
    assert AuditEntry.objects.filter(model="segments.Segment").exists() and TaskRun.objects.exists()
    assert LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(Customer)).exists()


def test_every_model_is_either_walked_searched_or_excluded_with_a_reason() -> None:
    """A model added later is covered without anyone listing it: reached by the foreign-key walk, or searched by
    default when it has a text or JSON column; leaving one out needs an entry in NOT_SEARCHED with its reason."""
    from django.apps import apps

    from audiences.privacy.rules import text_columns

    walked = {relation.label for relation in customer_relations()}
    searched = {rule.label for rule in erasure_rules()}
    for model in apps.get_models():
        label = model._meta.label
        if not text_columns(model) or label in walked:
            continue
        assert label in searched or NOT_SEARCHED.get(label), f"{label} would keep a person's data after erasure"
    assert {"integrations.IngestionError", "project.AuditEntry", "project.TaskRun", "admin.LogEntry"} <= searched
    assert {"integrations.StripeWebhookDelivery", "integrations.DestinationDelivery", "trials.Alert"} <= searched


def _someone(user_id: str, email: str, group_id: str | None = None) -> Customer:
    account = Account.objects.create(group_id=group_id, name="Home") if group_id else None
    return Customer.objects.create(user_id=user_id, email=email, account=account)


def _ingestion_error(source: Source, payload: dict[str, Any]) -> IngestionError:
    return IngestionError.objects.create(
        source=source, received_at=timezone.now(), route="batch", error="track needs an event name",
        payload=json.dumps(payload),
    )  # fmt: skip


@pytest.mark.django_db
class TestNothingElseIsTouched:
    def test_a_numeric_user_id_is_erased_where_it_is_an_id_and_left_where_it_is_a_number(self, source: Source) -> None:
        person = _someone("42", "n42@example.test")
        theirs = _ingestion_error(source, {"type": "track", "userId": "42", "properties": {}})
        others = _ingestion_error(source, {"type": "track", "userId": "7", "properties": {"seats": "42", "n": 42}})
        TaskRun.objects.create(name="report", started_at=timezone.now(), detail={"rows": "42", "page": 42})

        customer_erase(customer=person, actor=None, via="command")

        assert not IngestionError.objects.filter(pk=theirs.pk).exists()
        assert IngestionError.objects.get(pk=others.pk).payload == others.payload
        assert TaskRun.objects.get().detail == {"rows": "42", "page": 42}

    def test_redacting_a_unique_column_keeps_it_unique(self) -> None:
        # Personal workspaces often use the user id as the group id; two such people are erased one after the other.
        first = _someone("usr_1a2b", "one@example.test", group_id="usr_1a2b")
        second = _someone("usr_3c4d", "two@example.test", group_id="usr_3c4d")

        customer_erase(customer=first, actor=None, via="command")
        customer_erase(customer=second, actor=None, via="command")

        group_ids = sorted(Account.objects.values_list("group_id", flat=True))
        assert len(set(group_ids)) == 2 and all(value.startswith("[erased-") for value in group_ids)

    def test_a_failed_erasure_changes_no_row_and_no_file(self, source: Source, settings: Any, tmp_path: Path) -> None:
        settings.IMPORT_DIR = tmp_path
        upload = tmp_path / "upload-events.csv"
        upload.write_text("userId,event\nusr_9z8y,Report Run\nusr_other,Report Run\n")
        ImportJob.objects.create(source=source, kind="events", file_format="csv", file_path=str(upload),
                                 original_name="events.csv")  # fmt: skip
        person = _someone("usr_9z8y", "nine@example.test")
        error = _ingestion_error(source, {"type": "track", "userId": "usr_9z8y"})

        with (
            mock.patch.object(CustomerErasure.objects, "create", side_effect=RuntimeError("disk full")),
            pytest.raises(RuntimeError),
            TestCase.captureOnCommitCallbacks(execute=True),
        ):
            customer_erase(customer=person, actor=None, via="command")

        assert Customer.objects.filter(pk=person.pk).exists() and IngestionError.objects.filter(pk=error.pk).exists()
        assert upload.read_text() == "userId,event\nusr_9z8y,Report Run\nusr_other,Report Run\n"
        assert sorted(path.name for path in tmp_path.iterdir()) == ["upload-events.csv"]

    def test_the_search_costs_the_same_queries_whatever_the_number_of_other_rows(self, source: Source) -> None:
        def erase_one(user_id: str) -> int:
            person = _someone(user_id, f"{user_id}@example.test")
            _ingestion_error(source, {"type": "track", "userId": user_id})
            with CaptureQueriesContext(connection) as queries:
                customer_erase(customer=person, actor=None, via="command")
            return len(queries.captured_queries)

        few = erase_one("usr_first1")
        for n in range(60):
            _ingestion_error(source, {"type": "track", "userId": f"usr_other{n}", "properties": {"n": n}})
            AuditEntry.objects.create(at=timezone.now(), via="ui", action="changed", model="segments.Segment",
                                      object_id=str(n), object_repr=f"Segment {n}", changes={"name": ["a", "b"]})  # fmt: skip
        many = erase_one("usr_second")

        assert many == few
