"""Replace ``datetime.utcnow()`` / ``utcfromtimestamp()`` with timezone-aware calls.

``datetime.datetime.utcnow()`` and ``datetime.datetime.utcfromtimestamp()`` are
deprecated since Python 3.12 because they return *naive* datetimes that silently mean
UTC. The recommended replacements are ``now(timezone.utc)`` and
``fromtimestamp(ts, tz=timezone.utc)``. This codemod rewrites:

* ``import datetime`` (any alias ``dt``)::

      datetime.datetime.utcnow()            -> datetime.datetime.now(datetime.timezone.utc)
      dt.datetime.utcfromtimestamp(ts)      -> dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc)

* ``from datetime import datetime`` (any alias)::

      datetime.utcnow()                     -> datetime.now(timezone.utc)
      datetime.utcfromtimestamp(ts)         -> datetime.fromtimestamp(ts, tz=timezone.utc)

  and ``from datetime import timezone`` is scheduled through ``AddImportsVisitor``
  (a no-op when it is already imported). If ``timezone`` already means something
  else where the call is (``from pytz import timezone``, a parameter named
  ``timezone``), the import is added as ``from datetime import timezone as
  dt_timezone`` and that name is used instead.

What ``datetime`` refers to is resolved with
:class:`~libcst.metadata.QualifiedNameProvider`, so an unrelated ``utcnow()`` (a
function of your own, ``arrow.utcnow()``, ``pendulum``...) is untouched.

Import handling: the rewrite only *adds* a reference to ``timezone``; it never removes
the last use of an import (``datetime`` is still used by the rewritten call), so there is
nothing for ``RemoveImportsVisitor`` to clean up here. See :mod:`codemods.rename_call`
for a codemod that does drop imports that become unused.

Behavioural note for reviewers: the result is an *aware* datetime. Code that compares
it with naive datetimes or stores it in a naive database column may need follow-up
changes; the codemod cannot see that. Non-call references such as
``default=datetime.utcnow`` are left unchanged (they would need a ``lambda``).
"""

from __future__ import annotations

from collections.abc import Collection

import libcst as cst
import libcst.matchers as m
from libcst.codemod import CodemodContext, VisitorBasedCodemodCommand
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import QualifiedName, QualifiedNameProvider, QualifiedNameSource, ScopeProvider

#: Deprecated classmethod -> its timezone-aware replacement.
_REPLACEMENTS: dict[str, str] = {"utcnow": "now", "utcfromtimestamp": "fromtimestamp"}

_TIGHT_EQUAL = cst.AssignEqual(
    whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")
)

#: Local name used for ``datetime.timezone`` when ``timezone`` is already taken.
FALLBACK_TIMEZONE_NAME = "dt_timezone"


def _qualified_as(name: str) -> m.MatchMetadataIfTrue:
    def check(qualified: Collection[QualifiedName]) -> bool:
        return any(q.name == name and q.source is QualifiedNameSource.IMPORT for q in qualified)

    return m.MatchMetadataIfTrue(QualifiedNameProvider, check)


# ``<module datetime>.datetime.utcnow`` -- the receiver spells out the module.
_VIA_MODULE = m.Attribute(
    value=m.Attribute(value=_qualified_as("datetime"), attr=m.Name("datetime"))
)
# ``<class datetime>.utcnow`` -- the class itself was imported (``from datetime import ...``).
_VIA_CLASS = m.Attribute(value=m.Name(metadata=_qualified_as("datetime.datetime")))

_UTCNOW_CALL = m.Call(
    func=m.Attribute(attr=m.Name("utcnow"), metadata=_qualified_as("datetime.datetime.utcnow")),
    args=[],
)
# ``utcfromtimestamp(ts)`` takes exactly one positional argument.
_UTCFROMTIMESTAMP_CALL = m.Call(
    func=m.Attribute(
        attr=m.Name("utcfromtimestamp"),
        metadata=_qualified_as("datetime.datetime.utcfromtimestamp"),
    ),
    args=[m.Arg(keyword=None, star="")],
)


class ReplaceUtcnow(VisitorBasedCodemodCommand):
    """Rewrite naive ``utcnow()``/``utcfromtimestamp()`` to timezone-aware equivalents."""

    DESCRIPTION: str = (
        "Replace deprecated datetime.utcnow()/utcfromtimestamp() with "
        "now(timezone.utc)/fromtimestamp(ts, tz=timezone.utc), adding the timezone import."
    )

    METADATA_DEPENDENCIES = (QualifiedNameProvider, ScopeProvider)

    def __init__(self, context: CodemodContext) -> None:
        super().__init__(context)
        # Local names of ``datetime.timezone`` already scheduled, so each import is added once.
        self._scheduled_imports: set[str] = set()

    def visit_Module(self, node: cst.Module) -> bool:
        self._scheduled_imports = set()
        return True

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        # Matching happens on ``original_node``: metadata is only computed for it.
        if not self.matches(original_node, _UTCNOW_CALL | _UTCFROMTIMESTAMP_CALL):
            return updated_node
        original_func = cst.ensure_type(original_node.func, cst.Attribute)

        utc: cst.BaseExpression
        if self.matches(original_func, _VIA_MODULE):
            # Reuse however the module is spelled here (``datetime``, ``dt``...).
            module_expr = cst.ensure_type(original_func.value, cst.Attribute).value
            utc = cst.Attribute(
                value=cst.Attribute(value=module_expr.deep_clone(), attr=cst.Name("timezone")),
                attr=cst.Name("utc"),
            )
        elif self.matches(original_func, _VIA_CLASS):
            tz_name = self._timezone_name(original_node)
            if tz_name is None:
                return updated_node
            utc = cst.Attribute(value=cst.Name(tz_name), attr=cst.Name("utc"))
        else:
            # Some other spelling we cannot safely reproduce; leave it alone.
            return updated_node

        func = cst.ensure_type(updated_node.func, cst.Attribute)
        new_func = func.with_changes(
            attr=func.attr.with_changes(value=_REPLACEMENTS[func.attr.value])
        )
        if self.matches(original_node, _UTCNOW_CALL):
            return updated_node.with_changes(func=new_func, args=[cst.Arg(utc)])
        return updated_node.with_changes(
            func=new_func,
            args=self._append_tz_arg(
                updated_node, cst.Arg(utc, keyword=cst.Name("tz"), equal=_TIGHT_EQUAL)
            ),
        )

    @staticmethod
    def _append_tz_arg(call: cst.Call, tz_arg: cst.Arg) -> list[cst.Arg]:
        """Append ``tz=...`` after the single timestamp argument, keeping its layout.

        A trailing comma (and any comment after it) moves to the new last argument; in a
        multi-line call the new argument goes on its own line with the same indentation.
        """
        timestamp = call.args[0]
        if m.matches(timestamp, m.Arg(comma=m.Comma())):
            separator = (
                call.whitespace_before_args.deep_clone()
                if m.matches(call.whitespace_before_args, m.ParenthesizedWhitespace())
                else cst.SimpleWhitespace(" ")
            )
            return [
                timestamp.with_changes(comma=cst.Comma(whitespace_after=separator)),
                tz_arg.with_changes(comma=timestamp.comma),
            ]
        return [
            timestamp.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))),
            tz_arg,
        ]

    def _timezone_name(self, call: cst.Call) -> str | None:
        """Pick (and schedule the import of) a local name for ``datetime.timezone``."""
        scope = self.get_metadata(ScopeProvider, call, None)
        for candidate in ("timezone", FALLBACK_TIMEZONE_NAME):
            if scope is not None and candidate in scope:
                bound_to = scope.get_qualified_names_for(candidate)
                if any(q.name != "datetime.timezone" for q in bound_to):
                    continue  # Taken by something else in this scope.
                # Already ``datetime.timezone`` here; the add below is then a no-op.
            if candidate not in self._scheduled_imports:
                self._scheduled_imports.add(candidate)
                asname = None if candidate == "timezone" else candidate
                AddImportsVisitor.add_needed_import(self.context, "datetime", "timezone", asname)
            return candidate
        self.warn(
            "left datetime.utcnow()/utcfromtimestamp() unchanged: both 'timezone' and "
            f"'{FALLBACK_TIMEZONE_NAME}' are already bound to something else"
        )
        return None
