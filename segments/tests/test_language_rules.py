"""The rules of the condition language that must hold the same on SQLite and PostgreSQL (issue 19 §1): each test
reproduces a defect found on both databases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.utils import timezone
from rest_framework.test import APIClient

from audiences.models import Account, Customer, Event, Source
from config.roles import Role
from segments.compiler import compile_tree
from segments.conditions import InvalidCondition, parse_tree
from segments.models import CustomProperty
from segments.selectors import explain, segment_preview
from trials.plays.models import Alert, Play

pytestmark = pytest.mark.django_db
NOW = timezone.now()


def leaf(prop: str, operator: str, value: Any = None) -> dict[str, Any]:
    return {"type": "condition", "property": prop, "operator": operator, "value": value}


def group(operator: str, *children: dict[str, Any], negate: bool = False) -> dict[str, Any]:
    return {"type": "group", "operator": operator, "negate": negate, "children": list(children)}


def matching(tree: dict[str, Any]) -> set[str]:
    return {
        str(u) for u in Customer.objects.filter(compile_tree(parse_tree(tree), NOW)).values_list("user_id", flat=True)
    }


def explained(tree: dict[str, Any], customer: Customer) -> tuple[list[bool], bool]:
    result = explain(tree, customer, now=NOW)
    return [item["held"] for item in result["leaves"]], result["matches"]


class TestIsSetOnDerivedProperties:
    """`is set` on a yes/no computed for everyone (a logged meeting) holds for everyone: it must compile to a real
    condition, not to an empty filter that OR drops, NOT inverts wrongly and CASE refuses."""

    @pytest.fixture
    def people(self) -> dict[str, Customer]:
        acme = Account.objects.create(group_id="acme", name="Acme")
        people = {
            "tester": Customer.objects.create(user_id="tester", is_test=True),
            "met": Customer.objects.create(user_id="met", account=acme),
            "plain": Customer.objects.create(user_id="plain"),
        }
        play = Play.objects.create(key="p", name="P", condition=group("and", leaf("customer.is_test", "is_true")))
        Alert.objects.create(
            play=play, customer=people["met"], account=acme, dedup_key="a", status=Alert.Status.DONE,
            outcome=Alert.Outcome.MEETING_BOOKED, due_at=NOW, created_at=NOW,
        )  # fmt: skip
        return people

    def test_or_with_is_set_keeps_everyone(self, people: dict[str, Customer]) -> None:
        tree = group("or", leaf("customer.is_test", "is_true"), leaf("sales.meeting_logged", "is_set"))
        assert matching(tree) == {"tester", "met", "plain"}

    def test_not_of_an_or_with_is_set_matches_nobody(self, people: dict[str, Customer]) -> None:
        tree = group("or", leaf("customer.is_test", "is_true"), leaf("sales.meeting_logged", "is_set"), negate=True)
        assert matching(tree) == set()

    def test_not_of_is_set_compiles(self, people: dict[str, Customer]) -> None:
        assert matching(group("and", leaf("sales.meeting_logged", "is_set"), negate=True)) == set()
        assert matching(group("and", leaf("sales.meeting_logged", "is_not_set"), negate=True)) == {
            "tester",
            "met",
            "plain",
        }
        assert matching(group("and", leaf("subscription.will_renew", "is_set"), negate=True)) == {
            "tester",
            "met",
            "plain",
        }

    def test_explain_agrees_with_the_whole(self, people: dict[str, Customer]) -> None:
        tree = group("or", leaf("customer.is_test", "is_true"), leaf("sales.meeting_logged", "is_set"))
        assert explained(tree, people["plain"]) == ([False, True], True)


class TestTraitValues:
    @pytest.fixture
    def seats(self) -> None:
        CustomProperty.objects.create(key="seats", value_type="number")
        for user_id, value in (("lots", "lots"), ("three", "3"), ("twelve", 12), ("null", None)):
            Customer.objects.create(user_id=user_id, traits={"seats": value})
        Customer.objects.create(user_id="none", traits={})

    def test_a_json_null_is_not_set(self, seats: None) -> None:
        assert matching(leaf("trait.seats", "is_set")) == {"lots", "three", "twelve"}
        assert matching(leaf("trait.seats", "is_not_set")) == {"null", "none"}

    def test_a_non_number_never_satisfies_a_number_operator(self, seats: None) -> None:
        assert matching(leaf("trait.seats", "gt", 5)) == {"twelve"}
        assert matching(leaf("trait.seats", "lt", 5)) == set()
        assert matching(leaf("trait.seats", "between", [0, 100])) == {"twelve"}
        assert matching(leaf("trait.seats", "equals", 3)) == set()
        assert matching(leaf("trait.seats", "not_equals", 3)) == {"lots", "three", "twelve", "null", "none"}

    def test_booleans_and_lists_are_typed_too(self) -> None:
        CustomProperty.objects.create(key="beta", value_type="boolean")
        CustomProperty.objects.create(key="features", value_type="list")
        Customer.objects.create(user_id="yes", traits={"beta": True, "features": ["sso"]})
        Customer.objects.create(user_id="text", traits={"beta": "true", "features": '["sso"]'})
        Customer.objects.create(user_id="one", traits={"beta": 1, "features": "sso"})
        assert matching(leaf("trait.beta", "is_true")) == {"yes"}
        assert matching(leaf("trait.beta", "is_false")) == set()
        assert matching(leaf("trait.features", "contains", "SSO")) == {"yes"}

    def test_a_computed_list_contains_whole_elements(self) -> None:
        # The list is JSON text; searching it for '"b"' also found the element 'a"b' (written "a\"b").
        import json

        from audiences.models import ComputedTrait, ComputedTraitValue

        trait = ComputedTrait.objects.create(key="plans_seen", name="Plans seen", kind="unique_list", event="Viewed")
        for user_id, plans in (("quoted", ['a"b']), ("plain", ["B"])):
            ComputedTraitValue.objects.create(
                trait=trait, customer=Customer.objects.create(user_id=user_id), value=plans,
                text_value=json.dumps(plans), updated_at=NOW,
            )  # fmt: skip
        assert matching(leaf("computed.plans_seen", "contains", "b")) == {"plain"}
        assert matching(leaf("computed.plans_seen", "contains", 'A"B')) == {"quoted"}

    def test_trait_dates_compare_as_instants(self) -> None:
        CustomProperty.objects.create(key="renewal", value_type="date")
        # 23:30 at UTC-05:00 on the 15th is 04:30 UTC on the 16th: text comparison puts it on the 15th.
        Customer.objects.create(user_id="late", traits={"renewal": "2026-01-15T23:30:00-05:00"})
        Customer.objects.create(user_id="early", traits={"renewal": "2026-01-15T00:30:00+02:00"})  # 14th, 22:30 UTC
        Customer.objects.create(user_id="day", traits={"renewal": "2026-01-15"})
        Customer.objects.create(user_id="junk", traits={"renewal": "2026-02-30"})
        with timezone.override("UTC"):
            assert matching(leaf("trait.renewal", "on", "2026-01-15")) == {"day"}
            assert matching(leaf("trait.renewal", "on", "2026-01-16")) == {"late"}
            assert matching(leaf("trait.renewal", "before", "2026-01-15")) == {"early"}
            assert matching(leaf("trait.renewal", "after", "2026-01-15")) == {"late"}
            assert matching(leaf("trait.renewal", "is_set")) == {"late", "early", "day", "junk"}


class TestKeysAreData:
    def test_a_trait_key_with_a_lookup_in_it_is_read_as_a_key(self) -> None:
        CustomProperty.objects.create(key="x__gt", value_type="number")
        CustomProperty.objects.create(key="a__b", value_type="string")
        Customer.objects.create(user_id="x", traits={"x": 10})
        Customer.objects.create(user_id="nested", traits={"a": {"b": "v"}})
        Customer.objects.create(user_id="literal", traits={"x__gt": 5, "a__b": "v"})
        assert matching(leaf("trait.x__gt", "equals", 5)) == {"literal"}
        assert matching(leaf("trait.a__b", "equals", "v")) == {"literal"}

    def test_an_event_filter_key_is_read_as_a_key(self, source: Source) -> None:
        ada = Customer.objects.create(user_id="ada")
        odd_keys = {"plan": {"name": "team"}, "n": 10, "a.b": "dot", "x y": "space", "é": "accent", 'q"t': "quote", "7": "digit"}  # fmt: skip
        Event.objects.create(
            source=source, customer=ada, message_id="m1", type="track", name="Clicked", properties=odd_keys,
            timestamp=NOW, received_at=NOW,
        )  # fmt: skip

        def performed(prop: str, operator: str, value: Any = None) -> set[str]:
            where = [{"property": prop, "operator": operator, "value": value}]
            return matching({"type": "event", "event": "Clicked", "operator": "at_least", "count": 1, "where": where})

        assert performed("plan__name", "equals", "team") == set()
        assert performed("n__gt", "equals", 5) == set()
        for key, value in odd_keys.items():
            if isinstance(value, str):
                assert performed(key, "equals", value) == {"ada"}, key
                assert performed(key, "is_set") == {"ada"}, key


class TestRegexDialect:
    @pytest.fixture
    def growth_api(
        self, make_user: Callable[..., AbstractUser], api_client_for: Callable[[AbstractUser], APIClient]
    ) -> APIClient:
        return api_client_for(make_user(Role.GROWTH))

    @pytest.mark.parametrize("pattern", [r"\d{1,2}+", "(?P<n>a)", "(?>ab)", r"\bword", "[[:alpha:]]", "a{1,300}"])
    def test_a_pattern_outside_the_common_dialect_is_refused_at_save(self, growth_api: APIClient, pattern: str) -> None:
        Customer.objects.create(user_id="ada", email="ada@acme.test")
        response = growth_api.post(
            "/api/v1/segments/preview/", {"conditions": leaf("customer.email", "matches_regex", pattern)}, format="json"
        )
        assert response.status_code == 400, response.content
        assert "regular expression" in response.json()["error"]

    def test_the_common_dialect_means_the_same_on_both_databases(self) -> None:
        Customer.objects.create(user_id="newline", name="abc\n")
        Customer.objects.create(user_id="digits", name="order 42")
        Customer.objects.create(user_id="arabic", name="order \u0664\u0662")  # Arabic-Indic digits
        assert matching(leaf("customer.name", "matches_regex", "abc$")) == set()  # $ is the end of the text
        assert matching(leaf("customer.name", "matches_regex", r"\d\d$")) == {"digits"}  # \d is 0-9
        assert matching(leaf("customer.name", "matches_regex", "c.")) == set()  # . is not a newline

    ACCEPTED = [
        "^a", "a$", "\\d+", "\\D", "\\w+@\\w+", "\\W", "\\s", "\\S+", "a.c", "(ab|cd)+", "(?:o|a)r?d", "x{0}",
        "l{2,}", "[0-9]{1,3}", "[^a-z]", "[\\d_\\-]", "[A-Z][a-z]*", "é+", "\\.test$", "^$", "\\$\\^\\(\\)",
        "a*?b", "\\t|\\n", "[\\]\\[]", "}", "]", "a{2}b{0,3}", "(a|b|c){1,255}", "\\\\", "'\"", "[\\s\\w]+$",
    ]  # fmt: skip
    TEXTS = ["", "a", "abc\n", "ABC", "x\ty", "order 42", "order \u0664\u0662", "é", "É", "a]b[c", "\\", "O'B\"",
             "$^()", "ab cd", "aab", "ada@acme.test", "{}", "lll", "a" * 300]  # fmt: skip

    def test_every_accepted_pattern_means_the_same_in_both_dialects(self) -> None:
        """The canonical forms, run by this database, answer as Python's re does for each of them."""
        import re

        from django.db import connection

        from segments.regex_dialect import canonical

        operator = "~" if connection.vendor == "postgresql" else "REGEXP"
        with connection.cursor() as cursor:
            for pattern in self.ACCEPTED:
                runs = canonical(pattern)
                for text in self.TEXTS:
                    cursor.execute(f"SELECT %s {operator} %s", [text, runs])
                    assert bool(cursor.fetchone()[0]) == bool(re.search(runs, text)), (pattern, runs, text)

    def test_a_valid_pattern_saves(self) -> None:
        parse_tree(leaf("customer.email", "matches_regex", r"^[a-z0-9._-]+@(acme|example)\.test$"))
        with pytest.raises(InvalidCondition, match="regular expression"):
            parse_tree(leaf("customer.email", "matches_regex", "(unclosed"))


class TestFirstAndLastWithinAWindow:
    @pytest.fixture
    def clicks(self, source: Source) -> Customer:
        ada = Customer.objects.create(user_id="ada")
        for index, days_ago in enumerate((40, 3)):
            Event.objects.create(
                source=source, customer=ada, message_id=f"c{index}", type="track", name="Clicked",
                timestamp=NOW - timedelta(days=days_ago), received_at=NOW,
            )  # fmt: skip
        return ada

    def test_the_window_narrows_the_events_considered(self, clicks: Customer) -> None:
        ten_days_ago = (NOW - timedelta(days=10)).date().isoformat()
        first_after = {"type": "event", "event": "Clicked", "operator": "first_after", "date": ten_days_ago}
        assert matching(first_after) == set()  # the first click ever was 40 days ago
        assert matching({**first_after, "within_days": 7}) == {"ada"}  # the first in the last 7 days was 3 days ago
        window = [(NOW - timedelta(days=50)).date().isoformat(), (NOW - timedelta(days=20)).date().isoformat()]
        last_before = {"type": "event", "event": "Clicked", "operator": "last_before", "date": ten_days_ago}
        assert matching(last_before) == set()
        assert matching({**last_before, "between": window}) == {"ada"}

    def test_explain_shows_the_window_and_the_first_event_inside_it(self, clicks: Customer) -> None:
        ten_days_ago = (NOW - timedelta(days=10)).date().isoformat()
        tree = {"type": "event", "event": "Clicked", "operator": "first_after", "date": ten_days_ago, "within_days": 7}
        item = explain(tree, clicks, now=NOW)["leaves"][0]
        assert "in the last 7 days" in item["description"]
        assert item["actual"] == (NOW - timedelta(days=3)).isoformat()
        assert item["held"] is True


def test_preview_of_every_leaf_kind_answers(source: Source) -> None:
    """Smoke: the preview of an OR over an `is set` on each derived property runs on this database."""
    Customer.objects.create(user_id="ada")
    tree = group(
        "or",
        *(
            leaf(prop, "is_set")
            for prop in ("sales.meeting_logged", "subscription.is_free_trial", "trial.opt_in", "account.members")
        ),
        negate=True,
    )
    assert segment_preview(tree, now=NOW)["count"] == 0


class TestValuesBothDatabasesCanHold:
    """Values that passed validation and then failed in Python or in the database at evaluation (a 500 from the
    preview): refused when the tree is saved, with the reason."""

    @pytest.mark.parametrize(
        ("tree", "message"),
        [
            (leaf("subscriber.mrr", "gt", float("inf")), "finite number"),
            (leaf("subscriber.mrr", "gt", 10**400), "finite number"),
            (leaf("customer.first_seen", "within_last_days", 10**9), "from 0 to 36,500"),
            (leaf("customer.first_seen", "before", "9999-12-31"), "dates run from"),
            ({"type": "event", "event": "X", "operator": "at_least", "count": 10**30}, "from 0 to 1,000,000,000"),
            ({"type": "event", "event": "X", "operator": "at_least", "within_days": 10**8}, "from 0 to 36,500"),
        ],
    )
    def test_refused_when_saved(self, tree: dict[str, Any], message: str) -> None:
        with pytest.raises(InvalidCondition, match=message):
            parse_tree(tree)

    def test_whole_days_are_whole_days_elapsed(self, plan: Any) -> None:
        # "duration_days gt 5" held only after 6 days and a moment; 6 whole days have elapsed at exactly 6 days.
        from integrations.stripe.models import Subscription

        ada = Customer.objects.create(user_id="ada")
        Subscription.objects.create(customer=ada, plan=plan, status="active", started_at=NOW - timedelta(days=6))
        assert matching(leaf("subscription.duration_days", "gt", 5)) == {"ada"}
        assert matching(leaf("subscription.duration_days", "equals", 6)) == {"ada"}
        assert matching(leaf("subscription.duration_days", "lt", 6)) == set()
        assert matching(leaf("subscription.duration_days", "lt", 6.5)) == {"ada"}
        assert matching(leaf("subscription.duration_days", "equals", 5.5)) == set()

    def test_a_fraction_is_not_truncated_for_an_integer_column(self, plan: Any) -> None:
        # Found by the differential test: Django's integer fields turn 3.5 into 3 before comparing.
        from integrations.stripe.models import Subscription

        ada = Customer.objects.create(user_id="ada", mrr_cents=4999)
        Subscription.objects.create(customer=ada, plan=plan, status="active", quantity=3, started_at=NOW)
        assert matching(leaf("subscription.quantity", "equals", 3.5)) == set()
        assert matching(leaf("subscription.quantity", "lt", 3.5)) == {"ada"}
        assert matching(leaf("subscription.quantity", "between", [2.5, 2.9])) == set()
        assert matching(leaf("subscriber.mrr", "lt", 49.995)) == {"ada"}  # 4999 cents < 4999.5
