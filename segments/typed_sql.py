"""Typed tests on JSON values and on text, written once for SQLite and once for PostgreSQL so that both give the
same answer for every input — what Django's generic JSON lookups do not promise.

Why not `traits__<key>__gt` and friends: the key becomes part of a lookup string, so a key holding `__` is split
into a path and a lookup (`x__gt` compares `x`); a key made of digits is read as an array index; SQLite's JSON
path syntax cannot address a key holding `"`; and the comparisons themselves differ (SQLite orders any text above
any number, PostgreSQL's jsonb orders numbers above text; JSON null is "set" to `isnull`). Here a key is always a
bound parameter: PostgreSQL reads it with `column -> key::text`, SQLite finds it with `json_each(column)`, and every
test names the JSON type it applies to, so a value of another type (text where a number is expected, JSON null)
simply fails it. Every test is two-valued: true or false, never SQL NULL, so NOT of it is its complement.

Text tests are case-insensitive for the ASCII letters A–Z only (PostgreSQL's `upper()` follows Unicode, SQLite's
`LIKE` and `lower()` do not): both sides are folded with `translate()` on PostgreSQL and `lower()` on SQLite (whose
built-in `lower()` folds ASCII only; an SQLite built with the ICU extension would fold more, and neither Python's
sqlite3 nor Debian's is).

Dates held in JSON are instants: ISO 8601 text (`2026-01-15`, `2026-01-15T10:00`, `…:30.123456`, `…Z`,
`…-05:00`), read as UTC when it carries no offset, compared to the microsecond; text that is not such a date
(`2026-02-30`, `15/01/2026`, `now`) is not a date. PostgreSQL parses it with a cast guarded by INSTANT_PATTERN,
so no text can make the query fail; SQLite rebuilds it from the fixed positions of the same pattern.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from django.db import NotSupportedError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BooleanField, CharField, F, Func, Lookup, TextField
from django.db.models.sql.compiler import SQLCompiler

Fragment = tuple[str, tuple[Any, ...]]

FOLD_TABLE = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)

_YEAR = "[1-8][0-9]{3}"
_LEAP_YEAR = "(?:[1-8][0-9](?:0[48]|[2468][048]|[13579][26])|(?:[1357][26]|[2468][048])00)"
_DAY = (
    f"(?:{_YEAR}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    f"|02-(?:0[1-9]|1[0-9]|2[0-8]))|{_LEAP_YEAR}-02-29)"
)
_OFFSET = "(?:Z|[+-](?:0[0-9]|1[0-5]):[0-5][0-9])"
_TIME = f"[T ](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\\.[0-9]{{1,6}})?)?{_OFFSET}?"
# Years 1000–8999 (fixed width, and within both databases' ranges after any offset), real calendar days, offsets
# up to ±15:59 (PostgreSQL's limit). Written in the part of the regex language Python and PostgreSQL share.
INSTANT_PATTERN = f"\\A{_DAY}(?:{_TIME})?\\Z"
_HAS_OFFSET = f"{_OFFSET}\\Z"


def fold(text: str) -> str:
    """Text as the text tests compare it: ASCII letters lowercased, everything else as it is."""
    return text.translate(FOLD_TABLE)


def compose(template: str, *parts: Fragment) -> Fragment:
    """SQL from a template whose `{}` placeholders take fragments, their parameters kept in order."""
    params: list[Any]
    pieces = template.split("{}")
    if len(pieces) != len(parts) + 1:
        raise ValueError(f"{template!r} takes {len(pieces) - 1} fragments, got {len(parts)}")
    sql, params = pieces[0], []
    for part, piece in zip(parts, pieces[1:], strict=True):
        sql += part[0] + piece
        params.extend(part[1])
    return sql, tuple(params)


def param(value: Any) -> Fragment:
    return "%s", (value,)


def _folded(vendor: str, text: Fragment) -> Fragment:
    if vendor == "postgresql":
        return compose("translate({}, {}, {})", text, param(string.ascii_uppercase), param(string.ascii_lowercase))
    return compose("lower({})", text)


def text_test(vendor: str, test: str, text: Fragment, operand: str) -> Fragment:
    """`contains` / `startswith` / `endswith` (operand already folded) or `regex` (operand in the canonical dialect
    of segments.regex_dialect) on a text expression; NULL when the text is NULL."""
    if test == "regex":
        return compose("({} ~ {})" if vendor == "postgresql" else "({} REGEXP {})", text, param(operand))
    folded = _folded(vendor, text)
    length = "char_length" if vendor == "postgresql" else "length"
    if test == "contains":
        position = "strpos" if vendor == "postgresql" else "instr"
        return compose(f"({position}({{}}, {{}}) > 0)", folded, param(operand))
    if test == "startswith":
        return compose(f"(substr({{}}, 1, {length}({{}})) = {{}})", folded, param(operand), param(operand))
    if test == "endswith":
        if vendor == "postgresql":
            return compose("(right({}, char_length({})) = {})", folded, param(operand), param(operand))
        return compose("(substr({}, length({}) - length({}) + 1) = {})", folded, folded, param(operand), param(operand))
    raise ValueError(f"unknown text test {test!r}")


def instant_bound(vendor: str, moment: datetime) -> Any:
    """A bound as the instant of a JSON date is compared with it: an aware datetime on PostgreSQL, the same
    fixed-width UTC text the SQLite expression produces on SQLite."""
    if vendor == "postgresql":
        return moment
    utc = moment.astimezone(UTC)
    return f"{utc.year:04d}-{utc:%m-%d %H:%M:%S}.{utc.microsecond:06d}"


def _instant(vendor: str, text: Fragment) -> Fragment:
    """The instant a text holds (timestamptz on PostgreSQL, UTC text `YYYY-MM-DD HH:MM:SS.ffffff` on SQLite), or
    NULL when the text is not a date."""
    if vendor == "postgresql":
        return compose(
            "(CASE WHEN NOT ({} ~ {}) THEN NULL WHEN {} ~ {} THEN ({})::timestamptz "
            "ELSE ({})::timestamp AT TIME ZONE 'UTC' END)",
            text, param(INSTANT_PATTERN), text, param(_HAS_OFFSET), text, text,
        )  # fmt: skip
    offset = compose("(length({}) >= 22 AND substr({}, -6, 1) IN ('+', '-'))", text, text)
    suffix = compose("(CASE WHEN substr({}, -1, 1) = 'Z' THEN 1 WHEN {} THEN 6 ELSE 0 END)", text, offset)
    base = compose(
        "substr({}, 1, 10) || ' ' || (CASE WHEN length({}) > 10 THEN substr({}, 12, 5) ELSE '00:00' END) || ':' || "
        "(CASE WHEN substr({}, 17, 1) = ':' THEN substr({}, 18, 2) ELSE '00' END)",
        text, text, text, text, text,
    )  # fmt: skip
    minutes = compose(
        "((CASE WHEN {} THEN (CASE substr({}, -6, 1) WHEN '+' THEN -1 ELSE 1 END) * "
        "(CAST(substr({}, -5, 2) AS INTEGER) * 60 + CAST(substr({}, -2, 2) AS INTEGER)) ELSE 0 END) || ' minutes')",
        offset, text, text, text,
    )  # fmt: skip
    fraction = compose(
        "substr((CASE WHEN substr({}, 20, 1) = '.' THEN substr({}, 21, length({}) - 20 - {}) ELSE '' END) "
        "|| '000000', 1, 6)",
        text, text, text, suffix,
    )  # fmt: skip
    return compose(
        "(CASE WHEN {} REGEXP {} THEN strftime({}, {}, {}) || '.' || {} END)",
        text, param(INSTANT_PATTERN), param("%Y-%m-%d %H:%M:%S"), base, minutes, fraction,
    )  # fmt: skip


def _instant_test(vendor: str, text: Fragment, bounds: tuple[tuple[str, datetime], ...]) -> Fragment:
    instant = _instant(vendor, text)
    tests = [compose(f"{{}} {op} {{}}", instant, param(instant_bound(vendor, moment))) for op, moment in bounds]
    return compose(" AND ".join(["{}"] * len(tests)), *tests)


COMPARISONS = {"=", "<", "<=", ">", ">="}


@dataclass(frozen=True)
class JSONTest:
    """One typed test on a JSON value (see JSONKeyHolds for how a kind reads on each database).

    Kinds and operands:
    - `present`: the value is there and is neither JSON null nor the empty text (no operand);
    - `scalar_in`: (texts, numbers): a text among `texts`, or a number equal to one of `numbers`;
    - `number`: ((comparison, n), …): a number satisfying every comparison;
    - `boolean`: True / False: that JSON boolean;
    - `text`: (text test, operand): a text passing segments.typed_sql.text_test;
    - `instant`: ((comparison, moment), …): a date (module docstring) satisfying every comparison;
    - `list_contains`: folded text: an array with a text element equal to it once folded.
    """

    kind: str
    operand: Any = None


def _pg_json_test(test: JSONTest, value: Fragment) -> Fragment:
    typed = compose("jsonb_typeof({})", value)
    text = compose("({} #>> ARRAY[]::text[])", value)
    if test.kind == "present":
        return compose("({} <> 'null' AND {} <> '\"\"'::jsonb)", typed, value)
    if test.kind == "scalar_in":
        # jsonb equality is typed: text equals text, a number equals an equal number (12 = 12.0)
        texts, numbers = test.operand
        listed = [param(json.dumps(v)) for v in (*texts, *numbers)]
        return compose(f"{{}} IN ({', '.join(['{}::jsonb'] * len(listed))})", value, *listed)
    if test.kind == "number":
        # jsonb compares two numbers as numbers (and never fails, whatever the value holds)
        checks = [compose(f"{{}} {op} {{}}::jsonb", value, param(json.dumps(n))) for op, n in test.operand]
        return compose("({} = 'number' AND " + " AND ".join(["{}"] * len(checks)) + ")", typed, *checks)
    if test.kind == "boolean":
        return compose("{} = {}::jsonb", value, param(json.dumps(bool(test.operand))))
    if test.kind == "text":
        name, operand = test.operand
        return compose("({} = 'string' AND {})", typed, text_test("postgresql", name, text, operand))
    if test.kind == "instant":
        return compose("({} = 'string' AND {})", typed, _instant_test("postgresql", text, test.operand))
    if test.kind == "list_contains":
        return compose(
            "EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN {} = 'array' THEN {} ELSE '[]'::jsonb END) "
            "AS e(item) WHERE jsonb_typeof(e.item) = 'string' AND {} = {})",
            typed, value, _folded("postgresql", ("(e.item #>> ARRAY[]::text[])", ())), param(test.operand),
        )  # fmt: skip
    raise ValueError(f"unknown JSON test {test.kind!r}")


def _sqlite_json_test(test: JSONTest) -> Fragment:
    """The test on the row `j` of json_each (columns `type`: null/true/false/integer/real/text/array/object, and
    `value`: the decoded value)."""
    value: Fragment = ("j.value", ())
    is_number = "j.type IN ('integer', 'real')"
    if test.kind == "present":
        return "(j.type <> 'null' AND NOT (j.type = 'text' AND j.value = ''))", ()
    if test.kind == "scalar_in":
        texts, numbers = test.operand
        either = []
        if texts:
            listed = ", ".join(["{}"] * len(texts))
            either.append(compose(f"(j.type = 'text' AND j.value IN ({listed}))", *map(param, texts)))
        if numbers:
            listed = ", ".join(["{}"] * len(numbers))
            either.append(compose(f"({is_number} AND j.value IN ({listed}))", *map(param, numbers)))
        return compose(" OR ".join(["{}"] * len(either)), *either)
    if test.kind == "number":
        checks = [compose(f"j.value {op} {{}}", param(n)) for op, n in test.operand]
        return compose(f"({is_number} AND " + " AND ".join(["{}"] * len(checks)) + ")", *checks)
    if test.kind == "boolean":
        return compose("j.type = {}", param("true" if test.operand else "false"))
    if test.kind == "text":
        name, operand = test.operand
        return compose("(j.type = 'text' AND {})", text_test("sqlite", name, value, operand))
    if test.kind == "instant":
        return compose("(j.type = 'text' AND {})", _instant_test("sqlite", value, test.operand))
    if test.kind == "list_contains":
        return compose(
            "(j.type = 'array' AND EXISTS (SELECT 1 FROM json_each(j.value) AS e WHERE e.type = 'text' AND "
            "lower(e.value) = {}))",
            param(test.operand),
        )
    raise ValueError(f"unknown JSON test {test.kind!r}")


class JSONKeyHolds(Func):
    """Whether the value under `key` of a JSON object column passes `test`: true or false, never NULL. The key is
    data (a parameter), never part of a lookup or a path."""

    output_field = BooleanField()

    def __init__(self, column: str, key: str, test: JSONTest) -> None:
        if test.kind == "number" and any(op not in COMPARISONS for op, _ in test.operand):
            raise ValueError(f"unknown comparison in {test.operand!r}")
        if test.kind == "instant" and any(op not in COMPARISONS for op, _ in test.operand):
            raise ValueError(f"unknown comparison in {test.operand!r}")
        super().__init__(F(column))
        self.key, self.test = key, test

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any) -> Fragment:  # type: ignore[override]
        raise NotSupportedError(f"segment conditions on JSON run on SQLite and PostgreSQL, not {connection.vendor}")

    def _column(self, compiler: SQLCompiler) -> Fragment:
        sql, params = compiler.compile(self.source_expressions[0])
        return sql, tuple(params)

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any) -> Fragment:
        value = compose("({} -> {}::text)", self._column(compiler), param(self.key))
        return compose("COALESCE(({}), false)", _pg_json_test(self.test, value))

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any) -> Fragment:
        return compose(
            "EXISTS (SELECT 1 FROM json_each({}) AS j WHERE j.key = {} AND ({}))",
            self._column(compiler), param(self.key), _sqlite_json_test(self.test),
        )  # fmt: skip


class JSONTextHolds(JSONKeyHolds):
    """Whether the JSON held as text in a column (a computed trait's unique list) passes `test`, as JSONKeyHolds
    reads a key: the same typed tests, never NULL."""

    def __init__(self, column: str, test: JSONTest) -> None:
        super().__init__(column, "", test)

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any) -> Fragment:
        value = compose("CAST({} AS jsonb)", self._column(compiler))
        return compose("COALESCE(({}), false)", _pg_json_test(self.test, value))

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any) -> Fragment:
        # the value as the only element of an array, so json_each gives the same row (type, value) as for a key
        return compose(
            "EXISTS (SELECT 1 FROM json_each(json_array(json({}))) AS j WHERE ({}))",
            self._column(compiler), _sqlite_json_test(self.test),
        )  # fmt: skip


class _FoldedTextLookup(Lookup[str]):
    """A text column compared ASCII-case-insensitively, the same on both databases (module docstring)."""

    prepare_rhs = False
    test: ClassVar[str]

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Fragment:
        lhs_sql, lhs_params = self.process_lhs(compiler, connection)
        return text_test(connection.vendor, self.test, (lhs_sql, tuple(lhs_params)), fold(str(self.rhs)))


@CharField.register_lookup
@TextField.register_lookup
class FoldedContains(_FoldedTextLookup):
    lookup_name = "folded_contains"
    test = "contains"


@CharField.register_lookup
@TextField.register_lookup
class FoldedStartsWith(_FoldedTextLookup):
    lookup_name = "folded_startswith"
    test = "startswith"


@CharField.register_lookup
@TextField.register_lookup
class FoldedEndsWith(_FoldedTextLookup):
    lookup_name = "folded_endswith"
    test = "endswith"
