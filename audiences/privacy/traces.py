"""Who the person being erased is, as other rows may name them where no foreign key leads: emails, user and
anonymous ids, phone numbers, Stripe customer ids (`PersonTraces`), gathered from their own rows and from the
collectors apps register from their `ready()` (so this lower layer imports nothing above it), with the matching
and redaction built on those traces.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from audiences.models import AnonymousId, Customer, Event, ProfileMerge

ERASED = "[erased]"
# Ids that could be a number or a word elsewhere ("42", "u7", "enterprise") are matched only as the value of an
# id key of a call ({"userId": "42"}); the others (emails, "usr_8f2k", UUIDs, phone numbers) wherever they
# stand as a whole token.
_ID_KEYS = ("userId", "user_id", "anonymousId", "anonymous_id", "previousId", "previous_id")
_MIN_SEARCHED_LENGTH = 6
_DISTINCTIVE = re.compile(r"[\d@._:+-]")
_MIN_NAME_LENGTH = 3
# A term counts where it is not part of a longer word, id or address: "ada@acme.test" is not found in
# "nada@acme.test" nor in "ada@acme.testing".
_BEFORE = r"(?<![\w@.+-])"
_AFTER = r"(?![\w@+-]|\.\w)"


@dataclass
class Traces:
    """What a collector found about a person: ids (searched everywhere), names (redacted where the person is
    found, never searched: a name is not unique), and tagged ids some rules search for as well (for example
    the person's Stripe charge ids, which name them in dispute events only)."""

    ids: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    tagged: dict[str, set[str]] = field(default_factory=dict)

    def add(self, other: Traces) -> None:
        self.ids |= other.ids
        self.names |= other.names
        for tag, values in other.tagged.items():
            self.tagged.setdefault(tag, set()).update(values)


def clean_terms(values: Iterable[Any]) -> frozenset[str]:
    """The non-empty, stripped texts among the values (ids and names as searched and redacted)."""
    return frozenset(text for value in values if isinstance(value, str | int) and (text := str(value).strip()))


def _is_short(term: str) -> bool:
    """Whether an id is too common to look for outside an id key: short, all digits, or a plain word."""
    return len(term) < _MIN_SEARCHED_LENGTH or term.isdigit() or not _DISTINCTIVE.search(term)


def _json_escaped(term: str) -> str:
    """The term as it appears inside a JSON string written with ASCII escapes (SQLite's JSON columns)."""
    return json.dumps(term)[1:-1]


@dataclass(frozen=True)
class PersonTraces:
    """The person being erased as other rows may name them, with the matching and redaction built on that."""

    customer_pk: int
    account_id: int | None
    ids: frozenset[str]
    names: frozenset[str]
    tagged: dict[str, frozenset[str]]

    def tag(self, name: str) -> frozenset[str]:
        return self.tagged.get(name, frozenset())

    def sql_patterns(self, extra: Iterable[str] = ()) -> list[str]:
        """Substrings a row mentioning the person contains (a superset: the row is then checked in Python)."""
        patterns: set[str] = set()
        for term in self.ids | clean_terms(extra):
            if _is_short(term):
                patterns.add(f'"{term}"')
                if term.isdigit():
                    patterns |= {f":{term}", f": {term}"}
            else:
                patterns |= {term, _json_escaped(term)}
        return sorted(patterns)

    @cached_property
    def _long(self) -> re.Pattern[str] | None:
        terms = {term for term in self.ids if not _is_short(term)}
        terms |= {name for name in self.names if len(name) >= _MIN_NAME_LENGTH}
        variants = {variant for term in terms for variant in (term, _json_escaped(term))}
        if not variants:
            return None
        alternatives = "|".join(re.escape(term) for term in sorted(variants, key=len, reverse=True))
        return re.compile(f"{_BEFORE}(?:{alternatives}){_AFTER}", re.IGNORECASE)

    @cached_property
    def _short(self) -> frozenset[str]:
        return frozenset(term for term in self.ids if _is_short(term))

    @cached_property
    def _short_in_text(self) -> re.Pattern[str] | None:
        if not self._short:
            return None
        keys = "|".join(_ID_KEYS)
        values = "|".join(re.escape(term) for term in sorted(self._short))
        return re.compile(f'("(?:{keys})"\\s*:\\s*)(?:"(?:{values})"|(?:{values})(?![\\w.]))')

    def redact_text(self, text: str) -> str:
        """The text with every mention of the person replaced by ERASED."""
        if self._long is not None:
            text = self._long.sub(ERASED, text)
        if self._short_in_text is not None:
            text = self._short_in_text.sub(rf'\1"{ERASED}"', text)
        return text

    def redact_json(self, value: Any, key: str = "") -> Any:
        """A copy of a JSON value with every mention of the person replaced by ERASED (keys included)."""
        if isinstance(value, dict):
            return {self.redact_text(str(name)): self.redact_json(item, str(name)) for name, item in value.items()}
        if isinstance(value, list):
            return [self.redact_json(item, key) for item in value]
        is_id = key in _ID_KEYS and isinstance(value, str | int) and not isinstance(value, bool)
        if is_id and str(value) in self._short:
            return ERASED
        if isinstance(value, str):
            return self.redact_text(value)
        return value


_collectors: list[Callable[[Customer], Traces]] = []


def register_trace_collector(collector: Callable[[Customer], Traces]) -> None:
    """Let an app add what it knows the person by (Stripe ids and emails, ...); called from its `ready()`."""
    if collector not in _collectors:
        _collectors.append(collector)


def person_traces(customer: Customer) -> PersonTraces:
    """Gather from the person's own rows every id, email, phone and name other rows may name them by."""
    traits = customer.traits if isinstance(customer.traits, dict) else {}
    found = Traces(
        ids={customer.user_id or "", customer.email or "", customer.stripe_customer_id or ""},
        names={customer.name or "", " ".join(str(traits.get(key) or "") for key in ("first_name", "last_name"))},
        tagged={"stripe_customer_ids": {customer.stripe_customer_id or ""}},
    )
    found.ids |= {str(traits.get(key) or "") for key in ("email", "phone", "mobile")}
    found.names.add(str(traits.get("name") or ""))
    found.ids |= set(AnonymousId.objects.filter(customer=customer).values_list("anonymous_id", flat=True))
    events = Event.objects.filter(customer=customer)
    found.ids |= set(events.exclude(user_id="").values_list("user_id", flat=True).distinct())
    found.ids |= set(events.exclude(anonymous_id="").values_list("anonymous_id", flat=True).distinct())
    found.ids |= set(ProfileMerge.objects.filter(customer=customer).values_list("linking_id", flat=True))
    for collector in _collectors:
        found.add(collector(customer))
    return PersonTraces(
        customer_pk=customer.pk,
        account_id=customer.account_id,
        ids=clean_terms(found.ids),
        names=clean_terms(found.names),
        tagged={tag: clean_terms(values) for tag, values in found.tagged.items()},
    )
