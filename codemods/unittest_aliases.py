"""Rename deprecated ``unittest.TestCase`` method aliases to their current names.

``assertEquals``, ``failUnless``, ``assertRegexpMatches`` and the rest of the old
aliases were deprecated in Python 3.2 and removed in Python 3.12, so test suites that
still use them fail with ``AttributeError`` on a modern interpreter. This codemod
rewrites ``self.<alias>(...)`` and ``cls.<alias>(...)`` calls to the current method
name and leaves everything else byte-for-byte untouched.

Deliberately out of scope:

* ``assertDictContainsSubset`` has no drop-in replacement, so it is left alone.
* Calls on anything other than ``self``/``cls`` (``case.assertEquals(...)``,
  ``helper.failIf(...)``) are left alone: the receiver may not be a ``TestCase``.
* If a class in the module *defines* a method with an alias name (a home-grown
  ``def assertEquals(...)`` helper), calls to that name are left alone in the whole
  module, because renaming them would bypass the custom implementation.
"""

from __future__ import annotations

from collections.abc import Mapping

import libcst as cst
import libcst.matchers as m
from libcst.codemod import CodemodContext, VisitorBasedCodemodCommand

#: Deprecated alias -> current ``unittest.TestCase`` method name.
ALIASES: Mapping[str, str] = {
    "assertEquals": "assertEqual",
    "assertNotEquals": "assertNotEqual",
    "assertAlmostEquals": "assertAlmostEqual",
    "assertNotAlmostEquals": "assertNotAlmostEqual",
    "assert_": "assertTrue",
    "failUnless": "assertTrue",
    "failIf": "assertFalse",
    "failUnlessEqual": "assertEqual",
    "failIfEqual": "assertNotEqual",
    "failUnlessAlmostEqual": "assertAlmostEqual",
    "failIfAlmostEqual": "assertNotAlmostEqual",
    "failUnlessRaises": "assertRaises",
    "assertRegexpMatches": "assertRegex",
    "assertNotRegexpMatches": "assertNotRegex",
    "assertRaisesRegexp": "assertRaisesRegex",
}

_ALIAS_CALL = m.Call(
    func=m.Attribute(
        value=m.Name("self") | m.Name("cls"),
        attr=m.Name(value=m.MatchIfTrue(lambda name: name in ALIASES)),
    )
)

# A method definition whose name is one of the aliases (a custom helper).
_ALIAS_DEF = m.FunctionDef(name=m.Name(value=m.MatchIfTrue(lambda name: name in ALIASES)))


class ReplaceUnittestAliases(VisitorBasedCodemodCommand):
    """Rewrite ``self.assertEquals(...)`` and friends to the non-deprecated names."""

    DESCRIPTION: str = (
        "Rename deprecated unittest aliases (assertEquals, failUnless, assertRegexpMatches, ...) "
        "called on self/cls to their current names."
    )

    def __init__(self, context: CodemodContext) -> None:
        super().__init__(context)
        self._locally_defined: set[str] = set()

    def visit_Module(self, node: cst.Module) -> bool:
        self._locally_defined = set()
        for found in m.findall(node, _ALIAS_DEF):
            self._locally_defined.add(cst.ensure_type(found, cst.FunctionDef).name.value)
        return True

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        if not m.matches(updated_node, _ALIAS_CALL):
            return updated_node
        func = cst.ensure_type(updated_node.func, cst.Attribute)
        old_name = func.attr.value
        if old_name in self._locally_defined:
            return updated_node
        return updated_node.with_changes(
            func=func.with_changes(attr=func.attr.with_changes(value=ALIASES[old_name]))
        )
