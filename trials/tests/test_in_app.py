"""In-app prompts: the API's doors, proof of who asks and errors, which prompt is served (priority, holdout,
consent, dismissal window, one open prompt), what the product reports back (idempotent, on the timeline), and
dismissal rates."""

from __future__ import annotations

import base64
import itertools
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from audiences.models import Customer, Event, Source
from audiences.services import auth_hash, source_create
from trials.loop.models import Trial, TrialStage
from trials.messaging.in_app import DISMISSAL_FLAG_MIN_SHOWN, in_app_prompt, in_app_record, in_app_stats
from trials.messaging.models import CustomerMessageLock, EmailSettings, MessageSend, MessageTemplate
from trials.messaging.templates import message_template_save
from trials.tests.holdouts import without_holdout

pytestmark = pytest.mark.django_db
_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def only_our_templates(db: Any) -> None:
    """The seeded in-app default would qualify for every trial; each test names its own templates."""
    EmailSettings.objects.get_or_create(pk=1)
    MessageTemplate.objects.filter(channel=MessageTemplate.Channel.IN_APP).update(active=False)


@dataclass(frozen=True)
class ProductKeys:
    """The product's source and its keys: the write key its browser holds, the secret key its server holds."""

    source: Source
    write_key: str
    secret_key: str


@pytest.fixture
def keys(db: Any) -> ProductKeys:
    source, write_key = source_create(name="Product")
    return ProductKeys(source=source, write_key=write_key, secret_key=source.secret_key)


def basic(write_key: str) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


class Product(APIClient):
    """The product calling the in-app API: from its server with the source's secret key, or from the customer's
    browser with the write key and the auth_hash its server signed for the user id in the path (in the
    Trialloop-Auth-Hash header)."""

    def __init__(self, keys: ProductKeys, *, browser: bool) -> None:
        super().__init__()
        self.keys, self.browser = keys, browser
        self.credentials(HTTP_AUTHORIZATION=basic(keys.write_key) if browser else f"Bearer {keys.secret_key}")

    def request(self, **kwargs: Any) -> Any:
        if self.browser:
            user_id = kwargs["PATH_INFO"].rsplit("/", 1)[-1]
            kwargs.setdefault("HTTP_TRIALLOOP_AUTH_HASH", auth_hash(self.keys.secret_key, user_id))
        return super().request(**kwargs)


@pytest.fixture(params=["server", "browser"])
def product(request: Any, keys: ProductKeys) -> Product:
    """The product, from its server and from the customer's browser (each API test runs both ways)."""
    return Product(keys, browser=request.param == "browser")


def person(user_id: str | None = None, **traits: Any) -> Customer:
    number = next(_ids)
    customer = Customer.objects.create(
        user_id=user_id or f"usr_{number}", email=f"p{number}@example.test", name="Bo Lee", traits=traits
    )
    now = timezone.now()
    Trial.objects.create(
        customer=customer,
        started_at=now - timedelta(days=2),
        ends_at=now + timedelta(days=12),
        stage=TrialStage.TRIGGER,
        stage_changed_at=now,
    )
    return customer


def prompt_template(**fields: Any) -> MessageTemplate:
    values: dict[str, Any] = {
        "key": f"prompt-{next(_ids)}",
        "name": "Finish setup",
        "channel": MessageTemplate.Channel.IN_APP,
        "trigger": MessageTemplate.Trigger.TRIAL_DAY,
        "trigger_number": 1,
        "subject": "Hi {{ first_name }}",
        "html_body": "<p>Hello {{ first_name }}, {{ trial_days_left }} days left</p>",
        "text_body": "Hello {{ first_name }}",
        "priority": 50,
        **fields,
    }
    return message_template_save(MessageTemplate(**without_holdout(values)))


def url(user_id: str) -> str:
    return f"/api/v1/in-app/{user_id}"


class TestDoors:
    def test_a_key_is_required(self, api_client_for: Any, admin_user: Any) -> None:
        person("usr_bo")
        for nobody in (APIClient(), api_client_for(admin_user)):  # nothing, or a staff token
            answer = nobody.get(url("usr_bo"))
            assert (answer.status_code, answer.json()["code"]) == (401, "proof_missing")
            assert "secret key" in answer.json()["error"] and "auth_hash" in answer.json()["error"]
        wrong = APIClient()
        wrong.credentials(HTTP_AUTHORIZATION=basic("nope"))
        answer = wrong.get(url("usr_bo"))
        assert (answer.status_code, answer.json()["error"]) == (401, "Invalid write key.")
        wrong.credentials(HTTP_AUTHORIZATION="Bearer tlsk_" + "x" * 43)
        assert (wrong.get(url("usr_bo")).status_code, wrong.get(url("usr_bo")).json()["code"]) == (
            401,
            "secret_key_invalid",
        )

    def test_an_unknown_user_is_a_404(self, product: Product) -> None:
        answer = product.get(url("usr_nobody"))
        assert answer.status_code == 404
        assert answer.json() == {"error": "No customer with user id 'usr_nobody'.", "code": "unknown_user"}
        assert product.post(url("usr_nobody"), {"prompt_id": 1, "action": "shown"}, format="json").status_code == 404

    def test_bad_reports_are_clear_4xx(self, product: Product) -> None:
        bo, other = person("usr_bo"), person("usr_other")
        prompt_template()
        served = product.get(url("usr_bo")).json()["prompt"]["id"]
        theirs = product.get(url("usr_other")).json()["prompt"]["id"]
        email = MessageSend.objects.create(
            customer=bo,
            template=MessageTemplate.objects.get(key="day-1-activation-nudge"),
            status=MessageSend.Status.SENT,
            created_at=timezone.now(),
        )
        cases: list[tuple[Any, int, str]] = [
            ({"prompt_id": served, "action": "liked"}, 400, "action"),
            ({"prompt_id": "x", "action": "shown"}, 400, "prompt_id"),
            ({"action": "shown"}, 400, "prompt_id"),
            ({"prompt_id": 999999, "action": "shown"}, 404, "No prompt 999999"),
            ({"prompt_id": theirs, "action": "shown"}, 404, f"No prompt {theirs}"),
            ({"prompt_id": email.pk, "action": "shown"}, 404, f"No prompt {email.pk}"),
            ([1, 2], 400, "JSON object"),
        ]
        for body, status, fragment in cases:
            answer = product.post(url("usr_bo"), body, format="json")
            assert answer.status_code == status, body
            assert fragment in answer.json()["error"], (body, answer.json())
        broken = product.post(url("usr_bo"), "{not json", content_type="application/json")
        assert broken.status_code == 400
        assert "JSON parse error" in broken.json()["error"]
        assert MessageSend.objects.filter(customer=bo, shown_at__isnull=False).count() == 0
        assert customer_events(bo) == []
        assert other.message_sends.get().shown_at is None


class TestProofOfWhoAsks:
    """The write key is in every customer's browser (analytics.js): alone, it must not read another customer's
    personalised prompt nor record a dismissal for them. A call needs the auth_hash of the user id in the path
    (signed by the source's secret key on the product's server), or the secret key itself from the server."""

    def browser(self, keys: ProductKeys) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=basic(keys.write_key))
        return client

    def test_a_write_key_alone_reads_no_prompt(self, keys: ProductKeys) -> None:
        person("usr_bo", first_name="Bo")
        prompt_template()
        for user_id in ("usr_bo", "usr_nobody"):  # the same answer for a user who does not exist
            answer = self.browser(keys).get(url(user_id))
            assert answer.status_code == 401
            body = answer.json()
            assert body["code"] == "auth_hash_missing"
            assert "auth_hash" in body["error"] and "Bearer <secret key>" in body["error"]
            assert "Trialloop-Auth-Hash" in body["error"]
            assert answer["WWW-Authenticate"]
            assert "Bo" not in answer.content.decode()
        assert not MessageSend.objects.exists()

    def test_a_write_key_alone_records_no_dismissal(self, keys: ProductKeys) -> None:
        bo = person("usr_bo")
        prompt_template()
        served = in_app_prompt(bo)
        assert served is not None
        answer = self.browser(keys).post(url("usr_bo"), {"prompt_id": served.send.pk, "action": "dismissed"})
        assert (answer.status_code, answer.json()["code"]) == (401, "auth_hash_missing")
        served.send.refresh_from_db()
        assert (served.send.shown_at, served.send.dismissed_at) == (None, None)
        assert customer_events(bo) == []

    def test_the_hash_of_the_user_id_opens_their_prompts(self, keys: ProductKeys) -> None:
        bo = person("usr_bo")
        prompt_template()
        signed = auth_hash(keys.secret_key, "usr_bo")
        browser = self.browser(keys)
        assert browser.get(url("usr_bo")).status_code == 401
        by_query = browser.get(url("usr_bo"), {"auth_hash": signed})
        by_header = browser.get(url("usr_bo"), HTTP_TRIALLOOP_AUTH_HASH=signed.upper())
        assert by_query.status_code == by_header.status_code == 200
        prompt_id = by_query.json()["prompt"]["id"]
        assert by_header.json()["prompt"]["id"] == prompt_id
        shown = browser.post(url("usr_bo"), {"prompt_id": prompt_id, "action": "shown", "auth_hash": signed})
        dismissed = browser.post(
            url("usr_bo"), {"prompt_id": prompt_id, "action": "dismissed"}, HTTP_TRIALLOOP_AUTH_HASH=signed
        )
        assert shown.status_code == dismissed.status_code == 200, (shown.content, dismissed.content)
        assert dismissed.json()["dismissed_at"] is not None
        assert customer_events(bo) == ["In-App Prompt Shown", "In-App Prompt Dismissed"]

    def test_a_hash_for_one_customer_does_not_open_another_s(self, keys: ProductKeys) -> None:
        person("usr_ann")
        bo = person("usr_bo")
        prompt_template()
        served = in_app_prompt(bo)
        assert served is not None
        other_source, _ = source_create(name="Other product")
        browser = self.browser(keys)
        for wrong in (
            auth_hash(keys.secret_key, "usr_ann"),  # Ann's own hash, used on Bo
            auth_hash(other_source.secret_key, "usr_bo"),  # signed with another source's key
            "0" * 64,
            "not hex at all",
        ):
            read = browser.get(url("usr_bo"), {"auth_hash": wrong})
            report = browser.post(
                url("usr_bo"), {"prompt_id": served.send.pk, "action": "dismissed", "auth_hash": wrong}
            )
            for answer in (read, report):
                assert (answer.status_code, answer.json()["code"]) == (403, "auth_hash_invalid"), wrong
                assert "prompt" not in answer.json()
        served.send.refresh_from_db()
        assert served.send.dismissed_at is None
        assert MessageSend.objects.count() == 1  # nothing was served to Bo through Ann's hash

    def test_the_secret_key_from_the_server_reads_and_reports_for_any_customer(self, keys: ProductKeys) -> None:
        person("usr_ann")
        bo = person("usr_bo")
        prompt_template()
        server = APIClient()
        server.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.secret_key}")
        for user_id in ("usr_ann", "usr_bo"):
            assert server.get(url(user_id)).json()["prompt"] is not None
        prompt_id = bo.message_sends.get().pk
        dismissed = server.post(url("usr_bo"), {"prompt_id": prompt_id, "action": "dismissed"}, format="json")
        assert dismissed.status_code == 200 and dismissed.json()["dismissed_at"] is not None
        Source.objects.filter(pk=keys.source.pk).update(is_active=False)
        assert (server.get(url("usr_bo")).status_code, server.get(url("usr_bo")).json()["code"]) == (
            401,
            "secret_key_invalid",
        )

    def test_the_product_s_page_may_call_across_origins(self, keys: ProductKeys) -> None:
        preflight = APIClient().options(url("usr_bo"), HTTP_ORIGIN="https://app.example.com")
        assert preflight.status_code == 204
        assert preflight["Access-Control-Allow-Origin"] == "*"
        assert {"Authorization", "Trialloop-Auth-Hash"} <= {
            name.strip() for name in preflight["Access-Control-Allow-Headers"].split(",")
        }
        assert "Access-Control-Allow-Credentials" not in preflight
        refused = self.browser(keys).get(url("usr_bo"))
        assert (refused.status_code, refused["Access-Control-Allow-Origin"]) == (401, "*")


def customer_events(customer: Customer) -> list[str]:
    return list(Event.objects.filter(customer=customer).order_by("pk").values_list("name", flat=True))


class TestServing:
    def test_the_prompt_is_rendered_escaped_and_logged_once_however_often_asked(self, product: Product) -> None:
        bo = person("usr_bo", first_name="<b>Bo</b>")
        template = prompt_template()
        first = product.get(url("usr_bo"))
        assert first.status_code == 200
        prompt = first.json()["prompt"]
        assert prompt["template"] == template.key
        assert prompt["title"] == "Hi <b>Bo</b>"
        assert prompt["body_text"] == "Hello <b>Bo</b>"
        assert prompt["body_html"].startswith("<p>Hello &lt;b&gt;Bo&lt;/b&gt;, ")
        assert prompt["report"]["url"] == "http://testserver/api/v1/in-app/usr_bo"
        assert prompt["report"]["actions"]["dismissed"] == {"prompt_id": prompt["id"], "action": "dismissed"}
        assert prompt["shown_at"] is None
        send = MessageSend.objects.get(customer=bo)
        assert (send.pk, send.status, send.template_id, send.subject) == (
            prompt["id"],
            "sent",
            template.pk,
            "Hi <b>Bo</b>",
        )
        for _ in range(3):
            assert product.get(url("usr_bo")).json()["prompt"]["id"] == prompt["id"]
        assert MessageSend.objects.filter(customer=bo).count() == 1

    def test_nothing_to_show_is_a_null_prompt_and_no_row(self, product: Product) -> None:
        bo = person("usr_bo")
        prompt_template(trigger_number=5)  # day 5: not yet
        prompt_template(active=False)
        assert product.get(url("usr_bo")).json() == {"prompt": None}
        assert not MessageSend.objects.filter(customer=bo).exists()

    def test_the_condition_is_honoured(self, product: Product) -> None:
        person("usr_bo")
        habit_only = {
            "type": "group",
            "operator": "and",
            "children": [{"type": "condition", "property": "trial.stage", "operator": "equals", "value": "habit"}],
        }
        prompt_template(condition=habit_only)
        assert product.get(url("usr_bo")).json() == {"prompt": None}
        Trial.objects.filter(customer__user_id="usr_bo").update(stage=TrialStage.HABIT)
        assert product.get(url("usr_bo")).json()["prompt"] is not None

    def test_the_highest_priority_wins(self) -> None:
        bo = person()
        prompt_template(priority=60, key="later")
        prompt_template(priority=5, key="first")
        served = in_app_prompt(bo)
        assert served is not None and served.send.template.key == "first"

    def test_holdout_is_logged_once_and_shows_the_next_prompt(self) -> None:
        bo = person()
        held = prompt_template(priority=1, holdout_percent=100)
        other = prompt_template(priority=2)
        for _ in range(2):
            served = in_app_prompt(bo)
            assert served is not None and served.send.template_id == other.pk
        holdout = MessageSend.objects.get(template=held)
        assert (holdout.status, holdout.reason) == ("holdout", "holdout 100%")

    def test_no_in_app_consent_shows_nothing(self) -> None:
        bo = person()
        bo.consent = {"in_app": False}
        bo.save()
        prompt_template()
        assert in_app_prompt(bo) is None
        assert not MessageSend.objects.exists()

    def test_a_prompt_whose_customer_stopped_qualifying_is_not_served_again(self) -> None:
        bo = person()
        first = prompt_template(
            priority=1, trigger=MessageTemplate.Trigger.EVENT, trigger_event="Opened", trigger_number=1
        )
        second = prompt_template(priority=2)
        now = timezone.now()
        Event.objects.create(
            source=source_create(name="web")[0],
            message_id="m1",
            customer=bo,
            type=Event.Type.TRACK,
            name="Opened",
            timestamp=now,
            received_at=now,
        )
        served = in_app_prompt(bo, now)
        assert served is not None and served.send.template_id == first.pk
        later = in_app_prompt(bo, now + timedelta(hours=2))  # the event left its 1-hour window
        assert later is not None and later.send.template_id == second.pk


class TestReports:
    def test_reports_keep_the_first_time_and_go_on_the_timeline_once(self, product: Product) -> None:
        bo = person("usr_bo")
        prompt_template()
        prompt_id = product.get(url("usr_bo")).json()["prompt"]["id"]
        shown = product.post(url("usr_bo"), {"prompt_id": prompt_id, "action": "shown"}, format="json")
        assert shown.status_code == 200
        assert shown.json()["shown_at"] is not None and shown.json()["clicked_at"] is None
        again = product.post(url("usr_bo"), {"prompt_id": prompt_id, "action": "shown"}, format="json")
        assert again.json()["shown_at"] == shown.json()["shown_at"]
        clicked = product.post(url("usr_bo"), {"prompt_id": prompt_id, "action": "clicked"}, format="json").json()
        assert clicked["clicked_at"] is not None and clicked["shown_at"] == shown.json()["shown_at"]
        assert customer_events(bo) == ["In-App Prompt Shown", "In-App Prompt Clicked"]
        event = Event.objects.get(customer=bo, name="In-App Prompt Clicked")
        assert event.properties["prompt_id"] == prompt_id
        assert Source.objects.get(pk=event.source_id).kind == Source.Kind.TRIALLOOP

    def test_a_clicked_prompt_is_done(self) -> None:
        bo = person()
        prompt_template()
        served = in_app_prompt(bo)
        assert served is not None
        in_app_record(customer=bo, prompt_id=served.send.pk, action="clicked")
        assert in_app_prompt(bo, timezone.now() + timedelta(days=30)) is None
        assert MessageSend.objects.get().shown_at is not None  # a click implies it was shown

    def test_a_dismissed_prompt_stays_away_for_the_templates_window(self) -> None:
        bo = person()
        prompt_template(throttle_hours=6)
        now = timezone.now()
        served = in_app_prompt(bo, now)
        assert served is not None
        in_app_record(customer=bo, prompt_id=served.send.pk, action="dismissed", now=now)
        assert in_app_prompt(bo, now + timedelta(hours=5)) is None
        again = in_app_prompt(bo, now + timedelta(hours=7))
        assert again is not None and again.send.pk != served.send.pk
        assert MessageSend.objects.filter(customer=bo).count() == 2

    def test_without_its_own_window_the_workspace_window_applies(self) -> None:
        EmailSettings.objects.filter(pk=1).update(throttle_hours=48)
        bo = person()
        prompt_template()
        now = timezone.now()
        served = in_app_prompt(bo, now)
        assert served is not None
        in_app_record(customer=bo, prompt_id=served.send.pk, action="dismissed", now=now)
        assert in_app_prompt(bo, now + timedelta(hours=47)) is None
        assert in_app_prompt(bo, now + timedelta(hours=49)) is not None


class TestDismissalRate:
    def _served(self, template: MessageTemplate, count: int, *, dismissed: int, clicked: int = 0) -> None:
        now = timezone.now()
        for index in range(count):
            customer = Customer.objects.create(user_id=f"u-{template.key}-{index}")
            MessageSend.objects.create(
                customer=customer,
                template=template,
                status=MessageSend.Status.SENT,
                created_at=now,
                shown_at=now,
                dismissed_at=now if index < dismissed else None,
                clicked_at=now if dismissed <= index < dismissed + clicked else None,
            )

    def test_rates_and_flags_in_one_query(self, django_assert_num_queries: Any) -> None:
        noisy = prompt_template(key="noisy")
        small = prompt_template(key="small")
        fine = prompt_template(key="fine")
        unseen = prompt_template(key="unseen")
        self._served(noisy, DISMISSAL_FLAG_MIN_SHOWN, dismissed=13, clicked=2)  # 65%
        self._served(small, DISMISSAL_FLAG_MIN_SHOWN - 1, dismissed=19)  # 100% but too few
        self._served(fine, 30, dismissed=18)  # exactly 60% is not above
        with django_assert_num_queries(1):
            stats = in_app_stats()
        assert stats[noisy.pk] == {"shown": 20, "clicked": 2, "dismissed": 13, "dismissal_rate": 0.65, "flagged": True}
        assert stats[small.pk]["flagged"] is False and stats[small.pk]["dismissal_rate"] == 1.0
        assert stats[fine.pk]["flagged"] is False and stats[fine.pk]["dismissal_rate"] == pytest.approx(0.6)
        assert stats[unseen.pk] == {"shown": 0, "clicked": 0, "dismissed": 0, "dismissal_rate": None, "flagged": False}
        email_ids = set(MessageTemplate.objects.filter(channel="email").values_list("pk", flat=True))
        assert not email_ids & set(stats)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_first_requests_serve_one_prompt() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    EmailSettings.objects.get_or_create(pk=1)
    MessageTemplate.objects.filter(channel=MessageTemplate.Channel.IN_APP).update(active=False)
    bo = person()
    prompt_template()
    barrier = threading.Barrier(4)
    served: list[int] = []

    def ask() -> None:
        try:
            barrier.wait()
            prompt = in_app_prompt(Customer.objects.get(pk=bo.pk))
            if prompt is not None:
                served.append(prompt.send.pk)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(served) == 4 and len(set(served)) == 1
    assert MessageSend.objects.filter(customer=bo).count() == 1


def test_deciding_costs_the_same_queries_whatever_the_number_of_templates() -> None:
    bo = person()

    def queries_with(templates: int) -> int:
        MessageTemplate.objects.filter(channel=MessageTemplate.Channel.IN_APP).delete()
        for _ in range(templates):
            prompt_template(trigger_number=5)  # none qualifies: every template is considered
        with CaptureQueriesContext(connection) as counted:
            assert in_app_prompt(Customer.objects.get(pk=bo.pk)) is None
        return len(counted.captured_queries)

    assert queries_with(1) == queries_with(6) <= 4
    assert not CustomerMessageLock.objects.filter(customer=bo).exists()  # nothing qualified: nothing written


def test_the_openapi_schema_describes_the_two_proofs(admin_user: Any, api_client_for: Any) -> None:
    schema = api_client_for(admin_user).get("/api/schema/?format=json").json()
    operations = schema["paths"]["/api/v1/in-app/{user_id}"]
    for method in ("get", "post"):
        assert {name for entry in operations[method]["security"] for name in entry} == {"writeKey", "secretKey"}
        assert {"401", "403"} <= set(operations[method]["responses"])
        headers = {p["name"] for p in operations[method]["parameters"] if p["in"] == "header"}
        assert headers == {"Trialloop-Auth-Hash"}
    assert {p["name"] for p in operations["get"]["parameters"] if p["in"] == "query"} == {"auth_hash"}
    assert "auth_hash" in schema["components"]["schemas"]["Report"]["properties"]
    assert "in-app" in schema["components"]["securitySchemes"]["secretKey"]["description"]
    assert "Trialloop-Auth-Hash" in schema["components"]["securitySchemes"]["writeKey"]["description"]
