"""Codemods for the invalid-campaign corpus, named by file path (``files/codemod.py:Rename``)."""

from __future__ import annotations

from libcst.codemod import CodemodContext, VisitorBasedCodemodCommand


class Rename(VisitorBasedCodemodCommand):
    """Needs an ``old`` argument: a campaign that gives no ``args`` is rejected at load."""

    DESCRIPTION = "corpus codemod that requires an argument"

    def __init__(self, context: CodemodContext, old: str) -> None:
        super().__init__(context)
        self.old = old


class NotACodemod:
    """A class, but not a ``libcst.codemod.Codemod``."""
