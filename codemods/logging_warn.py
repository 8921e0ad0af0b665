"""Replace the deprecated ``warn`` logging API with ``warning``.

``logging.warn()`` and ``Logger.warn()`` have been deprecated aliases of ``warning()``
since Python 3.3 and emit a ``DeprecationWarning`` (an error under ``-W error``).
``logging.warn`` is removed in Python 3.13. This codemod rewrites:

* ``logging.warn(...)`` (including ``import logging as lg; lg.warn(...)``), resolved
  through :class:`~libcst.metadata.QualifiedNameProvider` so that it is the real
  ``logging`` module;
* ``<receiver>.warn(...)`` when the receiver looks like a logger:

  - a name or attribute assigned from ``logging.getLogger(...)`` anywhere in the
    module (``audit = logging.getLogger("audit")``, ``self.audit = getLogger(...)``),
  - a direct ``logging.getLogger(...).warn(...)`` call,
  - a name or attribute whose last part is one of ``logger``, ``log``, ``LOGGER``,
    ``_logger``, ``_log`` (``log.warn``, ``self.logger.warn``, ``cls._log.warn``);

* ``from logging import warn`` + ``warn(...)`` becomes ``from logging import warning``
  + ``warning(...)``. The new import is scheduled with ``AddImportsVisitor`` and the
  old one with ``RemoveImportsVisitor``, which only drops it once nothing refers to it.
  With an alias (``from logging import warn as w``) only the imported name changes.

It deliberately leaves ``warnings.warn(...)`` and ``.warn(...)`` on arbitrary objects
alone. Known limits: ``getLogger`` assignments are matched by dotted name across the
whole module, not per scope; a logger stored under an unrelated name and obtained some
other way (passed in as an argument, ``logging.LoggerAdapter``, ``structlog``) is not
recognised; non-call references such as ``callback = logging.warn`` are not rewritten
(except for the bare ``from logging import warn`` name, which must be renamed
everywhere so the import can be switched); a bare ``warn`` reference in a scope where
``warning`` already means something else is left as is, so the old import is kept.
"""

from __future__ import annotations

from collections.abc import Collection

import libcst as cst
import libcst.matchers as m
from libcst.codemod import CodemodContext, VisitorBasedCodemodCommand
from libcst.codemod.visitors import AddImportsVisitor, RemoveImportsVisitor
from libcst.helpers import get_full_name_for_node
from libcst.metadata import QualifiedName, QualifiedNameProvider, QualifiedNameSource, ScopeProvider

#: Last component of a name/attribute that we treat as "this is a logger".
LOGGER_NAMES: frozenset[str] = frozenset({"logger", "log", "LOGGER", "_logger", "_log"})


def _qualified_as(*names: str) -> m.MatchMetadataIfTrue:
    """Match a node whose qualified names (via imports) include one of ``names``."""
    wanted = frozenset(names)

    def check(qualified: Collection[QualifiedName]) -> bool:
        return any(q.name in wanted and q.source is QualifiedNameSource.IMPORT for q in qualified)

    return m.MatchMetadataIfTrue(QualifiedNameProvider, check)


_GET_LOGGER_CALL = m.Call(func=_qualified_as("logging.getLogger"))

# ``x = logging.getLogger(...)``, ``self.x = getLogger(...)``, ``x: Logger = ...``.
_LOGGER_ASSIGNMENT = m.Assign(value=_GET_LOGGER_CALL) | m.AnnAssign(value=_GET_LOGGER_CALL)

_WARN_CALL = m.Call(func=m.Attribute(attr=m.Name("warn")))

# ``logging.warn(...)`` on the real logging module (any import alias).
_LOGGING_MODULE_WARN = m.Call(func=_qualified_as("logging.warn"))

# ``log.warn``, ``self.logger.warn``, ``LOGGER.warn`` ...
_CONVENTIONAL_NAME = m.Name(value=m.MatchIfTrue(lambda name: name in LOGGER_NAMES))
_CONVENTIONAL_LOGGER_WARN = m.Call(
    func=m.Attribute(value=_CONVENTIONAL_NAME | m.Attribute(attr=_CONVENTIONAL_NAME))
)

# ``logging.getLogger(__name__).warn(...)``
_GET_LOGGER_WARN = m.Call(func=m.Attribute(value=_GET_LOGGER_CALL))

# The bare name bound by ``from logging import warn`` (without ``as``).
_IMPORTED_WARN_NAME = m.Name("warn", metadata=_qualified_as("logging.warn"))


class ReplaceLoggingWarn(VisitorBasedCodemodCommand):
    """Rewrite ``logging.warn`` / ``logger.warn`` calls to ``warning``."""

    DESCRIPTION: str = (
        "Replace deprecated logging.warn()/logger.warn() with warning(), "
        "leaving warnings.warn() and unrelated .warn() calls alone."
    )

    METADATA_DEPENDENCIES = (QualifiedNameProvider, ScopeProvider)

    def __init__(self, context: CodemodContext) -> None:
        super().__init__(context)
        # Dotted names ("audit", "self.audit") assigned from logging.getLogger(...).
        self._logger_names: set[str] = set()
        self._renamed_bare_warn = False

    # -- discovery -----------------------------------------------------------------

    def visit_Module(self, node: cst.Module) -> bool:
        # Collect logger variables up front: they may be assigned after their use in
        # the source (a module-level logger defined below the functions using it).
        self._logger_names = set()
        self._renamed_bare_warn = False
        for assignment in m.findall(node, _LOGGER_ASSIGNMENT, metadata_resolver=self):
            for target in self._assignment_targets(assignment):
                name = get_full_name_for_node(target)
                if name is not None:
                    self._logger_names.add(name)
        return True

    @staticmethod
    def _assignment_targets(node: cst.CSTNode) -> list[cst.BaseExpression]:
        if m.matches(node, m.Assign()):
            return [t.target for t in cst.ensure_type(node, cst.Assign).targets]
        return [cst.ensure_type(node, cst.AnnAssign).target]

    def _is_logger_receiver(self, call: cst.Call) -> bool:
        if self.matches(call, _LOGGING_MODULE_WARN | _CONVENTIONAL_LOGGER_WARN | _GET_LOGGER_WARN):
            return True
        receiver = cst.ensure_type(call.func, cst.Attribute).value
        name = get_full_name_for_node(receiver)
        return name is not None and name in self._logger_names

    # -- rewriting -----------------------------------------------------------------

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        # Decide on the original node: metadata only exists for it.
        if not self.matches(original_node, _WARN_CALL) or not self._is_logger_receiver(
            original_node
        ):
            return updated_node
        func = cst.ensure_type(updated_node.func, cst.Attribute)
        return updated_node.with_changes(
            func=func.with_changes(attr=func.attr.with_changes(value="warning"))
        )

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.Name:
        """Rename references to a bare ``warn`` imported via ``from logging import warn``."""
        if not self.matches(original_node, _IMPORTED_WARN_NAME):
            return updated_node
        scope = self.get_metadata(ScopeProvider, original_node, None)
        if scope is not None and "warning" in scope:
            bound_to = scope.get_qualified_names_for("warning")
            if any(q.name != "logging.warning" for q in bound_to):
                # ``warning`` means something else here; renaming would change behaviour.
                return updated_node
        self._renamed_bare_warn = True
        return updated_node.with_changes(value="warning")

    @m.call_if_inside(m.ImportFrom(module=m.Name("logging"), relative=[]))
    @m.leave(m.ImportAlias(name=m.Name("warn"), asname=m.AsName()))
    def rename_aliased_import(
        self, original_node: cst.ImportAlias, updated_node: cst.ImportAlias
    ) -> cst.ImportAlias:
        """``from logging import warn as w`` -> ``from logging import warning as w``.

        The local name ``w`` stays, only what it is bound to changes. The un-aliased
        form is handled through Add/RemoveImportsVisitor in :meth:`leave_Module`.
        """
        return updated_node.with_changes(name=updated_node.name.with_changes(value="warning"))

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        if self._renamed_bare_warn:
            AddImportsVisitor.add_needed_import(self.context, "logging", "warning")
            # Only removed if no reference to the old name survived the rename.
            RemoveImportsVisitor.remove_unused_import(self.context, "logging", "warn")
        return updated_node
