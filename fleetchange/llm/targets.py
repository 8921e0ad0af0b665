"""The parts of a Python file a model edits, and splicing its answer back in.

A :class:`TargetSpec` picks functions or classes (``node``) whose name matches a
regular expression (``name``) and/or that refer to a dotted name (``calls``:
``optparse`` picks every function using ``optparse.OptionParser()``, also through
``from optparse import OptionParser``).  Only the outermost matches are targets:
a matching function nested inside another matching one goes to the model with
its parent.

The model sees each target's own source, dedented, without the blank lines and
comments above it.  :func:`splice` parses the answer with libcst, checks it is
exactly one definition of the same kind and name, and swaps it for the original
node by identity.  libcst reproduces every other byte of the file as it was, and
the leading comments and blank lines of the target are kept; a method's new body
is re-indented to its class.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import libcst as cst
from libcst.helpers import get_full_name_for_node
from libcst.metadata import MetadataWrapper, PositionProvider, QualifiedNameProvider

NODE_KINDS = ("function", "class")
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")

Definition = cst.FunctionDef | cst.ClassDef


class TargetError(Exception):
    """The answer cannot replace the target; the message is meant for the model too."""


@dataclass(frozen=True)
class TargetSpec:
    node: str  # "function" | "class"
    name: str | None = None  # regex searched in the def/class name
    calls: str | None = None  # dotted name (or a prefix of one), else a regex

    @classmethod
    def from_options(cls, data: Mapping[str, Any]) -> TargetSpec:
        return cls(node=data["node"], name=data.get("name"), calls=data.get("calls"))

    def describe(self) -> str:
        words = ["functions" if self.node == "function" else "classes"]
        if self.name:
            words.append(f"named like /{self.name}/")
        if self.calls:
            words.append(f"that use {self.calls}")
        return " ".join(words)

    def matches_name(self, name: str) -> bool:
        return self.name is None or re.search(self.name, name) is not None

    def matches_references(self, names: set[str]) -> bool:
        if self.calls is None:
            return True
        if _DOTTED.fullmatch(self.calls):
            prefix = self.calls + "."
            return any(n == self.calls or n.startswith(prefix) for n in names)
        pattern = re.compile(self.calls)
        return any(pattern.search(n) for n in names)


@dataclass(frozen=True)
class Target:
    """One function or class to hand to the model (plain data: picklable, comparable)."""

    kind: str  # "function" | "class"
    qualname: str  # "Outer.method"
    name: str
    line: int  # where its ``def``/``class`` keyword is (decorators come before)
    column: int
    code: str  # its source, dedented, without the blank lines and comments above it


def _kind(node: cst.CSTNode) -> str | None:
    if isinstance(node, cst.FunctionDef):
        return "function"
    if isinstance(node, cst.ClassDef):
        return "class"
    return None


@dataclass
class _Record:
    node: Definition
    kind: str
    qualname: str
    parent: int | None  # index of the enclosing record of the wanted kind
    position: tuple[int, int]
    names: set[str]
    matched: bool = False


class _Collector(cst.CSTVisitor):
    METADATA_DEPENDENCIES = (PositionProvider, QualifiedNameProvider)

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.scope: list[str] = []
        self.records: list[_Record] = []
        self.open: list[int] = []  # records being visited, innermost last

    def _enter(self, node: Definition) -> None:
        self.scope.append(node.name.value)
        if _kind(node) == self.kind:
            parent = self.open[-1] if self.open else None
            start = self.get_metadata(PositionProvider, node).start
            self.records.append(
                _Record(
                    node, self.kind, ".".join(self.scope), parent, (start.line, start.column), set()
                )
            )
            self.open.append(len(self.records) - 1)

    def _leave(self, node: Definition) -> None:
        self.scope.pop()
        if _kind(node) == self.kind:
            self.open.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._enter(node)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._leave(original_node)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._enter(node)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._leave(original_node)

    def _reference(self, node: cst.Name | cst.Attribute) -> None:
        if not self.open:
            return
        found = {q.name for q in self.get_metadata(QualifiedNameProvider, node, set())}
        full = get_full_name_for_node(node)
        if full:
            found.add(full)
        for index in self.open:
            self.records[index].names |= found

    def visit_Name(self, node: cst.Name) -> None:
        self._reference(node)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self._reference(node)


def _collect(module: cst.Module, kind: str) -> tuple[_Collector, MetadataWrapper]:
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    collector = _Collector(kind)
    wrapper.visit(collector)
    return collector, wrapper


def parse(source: str) -> cst.Module:
    """Parse Python source (raises :class:`libcst.ParserSyntaxError`)."""
    return cst.parse_module(source)


def node_code(module: cst.Module, node: Definition) -> str:
    return module.code_for_node(node.with_changes(leading_lines=()))


def find_targets(source: str, spec: TargetSpec) -> list[Target]:
    """The outermost definitions ``spec`` selects, in source order."""
    module = parse(source)
    collector, _ = _collect(module, spec.node)
    for record in collector.records:
        record.matched = spec.matches_name(record.node.name.value) and spec.matches_references(
            record.names
        )
    targets = []
    for record in collector.records:
        if not record.matched:
            continue
        ancestor, nested = record.parent, False
        while ancestor is not None:
            if collector.records[ancestor].matched:
                nested = True
                break
            ancestor = collector.records[ancestor].parent
        if nested:
            continue
        line, column = record.position
        targets.append(
            Target(
                kind=record.kind,
                qualname=record.qualname,
                name=record.node.name.value,
                line=line,
                column=column,
                code=node_code(module, record.node),
            )
        )
    return targets


class _Swap(cst.CSTTransformer):
    def __init__(self, old: Definition, new: Definition) -> None:
        super().__init__()
        self.old, self.new = old, new
        self.swapped = False

    def _swap(self, original: Definition, updated: Definition) -> Definition:
        if original is self.old:
            self.swapped = True
            return self.new
        return updated

    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef
    ) -> cst.FunctionDef | cst.ClassDef:
        return self._swap(original_node, updated_node)

    def leave_ClassDef(
        self, original_node: cst.ClassDef, updated_node: cst.ClassDef
    ) -> cst.FunctionDef | cst.ClassDef:
        return self._swap(original_node, updated_node)


def _locate(module: cst.Module, target: Target) -> Definition:
    collector, _ = _collect(module, target.kind)
    for record in collector.records:
        if record.qualname == target.qualname and record.position == (target.line, target.column):
            return record.node
    raise TargetError(f"{target.qualname} is no longer at line {target.line}")


def parse_replacement(
    text: str, target: Target, module: cst.Module
) -> tuple[Definition, list[cst.EmptyLine]]:
    """The answer as one definition of the target's kind and name, and the comment
    lines written above it (raises TargetError)."""
    what = "function (`def`)" if target.kind == "function" else "class"
    text = textwrap.dedent(text.replace("\r\n", "\n").replace("\r", "\n")).strip("\n")
    if not text.strip():
        raise TargetError(f"the answer is empty: expected the complete {what} {target.name}")
    text = (text + "\n").replace("\n", module.default_newline)
    try:
        parsed = cst.parse_module(text)
    except cst.ParserSyntaxError as exc:
        raise TargetError(
            f"the answer is not valid Python: line {exc.raw_line}, column {exc.raw_column}: "
            f"{exc.message}"
        ) from None
    expected = cst.FunctionDef if target.kind == "function" else cst.ClassDef
    body: Sequence[cst.CSTNode] = parsed.body
    if len(body) != 1 or not isinstance(body[0], expected):
        kinds = ", ".join(type(s).__name__ for s in body) or "nothing"
        raise TargetError(
            f"the answer must be exactly one {what} named {target.name} and nothing else "
            f"(no imports or other statements around it); got: {kinds}"
        )
    node = body[0]
    assert isinstance(node, cst.FunctionDef | cst.ClassDef)
    if node.name.value != target.name:
        raise TargetError(
            f"the answer defines {node.name.value}, but it must keep the name {target.name}"
        )
    comments = [line for line in (*parsed.header, *node.leading_lines) if line.comment is not None]
    return node, comments


def splice(source: str, target: Target, replacement: str) -> str:
    """``source`` with ``target`` replaced by the answer; every other byte is kept."""
    module = parse(source)
    old = _locate(module, target)
    new, comments = parse_replacement(replacement, target, module)
    new = new.with_changes(leading_lines=(*old.leading_lines, *comments))
    swap = _Swap(old, new)
    result = module.visit(swap)
    if not swap.swapped:  # pragma: no cover - _locate found it in this very tree
        raise TargetError(f"{target.qualname} could not be replaced")
    return result.code
