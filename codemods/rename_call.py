"""Rename calls of one fully qualified function to another, fixing up the imports.

The everyday fleet-wide refactoring: a shared library renames or moves a function
(``mypkg.util.old_func`` -> ``mypkg.util.new_func`` or ``mypkg.helpers.new_func``) and
every consumer must follow. Parameterised with ``old`` and ``new`` fully qualified
dotted names; the last component is the function, everything before it the module
(or class) it lives in.

What it rewrites, with callees resolved by
:class:`~libcst.metadata.QualifiedNameProvider` (so a local ``old_func`` of the same
name is untouched):

* ``from mypkg.util import old_func`` + ``old_func(...)`` (also ``as alias``) ->
  ``new_func(...)``; ``from <new module> import new_func`` is scheduled with
  ``AddImportsVisitor`` and the old import with ``RemoveImportsVisitor``, which drops
  it only if nothing else still uses it.
* ``mypkg.util.old_func(...)``, ``util.old_func(...)``, ``u.old_func(...)``:

  - same module/class on both sides: only the attribute changes (``u.new_func(...)``),
    imports stay as they are;
  - different module: the callee becomes the fully spelled ``new`` name
    (``mypkg.helpers.new_func(...)``), ``import mypkg.helpers`` is added and the import
    that provided the old receiver is removed if it became unused.

Known limits: when the parent changes it must be importable as a module (renaming
``a.Klass.method`` to ``b.Klass.method`` is not supported; within the same class it is);
a function-local ``from ... import`` is replaced by a module-level import; only *calls*
are rewritten (``callbacks = [old_func]`` keeps the old name, and its import is then
kept too); relative imports (``from .util import old_func``) and ``import *`` are not
resolved; if the new local name is already bound to something else where the call is,
the call is left unchanged and a warning recorded.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Collection

import libcst as cst
import libcst.matchers as m
from libcst.codemod import CodemodContext, VisitorBasedCodemodCommand
from libcst.codemod.visitors import AddImportsVisitor, RemoveImportsVisitor
from libcst.metadata import QualifiedName, QualifiedNameProvider, QualifiedNameSource, ScopeProvider

_DOTTED_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


def _is_dotted_name(node: cst.CSTNode) -> bool:
    """``f``, ``a.f``, ``a.b.f``; not ``f()()`` or ``x[0].f``.

    Only such callees can be rewritten by swapping names, and only they can refer to an
    imported object (``mypkg.util.Klass().method`` also resolves to a qualified name).
    """
    while m.matches(node, m.Attribute()):
        node = cst.ensure_type(node, cst.Attribute).value
    return m.matches(node, m.Name())


def _split(dotted: str) -> tuple[str, str]:
    module, _, name = dotted.rpartition(".")
    return module, name


class RenameCall(VisitorBasedCodemodCommand):
    """Rename calls of ``old`` (fully qualified) to ``new`` and update imports."""

    DESCRIPTION: str = (
        "Rename calls of a fully qualified function (old) to another (new), "
        "updating imports via AddImportsVisitor/RemoveImportsVisitor."
    )

    METADATA_DEPENDENCIES = (QualifiedNameProvider, ScopeProvider)

    @staticmethod
    def add_args(arg_parser: argparse.ArgumentParser) -> None:
        """Register ``--old``/``--new`` so ``python -m libcst.tool codemod`` can run it."""
        arg_parser.add_argument(
            "--old",
            dest="old",
            required=True,
            help="Fully qualified name of the function to rename, e.g. mypkg.util.old_func",
        )
        arg_parser.add_argument(
            "--new",
            dest="new",
            required=True,
            help="Fully qualified replacement name, e.g. mypkg.util.new_func",
        )

    #: Alias of :meth:`add_args` (the name libcst's CLI looks up).
    add_args_to_parser = add_args

    def __init__(self, context: CodemodContext, old: str, new: str) -> None:
        super().__init__(context)
        for label, value in (("old", old), ("new", new)):
            if not _DOTTED_NAME.match(value):
                raise ValueError(
                    f"RenameCall: {label}={value!r} must be a fully qualified dotted name "
                    "such as 'mypkg.util.old_func'"
                )
        self.old = old
        self.new = new
        self._old_module, self._old_name = _split(old)
        self._new_module, self._new_name = _split(new)

        def is_old(qualified: Collection[QualifiedName]) -> bool:
            return any(q.name == old and q.source is QualifiedNameSource.IMPORT for q in qualified)

        self._old_call = m.Call(func=m.MatchMetadataIfTrue(QualifiedNameProvider, is_old))

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        # Decide on the original node: metadata only exists for it.
        if not self.matches(original_node, self._old_call) or not _is_dotted_name(
            original_node.func
        ):
            return updated_node
        if self.matches(original_node.func, m.Name()):
            return self._rename_bare(original_node, updated_node)
        return self._rename_attribute(original_node, updated_node)

    def _rename_bare(self, original_node: cst.Call, updated_node: cst.Call) -> cst.Call:
        """``old_func(...)`` bound by ``from mypkg.util import old_func [as x]``."""
        local = cst.ensure_type(original_node.func, cst.Name).value
        if not self._name_free_for(original_node, self._new_name, self.new):
            return updated_node
        AddImportsVisitor.add_needed_import(self.context, self._new_module, self._new_name)
        RemoveImportsVisitor.remove_unused_import(
            self.context,
            self._old_module,
            self._old_name,
            asname=None if local == self._old_name else local,
        )
        func = cst.ensure_type(updated_node.func, cst.Name)
        return updated_node.with_changes(func=func.with_changes(value=self._new_name))

    def _rename_attribute(self, original_node: cst.Call, updated_node: cst.Call) -> cst.Call:
        """``<receiver>.old_func(...)`` where the receiver is a module or class."""
        func = cst.ensure_type(updated_node.func, cst.Attribute)
        if self._new_module == self._old_module:
            return updated_node.with_changes(
                func=func.with_changes(attr=func.attr.with_changes(value=self._new_name))
            )
        top = self._new_module.split(".")[0]
        if not self._name_free_for(original_node, top, top):
            return updated_node
        AddImportsVisitor.add_needed_import(self.context, self._new_module)
        # Drop whatever import provided the old receiver, if nothing else needs it.
        RemoveImportsVisitor.remove_unused_import_by_node(self.context, original_node.func)
        new_func = cst.ensure_type(cst.parse_expression(self.new), cst.Attribute)
        return updated_node.with_changes(func=new_func)

    def _name_free_for(self, call: cst.Call, name: str, qualified: str) -> bool:
        """True if ``name`` is unbound at ``call`` or already imported as ``qualified``."""
        scope = self.get_metadata(ScopeProvider, call, None)
        if scope is None or name not in scope:
            return True
        bound_to = scope.get_qualified_names_for(name)
        if all(q.name == qualified and q.source is QualifiedNameSource.IMPORT for q in bound_to):
            return True
        self.warn(
            f"left a call of {self.old} unchanged: {name!r} already refers to something else "
            "in that scope"
        )
        return False
