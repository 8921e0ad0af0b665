"""Tests for codemods.rename_call.RenameCall."""

from __future__ import annotations

import argparse
import inspect
from typing import TypedDict

import libcst as cst
from libcst.codemod import CodemodContext, CodemodTest

from codemods.rename_call import RenameCall


class Names(TypedDict):
    old: str
    new: str


SAME_MODULE: Names = {"old": "mypkg.util.old_func", "new": "mypkg.util.new_func"}
MOVED: Names = {"old": "mypkg.util.old_func", "new": "mypkg.helpers.new_func"}


class TestRenameCall(CodemodTest):
    TRANSFORM = RenameCall

    def test_from_import_same_module(self) -> None:
        before = """
            from mypkg.util import old_func, other

            result = old_func(1, key="v")  # comment stays
            other()
        """
        after = """
            from mypkg.util import new_func, other

            result = new_func(1, key="v")  # comment stays
            other()
        """
        self.assertCodemod(before, after, **SAME_MODULE)

    def test_from_import_with_alias(self) -> None:
        before = """
            from mypkg.util import old_func as of

            of()
        """
        after = """
            from mypkg.util import new_func

            new_func()
        """
        self.assertCodemod(before, after, **SAME_MODULE)

    def test_attribute_same_module_keeps_imports(self) -> None:
        before = """
            import mypkg.util
            import mypkg.util as u
            from mypkg import util

            mypkg.util.old_func()
            u.old_func()
            util.old_func(
                1,  # arg
            )
        """
        after = """
            import mypkg.util
            import mypkg.util as u
            from mypkg import util

            mypkg.util.new_func()
            u.new_func()
            util.new_func(
                1,  # arg
            )
        """
        self.assertCodemod(before, after, **SAME_MODULE)

    def test_moved_from_import(self) -> None:
        before = """
            import os
            from mypkg.util import old_func

            old_func(os.sep)
        """
        after = """
            import os
            from mypkg.helpers import new_func

            new_func(os.sep)
        """
        self.assertCodemod(before, after, **MOVED)

    def test_moved_attribute_swaps_module_import(self) -> None:
        before = """
            import mypkg.util

            mypkg.util.old_func()
        """
        after = """
            import mypkg.helpers

            mypkg.helpers.new_func()
        """
        self.assertCodemod(before, after, **MOVED)

    def test_moved_keeps_imports_still_in_use(self) -> None:
        before = """
            import mypkg.util
            from mypkg.util import old_func

            mypkg.util.old_func()
            mypkg.util.keep_me()
            callbacks = [old_func]  # not a call: keeps the old name and import
            old_func()
        """
        after = """
            import mypkg.util
            from mypkg.util import old_func
            import mypkg.helpers
            from mypkg.helpers import new_func

            mypkg.helpers.new_func()
            mypkg.util.keep_me()
            callbacks = [old_func]  # not a call: keeps the old name and import
            new_func()
        """
        self.assertCodemod(before, after, **MOVED)

    def test_unrelated_calls_are_untouched(self) -> None:
        code = """
            from otherpkg import old_func
            import mypkg.util

            def new_func():
                pass

            old_func()
            mypkg.util.other_func()
            mypkg.util.Klass().old_func()
            thing.old_func()
        """
        self.assertCodemod(code, code, **SAME_MODULE)

    def test_local_function_with_same_name_is_untouched(self) -> None:
        code = """
            def old_func():
                pass

            old_func()
        """
        self.assertCodemod(code, code, **SAME_MODULE)

    def test_new_name_conflict_warns_and_skips(self) -> None:
        code = """
            from mypkg.util import old_func

            def f(new_func):
                return old_func(new_func)
        """
        self.assertCodemod(
            code,
            code,
            expected_warnings=[
                "left a call of mypkg.util.old_func unchanged: 'new_func' already refers "
                "to something else in that scope"
            ],
            **SAME_MODULE,
        )

    def test_method_on_imported_class(self) -> None:
        before = """
            from mypkg.util import Client

            Client.old_method()
        """
        after = """
            from mypkg.util import Client

            Client.new_method()
        """
        self.assertCodemod(
            before, after, old="mypkg.util.Client.old_method", new="mypkg.util.Client.new_method"
        )

    def test_untouched_file_is_byte_identical(self) -> None:
        source = "import mypkg.util\r\n\r\nmypkg.util.other( 1 ,2 )   # odd\r\n"
        codemod = RenameCall(CodemodContext(), **SAME_MODULE)
        self.assertEqual(codemod.transform_module(cst.parse_module(source)).code, source)

    def test_rejects_names_that_are_not_fully_qualified(self) -> None:
        for bad in ("old_func", "mypkg.", "mypkg util.f", ""):
            with self.assertRaises(ValueError):
                RenameCall(CodemodContext(), old=bad, new="mypkg.util.new_func")

    def test_constructor_signature(self) -> None:
        params = list(inspect.signature(RenameCall.__init__).parameters)
        self.assertEqual(params, ["self", "context", "old", "new"])

    def test_add_args(self) -> None:
        for register in (RenameCall.add_args, RenameCall.add_args_to_parser):
            parser = argparse.ArgumentParser()
            register(parser)
            args = parser.parse_args(["--old", "a.b.c", "--new", "a.b.d"])
            self.assertEqual((args.old, args.new), ("a.b.c", "a.b.d"))
