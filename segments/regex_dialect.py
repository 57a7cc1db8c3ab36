"""The regular expressions a `matches_regex` condition accepts: the part of the language on which Python's `re`
(what SQLite's REGEXP runs, through Django) and PostgreSQL's advanced regular expressions agree, rewritten into one
canonical form that both databases read the same way.

Python and PostgreSQL disagree on more than syntax: `\\b` is a word boundary in one and a backspace in the other,
`\\d` and `\\w` follow Unicode in Python and the database locale in PostgreSQL, `.` skips a newline only in Python,
`$` also matches before a final newline only in Python, `(?P<n>…)`, `(?>…)` and possessive quantifiers exist only
in Python, and PostgreSQL caps repetition counts at 255. So a pattern is parsed here, refused when it uses anything
outside the common part (with a message saying what), and compiled to explicit forms: `\\d` → `[0-9]`, `\\w` →
`[0-9A-Za-z_]`, `\\s` → `[\\t\\n\\v\\f\\r ]`, `.` → `[^\\n]`, `^` / `$` → `\\A` / `\\Z`, groups → `(?:…)`, every
ASCII punctuation character escaped. The canonical pattern is what runs; the pattern as written is what is stored
and shown. Whether a pattern matches somewhere in the text is all a condition asks, so greedy and lazy quantifiers
are the same (lazy ones are accepted and compiled greedy).
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import lru_cache

MAX_REPEAT = 255  # PostgreSQL's RE_DUPMAX
MAX_SIZE = 2000  # positions after expanding counted repeats: far below PostgreSQL's "too complex"
MAX_LENGTH = 1000

DIGIT = "0-9"
WORD = "0-9A-Za-z_"
SPACE = "\\t\\n\\v\\f\\r "
CLASS_ESCAPES = {"d": DIGIT, "w": WORD, "s": SPACE}
CONTROL_ESCAPES = {"t": "\\t", "n": "\\n", "r": "\\r", "f": "\\f", "v": "\\v"}
PUNCTUATION = set(string.punctuation)


class UnsupportedPattern(ValueError):
    """A pattern outside the common dialect, or not a regular expression at all; the message says why."""


def _literal(char: str) -> str:
    if char in PUNCTUATION:
        return "\\" + char
    return {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f", "\v": "\\v"}.get(char, char)


@dataclass
class _Parsed:
    text: str
    size: int  # positions after expanding counted repeats


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.pattern, self.at = pattern, 0

    def fail(self, message: str) -> UnsupportedPattern:
        return UnsupportedPattern(f"{message} (near character {max(self.at, 1)})")

    def peek(self, offset: int = 0) -> str:
        index = self.at + offset
        return self.pattern[index] if index < len(self.pattern) else ""

    def take(self) -> str:
        char = self.peek()
        self.at += 1
        return char

    def alternation(self, depth: int) -> _Parsed:
        branches = [self.branch(depth)]
        while self.peek() == "|":
            self.take()
            branches.append(self.branch(depth))
        return _Parsed("|".join(b.text for b in branches), sum(b.size for b in branches))

    def branch(self, depth: int) -> _Parsed:
        pieces: list[_Parsed] = []
        while self.peek() not in ("", "|", ")"):
            pieces.append(self.piece(depth))
        if not pieces:
            raise self.fail("an empty alternative (nothing between | and | or a parenthesis) is not supported")
        return _Parsed("".join(p.text for p in pieces), sum(p.size for p in pieces))

    def piece(self, depth: int) -> _Parsed:
        atom, repeatable = self.atom(depth)
        if self.peek() not in ("*", "+", "?", "{"):
            return atom
        if not repeatable:
            raise self.fail("^ and $ cannot be repeated")
        quantifier, copies = self.quantifier()
        if self.peek() == "?":
            self.take()  # lazy: the same as greedy for "does it match"
        if self.peek() in ("*", "+", "?", "{"):
            raise self.fail("a quantifier cannot follow a quantifier (possessive quantifiers are not supported)")
        return _Parsed(atom.text + quantifier, atom.size * max(copies, 1))

    def quantifier(self) -> tuple[str, int]:
        """The canonical quantifier and how many copies of its atom a database may expand it to (PostgreSQL copies
        the atom of a counted repeat; *, + and ? are loops)."""
        char = self.take()
        if char in ("*", "+", "?"):
            return char, 1
        end = self.pattern.find("}", self.at)
        body = self.pattern[self.at : end] if end != -1 else ""
        parts = body.split(",")
        counts_ok = len(parts) <= 2 and parts[0].isdigit() and (len(parts) == 1 or not parts[1] or parts[1].isdigit())
        if end == -1 or not counts_ok:
            raise self.fail("{ starts a count like {2}, {2,} or {2,5}; write \\{ for the character")
        self.at = end + 1
        low = int(parts[0])
        high = int(parts[1]) if len(parts) == 2 and parts[1] else None
        if low > MAX_REPEAT or (high is not None and high > MAX_REPEAT):
            raise self.fail(f"repetition counts go up to {MAX_REPEAT}")
        if high is not None and high < low:
            raise self.fail("a count {m,n} needs m ≤ n")
        text = f"{{{low}}}" if len(parts) == 1 else f"{{{low},{'' if high is None else high}}}"
        return text, high if high is not None else low + (len(parts) == 2)

    def atom(self, depth: int) -> tuple[_Parsed, bool]:
        char = self.take()
        if char == "(":
            if self.peek() == "?":
                if self.peek(1) != ":":
                    raise self.fail(
                        "(?…) groups other than (?:…) are not supported: named groups, lookarounds, atomic groups "
                        "and inline flags differ between the databases"
                    )
                self.at += 2
            if depth >= 20:
                raise self.fail("groups nest at most 20 deep")
            if self.peek() == "":
                raise self.fail("a ( is not closed")
            if self.peek() == ")":
                raise self.fail("an empty group () is not supported")
            inner = self.alternation(depth + 1)
            if self.take() != ")":
                raise self.fail("a ( is not closed")
            return _Parsed(f"(?:{inner.text})", inner.size), True
        if char == ")":
            raise self.fail("a ) has no (")
        if char == "[":
            return self.bracket(), True
        if char == ".":
            return _Parsed("[^\\n]", 1), True
        if char == "^":
            return _Parsed("\\A", 0), False
        if char == "$":
            return _Parsed("\\Z", 0), False
        if char in ("*", "+", "?"):
            raise self.fail(f"{char} has nothing to repeat")
        if char == "{":
            raise self.fail("{ starts a count like {2}, {2,} or {2,5}; write \\{ for the character")
        if char == "\\":
            return self.escape(), True
        return _Parsed(_literal(char), 1), True

    def escape(self) -> _Parsed:
        char = self.take()
        if char == "":
            raise self.fail("the pattern ends with a lone \\")
        if char in CLASS_ESCAPES:
            return _Parsed(f"[{CLASS_ESCAPES[char]}]", 1)
        if char.lower() in CLASS_ESCAPES:
            return _Parsed(f"[^{CLASS_ESCAPES[char.lower()]}]", 1)
        if char in CONTROL_ESCAPES:
            return _Parsed(CONTROL_ESCAPES[char], 1)
        if char in PUNCTUATION:
            return _Parsed(_literal(char), 1)
        raise self.fail(
            f"\\{char} is not supported (escapes such as \\b, \\A, \\x, \\u and back-references mean different things "
            "in the two databases); use \\d \\w \\s \\D \\W \\S \\t \\n \\r, or \\ before a punctuation character"
        )

    def bracket(self) -> _Parsed:
        negate = self.peek() == "^"
        if negate:
            self.take()
        items: list[str] = []
        while True:
            char = self.take()
            if char == "":
                raise self.fail("a [ is not closed")
            if char == "]":
                break
            if char == "[":
                raise self.fail("[ inside a character class must be written \\[ ([:alpha:]-style classes differ)")
            if char == "\\":
                escaped = self.take()
                if escaped in CLASS_ESCAPES:
                    items.append(CLASS_ESCAPES[escaped])
                    continue
                if escaped in CONTROL_ESCAPES:
                    items.append(CONTROL_ESCAPES[escaped])
                    continue
                if escaped not in PUNCTUATION:
                    raise self.fail(f"\\{escaped} is not supported inside a character class")
                char = escaped
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.take()
                end = self.take()
                if end == "\\":
                    raise self.fail("a range must end with a letter or digit")
                if not _same_run(char, end):
                    raise self.fail("ranges run between two digits, two lowercase or two uppercase ASCII letters")
                if end < char:
                    raise self.fail(f"the range {char}-{end} is backwards")
                items.append(f"{char}-{end}")
                continue
            items.append(_literal(char))
        if not items:
            raise self.fail("an empty character class [] is not supported")
        return _Parsed(f"[{'^' if negate else ''}{''.join(items)}]", 1)


def _same_run(first: str, last: str) -> bool:
    return any(first in run and last in run for run in (string.digits, string.ascii_lowercase, string.ascii_uppercase))


@lru_cache(maxsize=512)
def canonical(pattern: str) -> str:
    """The pattern in the canonical form both databases run, or UnsupportedPattern saying what is wrong."""
    if not pattern:
        raise UnsupportedPattern("the pattern is empty")
    if len(pattern) > MAX_LENGTH:
        raise UnsupportedPattern(f"patterns are at most {MAX_LENGTH} characters")
    parser = _Parser(pattern)
    parsed = parser.alternation(0)
    if parser.at < len(pattern):
        raise parser.fail("a ) has no (")
    if parsed.size > MAX_SIZE:
        raise UnsupportedPattern(f"the pattern repeats too much (more than {MAX_SIZE} positions once counts expand)")
    return parsed.text
