"""Rename a method call on a named receiver, by syntax alone: ``logging.warn(`` -> ``logging.warning(``.

The cheap sibling of :mod:`codemods.logging_warn`: no scope or qualified-name
analysis, so it costs little more than a parse, and it changes exactly what a
careful ``sed`` would (``<receiver>.<old>(`` calls), never strings or comments.
Use it when the receiver's name is unambiguous in your fleet; use
``ReplaceLoggingWarn`` when aliases and logger objects matter.

Campaign use::

    [[change]]
    kind = "libcst"
    codemod = "codemods.rename_method.RenameMethodCall"
    args = {receiver = "logging", old = "warn", new = "warning"}
    grep = 'logging\\.warn\\('
"""

from __future__ import annotations

import argparse

import libcst as cst
import libcst.matchers as m
from libcst.codemod import CodemodContext, VisitorBasedCodemodCommand


class RenameMethodCall(VisitorBasedCodemodCommand):
    DESCRIPTION: str = "Rename <receiver>.<old>(...) calls to <receiver>.<new>(...), by syntax."

    @staticmethod
    def add_args(arg_parser: argparse.ArgumentParser) -> None:
        arg_parser.add_argument("--receiver", required=True, help="dotted receiver, e.g. logging")
        arg_parser.add_argument("--old", required=True, help="method name to replace")
        arg_parser.add_argument("--new", required=True, help="method name to use instead")

    def __init__(self, context: CodemodContext, receiver: str, old: str, new: str) -> None:
        super().__init__(context)
        for label, value in (("receiver", receiver), ("old", old), ("new", new)):
            if not all(part.isidentifier() for part in value.split(".")):
                raise ValueError(f"RenameMethodCall: {label}={value!r} is not a (dotted) name")
        if "." in old or "." in new:
            raise ValueError("RenameMethodCall: old and new are method names, without dots")
        self.receiver, self.old, self.new = receiver, old, new
        self.receiver_matcher = self._dotted(receiver)

    @staticmethod
    def _dotted(name: str) -> m.Name | m.Attribute:
        *parents, last = name.split(".")
        if not parents:
            return m.Name(last)
        return m.Attribute(value=RenameMethodCall._dotted(".".join(parents)), attr=m.Name(last))

    def transform_module(self, tree: cst.Module) -> cst.Module:
        # Needs no metadata: skip the framework's metadata wrapper (a deep copy of the tree)
        # and its matcher-dispatching visitor, which cost several times the parse itself.
        return tree.visit(_Renamer(self))

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        func = updated_node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == self.old):
            return updated_node  # the cheap test first: most calls are something else
        if not m.matches(func.value, self.receiver_matcher):
            return updated_node
        return updated_node.with_changes(
            func=func.with_changes(attr=func.attr.with_changes(value=self.new))
        )


class _Renamer(cst.CSTTransformer):
    """A plain transformer running RenameMethodCall.leave_Call on every call."""

    def __init__(self, command: RenameMethodCall) -> None:
        super().__init__()
        self.command = command

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        return self.command.leave_Call(original_node, updated_node)
