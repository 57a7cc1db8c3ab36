"""GDPR export and erasure: complete over every model tied to a customer, nothing of anyone else touched,
tombstones that keep an erased person from coming back through the tracking API, from UI, API and commands."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.core.management import CommandError, call_command
from django.db import models
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audiences.models import Account, AnonymousId, Customer, CustomerErasure, ErasedIdentity, Event, Source
from audiences.privacy.erase import AlreadyErased, customer_erase, identity_digest
from audiences.privacy.export import customer_export
from audiences.privacy.relations import customer_relations
from audiences.privacy.traces import ERASED, PersonTraces
from audiences.services import source_create
from config.roles import Role
from config.tests.factories import build


@pytest.fixture
def someone_else(db: Any) -> Customer:
    return Customer.objects.create(user_id="usr_other", email="other@example.test")


@pytest.mark.django_db
class TestEveryModel:
    def test_export_and_erasure_cover_every_model_tied_to_a_customer(
        self, customer: Customer, someone_else: Customer
    ) -> None:
        relations = customer_relations()
        assert {"audiences.Event", "integrations.Subscription", "integrations.SubscriptionAddOn"} <= {
            r.label for r in relations
        }
        built: dict[type[models.Model], models.Model] = {}
        for relation in relations:
            if not relation.model._default_manager.filter(**{relation.path: customer.pk}).exists():
                build(relation.model, customer, built)
        # The other customer has an event and a subscription of their own: they must survive.
        Event.objects.create(
            source=Source.objects.get(),
            message_id="other-1",
            customer=someone_else,
            type=Event.Type.TRACK,
            name="Signed Up",
            timestamp=timezone.now(),
            received_at=timezone.now(),
        )

        exported = customer_export(customer)
        json.dumps(exported)  # JSON-ready
        for relation in relations:
            assert exported["records"].get(relation.label), f"{relation.label} missing from the export"

        report = customer_erase(customer=customer, actor=None, via="command")

        for relation in relations:
            left = relation.model._default_manager.filter(**{relation.path: customer.pk}).count()
            assert left == 0, f"{relation.label} kept {left} rows"
            assert report.deleted_rows.get(relation.label), f"{relation.label} not reported"
        assert not Customer.objects.filter(pk=customer.pk).exists()
        assert Customer.objects.filter(pk=someone_else.pk).exists()
        assert Event.objects.filter(customer=someone_else).count() == 1
        assert Account.objects.filter(group_id="grp_acme").exists(), "the account is the company's, not the person's"


def traces(*ids: str, names: tuple[str, ...] = ()) -> PersonTraces:
    return PersonTraces(customer_pk=1, account_id=None, ids=frozenset(ids), names=frozenset(names), tagged={})


class TestTraces:
    """How rows no foreign key ties to the person are recognised and redacted without touching anyone else."""

    def test_an_email_or_id_is_found_only_as_a_whole_token_whatever_its_case(self) -> None:
        ada = traces("ada@acme.test", "usr_8f2k")
        text = "nada@acme.test, ada@acme.testing, usr_8f2k9, Mail Ada@Acme.test. See usr_8f2k"
        assert ada.redact_text(text) == f"nada@acme.test, ada@acme.testing, usr_8f2k9, Mail {ERASED}. See {ERASED}"

    def test_numbers_and_plain_words_are_ids_only_under_an_id_key(self) -> None:
        # Numeric user ids are common; "42" elsewhere is a count, a price, a page, and must stay.
        someone = traces("42", "enterprise")
        value = {"userId": "42", "previousId": 42, "count": "42", "plan": "enterprise", "note": "42 items"}
        assert someone.redact_json(value) == {**value, "userId": ERASED, "previousId": ERASED}
        raw = '{"anonymousId": "enterprise", "page": "42", "userId":42, "n": 420}'
        assert someone.redact_text(raw) == f'{{"anonymousId": "{ERASED}", "page": "42", "userId":"{ERASED}", "n": 420}}'

    def test_names_are_redacted_also_inside_json_escapes_and_keys(self) -> None:
        zoe = traces("zoe@acme.test", names=("Zoë Ämmer",))
        assert zoe.redact_text('{"name":"Zo\\u00eb \\u00c4mmer"}') == f'{{"name":"{ERASED}"}}'
        assert zoe.redact_json({"zoe@acme.test": {"by": "zoë ämmer"}}) == {ERASED: {"by": ERASED}}

    def test_the_sql_prefilter_quotes_ids_it_cannot_search_bare(self) -> None:
        patterns = traces("42", "ada@acme.test").sql_patterns()
        assert {'"42"', ":42", ": 42", "ada@acme.test"} <= set(patterns)
        assert "42" not in patterns


@pytest.mark.django_db
class TestErasure:
    def test_the_record_keeps_no_personal_data_and_the_tombstones_only_digests(self, customer: Customer) -> None:
        AnonymousId.objects.create(anonymous_id="anon-ada", customer=customer)
        pk = customer.pk

        report = customer_erase(customer=customer, actor=None, via="command")

        erasure = CustomerErasure.objects.get()
        assert erasure == report.erasure
        assert (erasure.customer_pk, erasure.via, erasure.suppress_future_events) == (pk, "command", True)
        record = json.dumps([erasure.deleted_rows, list(ErasedIdentity.objects.values())], default=str)
        for personal in ("usr_ada", "ada@acme.test", "Ada", "anon-ada"):
            assert personal not in record
        assert set(ErasedIdentity.objects.values_list("digest", flat=True)) == {
            identity_digest("usr_ada"),
            identity_digest("anon-ada"),
        }

    def test_without_suppression_no_tombstone_is_left(self, customer: Customer) -> None:
        customer_erase(customer=customer, actor=None, via="command", suppress_future_events=False)
        assert not ErasedIdentity.objects.exists()

    def test_a_second_erasure_of_the_same_lookup_is_refused_not_a_crash(self, customer: Customer) -> None:
        # As a double submit sees it: both requests loaded the customer, the second waited for the first's lock.
        customer_erase(customer=customer, actor=None, via="ui")
        with pytest.raises(AlreadyErased):
            customer_erase(customer=customer, actor=None, via="ui")
        assert CustomerErasure.objects.count() == 1


def _track(client: Client, write_key: str, batch: list[dict[str, Any]]) -> dict[str, Any]:
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    response = client.post(
        "/v1/batch", data=json.dumps({"batch": batch}), content_type="application/json", HTTP_AUTHORIZATION=auth
    )
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.django_db(transaction=True)
class TestTombstonesAtIngestion:
    def test_calls_under_erased_ids_are_dropped_and_their_neighbours_kept(self) -> None:
        _, write_key = source_create(name="Web")
        client = Client()
        _track(client, write_key, [{"type": "identify", "userId": "usr_gone", "anonymousId": "anon-gone"}])
        gone = Customer.objects.get(user_id="usr_gone")
        customer_erase(customer=gone, actor=None, via="api")

        body = _track(
            client,
            write_key,
            [
                {"type": "track", "userId": "usr_gone", "event": "Came Back"},
                {"type": "track", "anonymousId": "anon-gone", "event": "Came Back"},
                {"type": "track", "userId": "usr_new", "event": "Signed Up"},
            ],
        )

        assert (body["stored"], body["suppressed"], body["duplicates"]) == (1, 2, 0)
        assert list(Customer.objects.values_list("user_id", flat=True)) == ["usr_new"]
        assert not Event.objects.filter(name="Came Back").exists()

    def test_an_erasure_without_suppression_lets_the_person_start_afresh(self) -> None:
        _, write_key = source_create(name="Web")
        client = Client()
        _track(client, write_key, [{"type": "identify", "userId": "usr_back"}])
        customer_erase(customer=Customer.objects.get(), actor=None, via="api", suppress_future_events=False)

        body = _track(client, write_key, [{"type": "track", "userId": "usr_back", "event": "Came Back"}])

        assert (body["stored"], body["suppressed"]) == (1, 0)


@pytest.mark.django_db
class TestFromTheApi:
    def test_export_needs_the_change_permission(
        self, customer: Customer, make_user: Callable[..., AbstractUser], api_client_for: Callable[..., Any]
    ) -> None:
        url = f"/api/v1/customers/{customer.pk}/export/"
        assert api_client_for(make_user(Role.SALES_REP)).get(url).status_code == 403
        response = api_client_for(make_user(Role.CS)).get(url)
        assert response.status_code == 200
        body = response.json()
        assert body["customer"]["user_id"] == "usr_ada"
        assert len(body["records"]["audiences.Event"]) == 3

    def test_only_admins_erase_and_bad_options_are_refused(
        self, customer: Customer, make_user: Callable[..., AbstractUser], api_client_for: Callable[..., Any]
    ) -> None:
        url = f"/api/v1/customers/{customer.pk}/erase/"
        assert api_client_for(make_user(Role.GROWTH)).post(url, {}, format="json").status_code == 403
        admin = api_client_for(make_user(Role.ADMIN))
        bad = admin.post(url, {"suppress_future_events": "perhaps"}, format="json")
        assert bad.status_code == 400
        assert bad.json()["details"] == {"suppress_future_events": ["Must be a valid boolean."]}
        assert Customer.objects.filter(pk=customer.pk).exists()

        response = admin.post(url, {"suppress_future_events": False}, format="json")

        assert response.status_code == 200
        body = response.json()
        assert (body["erased_customer"], body["suppress_future_events"]) == (customer.pk, False)
        assert body["deleted_rows"]["audiences.Event"] == 3
        assert CustomerErasure.objects.get().via == "api"
        assert admin.post(url, {}, format="json").status_code == 404


@pytest.mark.django_db
class TestFromTheUi:
    def test_export_downloads_json(self, customer: Customer, make_user: Callable[..., AbstractUser]) -> None:
        client = Client()
        client.force_login(make_user(Role.CS))  # type: ignore[arg-type]
        page = client.get(reverse("customer-detail", args=[customer.pk])).content.decode()
        assert "Export data (JSON)" in page
        assert "Erase customer" not in page

        response = client.get(reverse("customer-export", args=[customer.pk]))

        assert response["Content-Disposition"] == f'attachment; filename="customer-{customer.pk}.json"'
        assert json.loads(response.content)["customer"]["email"] == "ada@acme.test"

    def test_erasure_asks_for_the_id_then_erases(self, customer: Customer, admin_user: AbstractUser) -> None:
        client = Client()
        client.force_login(admin_user)  # type: ignore[arg-type]
        url = reverse("customer-erase", args=[customer.pk])
        assert client.get(url).status_code == 200

        wrong = client.post(url, {"confirm": "12345678", "suppress_future_events": "on"})

        assert wrong.status_code == 400
        assert f"Type {customer.pk} to confirm the erasure." in wrong.content.decode()
        assert Customer.objects.filter(pk=customer.pk).exists()

        done = client.post(url, {"confirm": str(customer.pk), "suppress_future_events": "on"})

        assert done.status_code == 302
        assert not Customer.objects.filter(pk=customer.pk).exists()
        erasure = CustomerErasure.objects.get()
        assert (erasure.via, erasure.erased_by) == ("ui", admin_user)

    def test_a_cs_user_cannot_open_the_erasure_page(
        self, customer: Customer, make_user: Callable[..., AbstractUser]
    ) -> None:
        client = Client()
        client.force_login(make_user(Role.CS))  # type: ignore[arg-type]
        assert client.get(reverse("customer-erase", args=[customer.pk])).status_code == 403
        assert (
            client.post(reverse("customer-erase", args=[customer.pk]), {"confirm": str(customer.pk)}).status_code == 403
        )


@pytest.mark.django_db
class TestCommands:
    def test_export_and_erase_by_user_id(self, customer: Customer, tmp_path: Any) -> None:
        output = tmp_path / "ada.json"
        call_command("customer_export", "--user-id", "usr_ada", "--output", str(output), stderr=StringIO())
        assert json.loads(output.read_text())["customer"]["name"] == "Ada Lovelace"

        with pytest.raises(CommandError, match="add --yes"):
            call_command("customer_erase", str(customer.pk))
        out = StringIO()
        call_command("customer_erase", str(customer.pk), "--yes", stdout=out)

        assert f"Customer {customer.pk} erased" in out.getvalue()
        assert "audiences.Event: 3" in out.getvalue()
        assert not Customer.objects.filter(pk=customer.pk).exists()

    def test_unknown_customers_and_ambiguous_arguments_are_errors(self, customer: Customer) -> None:
        with pytest.raises(CommandError, match="No customer with user_id='nobody'"):
            call_command("customer_export", "--user-id", "nobody")
        with pytest.raises(CommandError, match="either a customer id or --user-id"):
            call_command("customer_export", str(customer.pk), "--user-id", "usr_ada")
