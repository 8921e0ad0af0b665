"""A small declarative schema for TOML tables, with errors that point at the line.

Each table is a mapping of key name to :class:`Key`; :func:`check_table` turns a
parsed table into plain Python values or raises :class:`CampaignError` naming the
file, the line, the key and what is wrong.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import CampaignError

Check = Callable[[Any], str | None]


@dataclass(frozen=True)
class Key:
    type: str  # "str" | "int" | "bool" | "float" | "list[str]" | "table" | "str|list[str]"
    required: bool = False
    default: Any = None
    check: Check | None = None
    doc: str = ""


_TYPE_WORDS = {
    bool: "boolean",
    int: "integer",
    float: "float",
    str: "string",
    list: "array",
    dict: "table",
}


def type_word(value: object) -> str:
    for cls, word in _TYPE_WORDS.items():
        if isinstance(value, cls):
            return word
    return type(value).__name__


def _matches(kind: str, value: Any) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "list[str]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "list":
        return isinstance(value, list)
    if kind == "table":
        return isinstance(value, dict)
    if kind == "any":
        return True
    if "|" in kind:
        return any(_matches(part, value) for part in kind.split("|"))
    raise AssertionError(f"unknown schema type {kind}")


_EXPECTED = {
    "str": "a string",
    "bool": "true or false",
    "int": "an integer",
    "float": "a number",
    "list[str]": "an array of strings",
    "list": "an array",
    "table": "a table",
}


def expected_words(kind: str) -> str:
    return " or ".join(_EXPECTED.get(part, part) for part in kind.split("|"))


class Locator:
    """Finds the line of a key in the campaign text, for error messages.

    TOML parsers keep no positions for values, so we scan the text line by line,
    following headers (``[t]``, ``[[t]]``, quoted and dotted names), dotted keys
    (``targets.forge = ...`` at the top level) and skipping the insides of
    multi-line strings and arrays.  A key written inside an inline table is found
    at the line of its table; anything not found falls back to the table's header.
    """

    def __init__(self, text: str) -> None:
        # TOML lines end at "\n" only (``str.splitlines`` would also split at U+2028...)
        self.lines = text.split("\n")
        self.entries, self.unclosed = _scan(self.lines)

    def line(self, table: str, key: str | None = None, index: int | None = None) -> int | None:
        """Line of ``key`` in ``table`` ("" for the top level); ``index`` picks one ``[[table]]``."""
        target = tuple(part for part in (table, key) if part)
        if not target:
            return None
        found = self._find(target, table, index)
        if found is None and index is not None:  # ``change = [{...}, ...]``: no headers to count
            found = self._find(target, table, None)
        return found

    def _find(self, target: tuple[str, ...], table: str, index: int | None) -> int | None:
        seen, in_scope, fallback, depth = -1, index is None, None, 0
        for entry in self.entries:
            if entry.header:
                if entry.array and entry.path == (table,):
                    seen += 1
                if index is not None:
                    in_scope = entry.path[:1] == (table,) and seen == index
            if not in_scope:
                continue
            path = entry.path
            if path[: len(target)] == target:
                return entry.number
            if target[: len(path)] == path and len(path) > depth:
                fallback, depth = entry.number, len(path)  # an enclosing table or inline table
        return fallback

    def definitions(self, name: str, before: int) -> list[int]:
        """Lines up to ``before`` that define a key or table whose last name part is ``name``."""
        return [e.number for e in self.entries if e.number <= before and e.path[-1:] == (name,)]


@dataclass(frozen=True)
class _Entry:
    number: int  # 1-based line
    path: tuple[str, ...]  # full dotted path this line defines
    header: bool = False
    array: bool = False  # [[header]]


_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _key_path(text: str, pos: int) -> tuple[tuple[str, ...], int] | None:
    """Parse a dotted key at ``text[pos:]``: its parts and the position after it."""
    parts: list[str] = []
    while True:
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos >= len(text):
            return None
        char = text[pos]
        if char in "\"'":
            close = pos + 1
            while close < len(text) and text[close] != char:
                close += 2 if char == '"' and text[close] == "\\" else 1
            if close >= len(text):
                return None
            raw = text[pos + 1 : close]
            parts.append(_unescape(raw) if char == '"' else raw)
            pos = close + 1
        else:
            bare = _BARE.match(text, pos)
            if not bare:
                return None
            parts.append(bare.group(0))
            pos = bare.end()
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos < len(text) and text[pos] == ".":
            pos += 1
            continue
        return tuple(parts), pos


def _unescape(raw: str) -> str:
    try:
        value = json.loads(f'"{raw}"')
    except ValueError:
        return raw
    return value if isinstance(value, str) else raw


@dataclass
class _Open:
    """What is still open at the end of a line: a multi-line string, brackets."""

    quote: str | None = None  # """ or '''
    depth: int = 0  # [ and { of a multi-line array or inline table
    line: int = 0  # the line being scanned
    quote_line: int = 0  # where the open multi-line string began
    depth_line: int = 0  # where the outermost open bracket began

    @property
    def since(self) -> int:
        return self.quote_line if self.quote else self.depth_line

    def __bool__(self) -> bool:
        return bool(self.quote or self.depth)


def _scan_value(text: str, pos: int, state: _Open) -> None:
    """Follow strings and brackets in ``text[pos:]``."""
    while pos < len(text):
        if state.quote:
            close = text.find(state.quote, pos)
            while close > 0 and state.quote == '"""' and _escaped(text, close):
                close = text.find(state.quote, close + 1)
            if close < 0:
                return
            pos, state.quote = close + 3, None
            while pos < len(text) and text[pos] == text[pos - 1]:  # """" ends with quotes
                pos += 1
            continue
        char = text[pos]
        if char == "#":
            return
        if text.startswith(('"""', "'''"), pos):
            state.quote, state.quote_line, pos = text[pos : pos + 3], state.line, pos + 3
            continue
        if char in "\"'":
            close = pos + 1
            while close < len(text) and text[close] != char:
                close += 2 if char == '"' and text[close] == "\\" else 1
            pos = close + 1
            continue
        if char in "[{":
            state.depth += 1
            state.depth_line = state.line if state.depth == 1 else state.depth_line
        elif char in "]}":
            state.depth = max(0, state.depth - 1)
        pos += 1


def _escaped(text: str, pos: int) -> bool:
    backslashes = 0
    while pos - backslashes - 1 >= 0 and text[pos - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


def _scan(lines: list[str]) -> tuple[list[_Entry], _Open | None]:
    """What each line defines, and what is left open at the end of the text."""
    entries: list[_Entry] = []
    current: tuple[str, ...] = ()
    state = _Open()
    for number, text in enumerate(lines, start=1):
        state.line = number
        if state:
            _scan_value(text, 0, state)
            continue
        stripped = text.lstrip(" \t")
        offset = len(text) - len(stripped)
        if stripped.startswith("["):
            array = stripped.startswith("[[")
            parsed = _key_path(text, offset + (2 if array else 1))
            if parsed:
                path, end = parsed
                rest = text[end:].lstrip(" \t")
                closing = "]]" if array else "]"
                after = rest[len(closing) :].strip(" \t\r")
                if rest.startswith(closing) and (not after or after.startswith("#")):
                    current = path
                    entries.append(_Entry(number, path, header=True, array=array))
                    continue
        parsed = _key_path(text, offset)
        if parsed and parsed[1] < len(text) and text[parsed[1]] == "=":
            entries.append(_Entry(number, current + parsed[0]))
            _scan_value(text, parsed[1] + 1, state)
        else:
            _scan_value(text, offset, state)
    return entries, state if state else None


@dataclass
class TableContext:
    file: str
    locator: Locator
    table: str  # "targets", "change"
    index: int | None = None  # position in an array of tables

    @property
    def label(self) -> str:
        return (
            f"[[{self.table}]] #{self.index + 1}" if self.index is not None else f"[{self.table}]"
        )

    def error(self, what: str, key: str | None = None) -> CampaignError:
        line = self.locator.line(self.table, key, self.index)
        where = f"{self.label} {show_key(key)}" if key else self.label
        return CampaignError(self.file, one_line(what), line=line, key=where)


def show_key(name: str) -> str:
    """A key as it would be written in TOML: bare when it can be, else quoted."""
    return name if _BARE.fullmatch(name) else json.dumps(name, ensure_ascii=False)


_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def one_line(text: str) -> str:
    """``text`` with control characters escaped, so an error stays on one line."""
    return _CONTROL.sub(lambda m: repr(m.group(0))[1:-1], text)


def _show_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\0" in value
    return isinstance(value, list) and any(isinstance(v, str) and "\0" in v for v in value)


def check_table(
    raw: Mapping[str, Any],
    schema: Mapping[str, Key],
    ctx: TableContext,
    *,
    allow: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Validate ``raw`` against ``schema``; unknown keys are errors unless in ``allow``."""
    for name in raw:
        if name not in schema and name not in allow:
            known = ", ".join(sorted(set(schema) | set(allow)))
            raise ctx.error(f"unknown key (known keys: {known})", name)
    out: dict[str, Any] = {}
    for name, key in schema.items():
        if name not in raw:
            if key.required:
                raise ctx.error("is required", name)
            out[name] = key.default
            continue
        value = raw[name]
        if not _matches(key.type, value):
            got = type_word(value)
            if key.type == "list[str]" and isinstance(value, list):
                item = next(v for v in value if not isinstance(v, str))
                got = f"an array with a non-string item {_show_value(item)}"
            raise ctx.error(f"expected {expected_words(key.type)}, got {got}", name)
        if _has_nul(value):
            raise ctx.error("must not contain a NUL character (\\u0000)", name)
        if key.check is not None:
            problem = key.check(value)
            if problem:
                raise ctx.error(problem, name)
        out[name] = value
    return out


# Reusable checks -----------------------------------------------------------


def compile_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


MAX_REGEX_CHARS = 2000


def _show_pattern(pattern: str) -> str:
    return repr(pattern) if len(pattern) <= 80 else repr(pattern[:77]) + "..."


def regex_check(value: Any) -> str | None:
    """A Python regular expression (``re``) that compiles."""
    patterns = value if isinstance(value, list) else [value]
    for pattern in patterns:
        if len(pattern) > MAX_REGEX_CHARS:
            return f"regular expression is too long (over {MAX_REGEX_CHARS} characters)"
        try:
            with warnings.catch_warnings():  # FutureWarning "possible nested set" on stderr
                warnings.simplefilter("ignore")
                re.compile(pattern)
        except (re.error, OverflowError, RecursionError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            return f"invalid regular expression {_show_pattern(pattern)}: {reason}"
    return None


MAX_REPEAT = 1000
# backslash escapes that git grep -E (POSIX extended, GNU flavour) knows: \w \s \b \< \1 ...
_ERE_ESCAPES = frozenset("wWsSbB<>`'123456789")
_ERE_BRACE = re.compile(r"\{(\d*)(,(\d*))?\}")


def ere_check(value: Any) -> str | None:
    """A pattern for ``git grep -E``: compiles, and uses no syntax that POSIX extended
    regular expressions lack (there ``(?i)`` is an error and ``\\d`` silently means ``d``)."""
    problem = regex_check(value)
    if problem or not isinstance(value, str):
        return problem
    pattern, pos = value, 0
    while pos < len(pattern):
        char = pattern[pos]
        if char == "\\":
            escaped = pattern[pos + 1 : pos + 2]
            if escaped.isascii() and escaped.isalnum() and escaped not in _ERE_ESCAPES:
                hint = {"d": " (use [0-9])", "D": " (use [^0-9])"}.get(escaped, "")
                return (
                    f"\\{escaped} is not supported by git grep -E (POSIX extended regular "
                    f"expressions){hint}"
                )
            pos += 2
        elif char == "[":  # a bracket expression: "]" first is literal, [:alpha:] inside
            pos += 1
            if pattern[pos : pos + 1] == "^":
                pos += 1
            if pattern[pos : pos + 1] == "]":
                pos += 1
            while pos < len(pattern) and pattern[pos] != "]":
                if pattern[pos] == "[" and pattern[pos + 1 : pos + 2] in (":", ".", "="):
                    end = pattern.find(pattern[pos + 1] + "]", pos + 2)
                    pos = end + 2 if end > 0 else pos + 1
                else:
                    pos += 1
            pos += 1
        elif pattern.startswith("(?", pos):
            return (
                "(?...) groups and flags are not supported by git grep -E "
                "(POSIX extended regular expressions)"
            )
        elif char == "{":
            brace = _ERE_BRACE.match(pattern, pos)
            if not brace or not (brace.group(1) or brace.group(3)):
                return "a literal { must be written \\{ in git grep -E patterns"
            counts = [int(n) for n in (brace.group(1), brace.group(3)) if n]
            if max(counts) > MAX_REPEAT:
                return f"repetition count {max(counts)} is too large (at most {MAX_REPEAT})"
            pos = brace.end()
        else:
            pos += 1
    return None


def non_empty(value: Any) -> str | None:
    if isinstance(value, str) and not value.strip():
        return "must not be empty"
    return None


def int_range(low: int, high: int) -> Check:
    def check(value: Any) -> str | None:
        if not low <= value <= high:
            return f"must be between {low} and {high}, got {value}"
        return None

    return check


def one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        if value not in choices:
            return f"must be one of {', '.join(map(repr, choices))}, got {value!r}"
        return None

    return check


def all_of(*checks: Check) -> Check:
    def check(value: Any) -> str | None:
        for one in checks:
            problem = one(value)
            if problem:
                return problem
        return None

    return check
