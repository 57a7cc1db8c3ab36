"""The types a property's value is compared as. Its own module because every part of the language reads it — the
catalogue (each property's type), the condition tree (which operators fit), computed traits (a kind's type) — and
none of them may import the others in a circle."""

from __future__ import annotations

from enum import StrEnum


class ValueType(StrEnum):
    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"
    LIST = "list"
