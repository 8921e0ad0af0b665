"""A small declarative schema for TOML tables, with errors that point at the line.

Each table is a mapping of key name to :class:`Key`; :func:`check_table` turns a
parsed table into plain Python values or raises :class:`CampaignError` naming the
file, the line, the key and what is wrong.
"""

from __future__ import annotations

import re
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

    TOML parsers keep no positions for values, so we scan the text: good enough
    for hand-written campaign files, and falls back to the table's header.
    """

    _HEADER = re.compile(r"^\s*\[(\[)?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def line(self, table: str, key: str | None = None, index: int | None = None) -> int | None:
        current, seen, header_line = "", -1, None
        for number, raw in enumerate(self.lines, start=1):
            header = self._HEADER.match(raw)
            if header:
                current = header.group(2).replace('"', "")
                if current == table:
                    seen += 1
                in_table = current == table and (index is None or seen == index)
                if in_table and header_line is None:
                    header_line = number
                continue
            if current != table or (index is not None and seen != index):
                continue
            if key is not None and re.match(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*[=.]", raw):
                return number
        if key is not None and table == "" and header_line is None:
            return None
        return header_line


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
        where = f"{self.label} {key}" if key else self.label
        return CampaignError(self.file, what, line=line, key=where)


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
            raise ctx.error(f"expected {expected_words(key.type)}, got {type_word(value)}", name)
        if key.check is not None:
            problem = key.check(value)
            if problem:
                raise ctx.error(problem, name)
        out[name] = value
    return out


# Reusable checks -----------------------------------------------------------


def compile_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def regex_check(value: Any) -> str | None:
    patterns = value if isinstance(value, list) else [value]
    for pattern in patterns:
        if len(pattern) > 2000:
            return "regular expression is too long (over 2000 characters)"
        try:
            re.compile(pattern)
        except re.error as exc:
            return f"invalid regular expression {pattern!r}: {exc}"
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
