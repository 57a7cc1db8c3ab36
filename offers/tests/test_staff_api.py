"""The staff REST API for offers, reasons, flows and rules: the forms' validation, roles, drafts and deletes."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from config.models import AuditEntry
from config.roles import Role
from offers.models import CancellationFlow, CancellationReason, FlowRule, Offer, OfferRule

pytestmark = pytest.mark.django_db

DISCOUNT = {"percent_off": 20, "duration": "repeating", "duration_in_months": 3}


@pytest.fixture
def growth(make_user: Any, api_client_for: Any) -> Any:
    return api_client_for(make_user(Role.GROWTH))


def test_offers_crud_with_the_forms_validation(growth: Any) -> None:
    created = growth.post(
        "/api/v1/offers/",
        {"name": "20% for 3 months", "kind": "discount", "parameters": DISCOUNT, "tags": ["annual", "win-back"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    offer = created.json()
    assert offer["parameters"] == {**DISCOUNT, "percent_off": 20.0, "existing_coupon": "replace"}
    assert offer["summary"] == "20% off for 3 months"
    assert offer["tags"] == ["annual", "win-back"]
    assert offer["is_active"] is True

    bad = growth.post(
        "/api/v1/offers/", {"name": "Bad", "kind": "discount", "parameters": {"percent_off": 120}}, format="json"
    )
    assert bad.status_code == 400
    assert "percent_off" in bad.json()["details"]["parameters"][0]
    duplicate = growth.post(
        "/api/v1/offers/", {"name": "20% FOR 3 months", "kind": "trial_extension", "parameters": {"days": 7}},
        format="json",
    )  # fmt: skip
    assert duplicate.status_code == 400
    assert duplicate.json()["details"]["name"] == ["This name is already taken."]
    assert growth.post("/api/v1/offers/", ["not", "an", "object"], format="json").status_code == 400

    patched = growth.patch(f"/api/v1/offers/{offer['id']}/", {"headline": "Stay for less"}, format="json")
    assert patched.status_code == 200, patched.content
    assert patched.json()["headline"] == "Stay for less"
    assert patched.json()["parameters"]["duration_in_months"] == 3  # the rest kept as it was
    assert patched.json()["tags"] == ["annual", "win-back"]
    wrong_kind = growth.patch(f"/api/v1/offers/{offer['id']}/", {"kind": "pause"}, format="json")
    assert wrong_kind.status_code == 400  # discount parameters do not fit a pause

    listed = growth.get("/api/v1/offers/")
    assert [row["name"] for row in listed.json()] == ["20% for 3 months"]
    assert growth.get("/api/v1/offers/999999/").status_code == 404
    assert growth.get("/api/v1/offers/abc/").status_code == 404

    assert growth.delete(f"/api/v1/offers/{offer['id']}/").status_code == 204
    assert not Offer.objects.exists()


def test_an_offer_in_use_is_archived_not_deleted(growth: Any, make_offer: Any, make_rule: Any) -> None:
    offer = make_offer("trial_extension", days=7)
    make_rule(offer)
    refused = growth.delete(f"/api/v1/offers/{offer.pk}/")
    assert refused.status_code == 409
    assert refused.json()["code"] == "in_use"
    archived = growth.patch(f"/api/v1/offers/{offer.pk}/", {"is_active": False}, format="json")
    assert archived.json()["is_active"] is False


@pytest.mark.parametrize(
    ("role", "read", "write"),
    [(Role.ADMIN, 200, 201), (Role.GROWTH, 200, 201), (Role.CS, 200, 201), (Role.SALES_REP, 200, 403)],
    ids=lambda value: getattr(value, "name", str(value)),
)
def test_roles_match_the_staff_pages(make_user: Any, api_client_for: Any, role: Role, read: int, write: int) -> None:
    client = api_client_for(make_user(role))
    for prefix in ("offers", "cancellation-reasons", "cancellation-flows", "offer-rules", "flow-rules"):
        assert client.get(f"/api/v1/{prefix}/").status_code == read
    created = client.post("/api/v1/cancellation-reasons/", {"label": "Too slow"}, format="json")
    assert created.status_code == write
    assert created.json().get("error") if write == 403 else created.json()["stripe_feedback"] == "other"


def test_anonymous_is_refused(client: Any) -> None:
    assert client.get("/api/v1/offers/").status_code in (401, 403)


def test_flows_are_drafts_until_published(growth: Any, reasons: dict[str, CancellationReason]) -> None:
    price, features = reasons["price"], reasons["features"]
    created = growth.post(
        "/api/v1/cancellation-flows/",
        {
            "name": "German flow",
            "reasons": [price.pk, features.pk],
            "feedback_reasons": [features.pk],
            "language": "de",
            "logo_url": "https://cdn.example.test/logo.png",
            "brand_color": "#112233",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    flow = created.json()
    assert flow["is_draft"] is True
    assert flow["reasons"] == [price.pk, features.pk] and flow["feedback_reasons"] == [features.pk]

    bad = growth.patch(
        f"/api/v1/cancellation-flows/{flow['id']}/",
        {"logo_url": "http://insecure.example.test/logo.png", "brand_color": "red", "feedback_reasons": [999]},
        format="json",
    )
    assert bad.status_code == 400
    assert set(bad.json()["details"]) == {"logo_url", "brand_color", "feedback_reasons"}
    outside = growth.patch(
        f"/api/v1/cancellation-flows/{flow['id']}/", {"reasons": [price.pk]}, format="json"
    )  # the feedback reason would no longer be one of the flow's
    assert outside.status_code == 400
    assert "feedback_reasons" in outside.json()["details"]

    published = growth.post(f"/api/v1/cancellation-flows/{flow['id']}/publish/")
    assert published.status_code == 200 and published.json()["is_draft"] is False
    edited = growth.patch(f"/api/v1/cancellation-flows/{flow['id']}/", {"brand_name": "Acme"}, format="json")
    assert edited.json()["is_draft"] is False  # an edit keeps the draft flag as it is
    back_to_draft = growth.patch(f"/api/v1/cancellation-flows/{flow['id']}/", {"is_draft": True}, format="json")
    assert back_to_draft.json()["is_draft"] is True

    rule = growth.post("/api/v1/flow-rules/", {"flow": flow["id"]}, format="json")
    assert rule.status_code == 201 and rule.json()["is_draft"] is True
    refused = growth.delete(f"/api/v1/cancellation-flows/{flow['id']}/")
    assert refused.status_code == 409  # its rule would go with it
    assert CancellationFlow.objects.filter(pk=flow["id"]).exists()


def test_offer_rules_with_weights_reorder_and_publish(
    growth: Any, make_offer: Any, make_segment: Any, reasons: dict[str, CancellationReason]
) -> None:
    extension, pause = make_offer("trial_extension", days=7), make_offer("pause", unit="months", count=1)
    segment = make_segment("Big", {"property": "subscriber.mrr", "operator": "gte", "value": 100})
    body = {
        "name": "Price-sensitive",
        "segments": [segment.pk],
        "reasons": [reasons["price"].pk],
        "offers": [{"offer": extension.pk, "weight": 3}, {"offer": pause.pk}],
    }
    first = growth.post("/api/v1/offer-rules/", body, format="json")
    assert first.status_code == 201, first.content
    rule = first.json()
    assert sorted(rule["offers"], key=lambda entry: entry["offer"]) == [
        {"offer": extension.pk, "weight": 3},
        {"offer": pause.pk, "weight": 1},
    ]
    assert rule["is_draft"] is True and rule["applies_to"] == "cancellation"

    for invalid, field in [
        ({"offers": [{"offer": extension.pk, "weight": 0}]}, "offers"),
        ({"offers": [{"offer": 999999}]}, "offers"),
        ({"offers": "all"}, "offers"),
        ({"offers": [], "no_offer": False}, "non_field_errors"),
        ({"no_offer": True}, "non_field_errors"),  # still has offers
        ({"segments": [999999]}, "segments"),
        ({"repeat_window_days": 0}, "repeat_window_days"),
    ]:
        answer = growth.patch(f"/api/v1/offer-rules/{rule['id']}/", invalid, format="json")
        assert answer.status_code == 400, invalid
        assert field in answer.json()["details"], (invalid, answer.json())

    second = growth.post("/api/v1/offer-rules/", {"no_offer": True, "name": "Nothing"}, format="json").json()
    assert second["position"] == rule["position"] + 1
    bad_order = growth.post("/api/v1/offer-rules/reorder/", {"ids": [second["id"]]}, format="json")
    assert bad_order.status_code == 400
    reordered = growth.post("/api/v1/offer-rules/reorder/", {"ids": [second["id"], rule["id"]]}, format="json")
    assert [row["id"] for row in reordered.json()] == [second["id"], rule["id"]]

    published = growth.post(f"/api/v1/offer-rules/{rule['id']}/publish/")
    assert published.json()["is_draft"] is False
    assert OfferRule.objects.get(pk=rule["id"]).is_draft is False
    with CaptureQueriesContext(connection) as queries:
        assert len(growth.get("/api/v1/offer-rules/").json()) == 2
    listed_queries = len(queries)
    growth.post("/api/v1/offer-rules/", {"no_offer": True, "name": "Third"}, format="json")
    with CaptureQueriesContext(connection) as queries:
        assert len(growth.get("/api/v1/offer-rules/").json()) == 3
    assert len(queries) == listed_queries  # prefetched: the count does not grow with the rules


def test_cs_may_manage_but_a_rep_may_not_publish(make_user: Any, api_client_for: Any, flow: CancellationFlow) -> None:
    rule = FlowRule.objects.create(flow=flow, position=2)
    rep = api_client_for(make_user(Role.SALES_REP))
    assert rep.post(f"/api/v1/flow-rules/{rule.pk}/publish/").status_code == 403
    assert rep.post("/api/v1/flow-rules/reorder/", {"ids": [rule.pk]}, format="json").status_code == 403
    cs = api_client_for(make_user(Role.CS))
    assert cs.post(f"/api/v1/flow-rules/{rule.pk}/publish/").json()["is_draft"] is False


def test_the_schema_describes_the_staff_endpoints(growth: Any) -> None:
    paths = growth.get("/api/schema/?format=json").json()["paths"]
    for prefix in ("offers", "cancellation-reasons", "cancellation-flows", "offer-rules", "flow-rules"):
        assert f"/api/v1/{prefix}/" in paths and f"/api/v1/{prefix}/{{id}}/" in paths
    assert "/api/v1/offer-rules/reorder/" in paths


def test_patching_a_rule_drops_an_archived_offer_as_the_page_does(growth: Any, make_offer: Any, make_rule: Any) -> None:
    kept, archived = make_offer("trial_extension", days=7), make_offer("trial_extension", days=14)
    rule = make_rule(kept, archived)
    Offer.objects.filter(pk=archived.pk).update(is_active=False)
    patched = growth.patch(f"/api/v1/offer-rules/{rule.pk}/", {"name": "Renamed"}, format="json")
    assert patched.status_code == 200, patched.content
    assert patched.json()["offers"] == [{"offer": kept.pk, "weight": 1}]


def test_a_full_update_keeps_the_draft_flag(growth: Any, reasons: dict[str, CancellationReason]) -> None:
    created = growth.post(
        "/api/v1/cancellation-flows/", {"name": "Draft flow", "reasons": [reasons["price"].pk]}, format="json"
    ).json()
    replaced = growth.put(
        f"/api/v1/cancellation-flows/{created['id']}/",
        {"name": "Draft flow, renamed", "reasons": [reasons["price"].pk]},
        format="json",
    )
    assert replaced.status_code == 200, replaced.content
    assert replaced.json()["is_draft"] is True  # PUT without is_draft does not publish
    assert CancellationFlow.objects.get(pk=created["id"]).is_draft is True


def test_a_form_encoded_body_is_refused_not_saved_as_lists(growth: Any) -> None:
    refused = growth.post("/api/v1/cancellation-reasons/", {"label": "Too pricey", "is_active": "false"})
    assert refused.status_code == 400
    assert "application/json" in refused.json()["details"]["non_field_errors"][0]
    assert not CancellationReason.objects.filter(label__contains="Too pricey").exists()


def test_publishing_and_reordering_through_the_api_are_in_the_audit_log(growth: Any) -> None:
    draft = CancellationFlow.objects.create(name="Draft flow")
    first = FlowRule.objects.create(flow=draft, position=1)
    second = FlowRule.objects.create(flow=draft, position=2)
    AuditEntry.objects.all().delete()

    assert growth.post(f"/api/v1/cancellation-flows/{draft.pk}/publish/").status_code == 200
    assert growth.post(f"/api/v1/flow-rules/{second.pk}/publish/").status_code == 200
    reordered = growth.post("/api/v1/flow-rules/reorder/", {"ids": [second.pk, first.pk]}, format="json")
    assert reordered.status_code == 200

    entries = [
        (entry.model, entry.object_id, entry.action, entry.changes, entry.via, entry.actor_name)
        for entry in AuditEntry.objects.order_by("pk")
    ]
    assert entries == [
        ("offers.CancellationFlow", str(draft.pk), "changed", {"is_draft": [True, False]}, "api", "growth"),
        ("offers.FlowRule", str(second.pk), "changed", {"is_draft": [True, False]}, "api", "growth"),
        ("offers.FlowRule", str(second.pk), "changed", {"position": [2, 1]}, "api", "growth"),
        ("offers.FlowRule", str(first.pk), "changed", {"position": [1, 2]}, "api", "growth"),
    ]
