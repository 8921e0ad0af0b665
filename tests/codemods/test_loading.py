"""The codemods load the two ways a campaign can name them, and behave the same."""

from __future__ import annotations

import importlib
import sys
import types
import unittest
from pathlib import Path

import libcst as cst
from libcst.codemod import CodemodContext, VisitorBasedCodemodCommand

import codemods

CODEMODS: dict[str, str] = {
    "logging_warn": "ReplaceLoggingWarn",
    "unittest_aliases": "ReplaceUnittestAliases",
    "utcnow": "ReplaceUtcnow",
    "rename_call": "RenameCall",
}
ARGS: dict[str, dict[str, str]] = {"rename_call": {"old": "a.b.old", "new": "a.b.new"}}
SAMPLE = "import a.b\nimport logging\na.b.old(logging.warn('x'))\nself.assertEquals(1, 1)\n"


class TestLoading(unittest.TestCase):
    def test_dotted_path(self) -> None:
        for module_name, class_name in CODEMODS.items():
            with self.subTest(module_name):
                module = importlib.import_module(f"codemods.{module_name}")
                cls = getattr(module, class_name)
                self.assertTrue(issubclass(cls, VisitorBasedCodemodCommand))
                self.assertTrue(cls.DESCRIPTION.strip())
                self.assertTrue(module.__doc__)
                cls(CodemodContext(), **ARGS.get(module_name, {}))

    def test_file_and_class_executed_from_source(self) -> None:
        # ``codemod = "../codemods/x.py:Class"`` executes the file's source in a fresh
        # module, so the codemods must not rely on relative imports or package state.
        package_dir = Path(codemods.__file__).parent
        for module_name, class_name in CODEMODS.items():
            with self.subTest(module_name):
                path = package_dir / f"{module_name}.py"
                module = types.ModuleType(f"_fresh_{module_name}")
                module.__file__ = str(path)
                sys.modules[module.__name__] = module
                try:
                    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), vars(module))
                    fresh = getattr(module, class_name)
                    imported = getattr(
                        importlib.import_module(f"codemods.{module_name}"), class_name
                    )
                    args = ARGS.get(module_name, {})
                    tree = cst.parse_module(SAMPLE)
                    self.assertEqual(
                        fresh(CodemodContext(), **args).transform_module(tree).code,
                        imported(CodemodContext(), **args).transform_module(tree).code,
                    )
                finally:
                    del sys.modules[module.__name__]

    def test_instance_reused_for_a_second_module(self) -> None:
        from codemods.unittest_aliases import ReplaceUnittestAliases

        codemod = ReplaceUnittestAliases(CodemodContext())
        first = "class T:\n    def assertEquals(self): ...\n"
        codemod.transform_module(cst.parse_module(first))
        second = codemod.transform_module(cst.parse_module("self.assertEquals(1, 1)\n"))
        self.assertEqual(second.code, "self.assertEqual(1, 1)\n")
