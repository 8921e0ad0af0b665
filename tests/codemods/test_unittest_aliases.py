"""Tests for codemods.unittest_aliases.ReplaceUnittestAliases."""

from __future__ import annotations

import libcst as cst
from libcst.codemod import CodemodContext, CodemodTest

from codemods.unittest_aliases import ALIASES, ReplaceUnittestAliases


class TestReplaceUnittestAliases(CodemodTest):
    TRANSFORM = ReplaceUnittestAliases

    def test_every_alias_on_self(self) -> None:
        before = "\n".join(f"self.{old}(a, b)" for old in ALIASES)
        after = "\n".join(f"self.{new}(a, b)" for new in ALIASES.values())
        self.assertCodemod(before, after)

    def test_common_aliases_in_a_test_case(self) -> None:
        before = """
            import unittest

            class T(unittest.TestCase):
                def test_it(self) -> None:
                    self.assertEquals(1, 1)  # keep this comment
                    self.failUnless(True)
                    self.assert_(ok)
                    with self.assertRaisesRegexp(ValueError, "bad"):
                        parse("x")
                    self.assertRegexpMatches(
                        text,
                        r"^a+$",  # pattern
                    )

                @classmethod
                def setUpClass(cls) -> None:
                    cls.failIfEqual(1, 2)
        """
        after = """
            import unittest

            class T(unittest.TestCase):
                def test_it(self) -> None:
                    self.assertEqual(1, 1)  # keep this comment
                    self.assertTrue(True)
                    self.assertTrue(ok)
                    with self.assertRaisesRegex(ValueError, "bad"):
                        parse("x")
                    self.assertRegex(
                        text,
                        r"^a+$",  # pattern
                    )

                @classmethod
                def setUpClass(cls) -> None:
                    cls.assertNotEqual(1, 2)
        """
        self.assertCodemod(before, after)

    def test_nested_calls_are_all_renamed(self) -> None:
        self.assertCodemod(
            "self.assertEquals(self.failUnlessEqual(a, b), None)",
            "self.assertEqual(self.assertEqual(a, b), None)",
        )

    def test_non_self_receivers_are_untouched(self) -> None:
        code = """
            case.assertEquals(1, 1)
            helper.failIf(x)
            assertEquals(1, 1)
            self.case.assertEquals(1, 1)
        """
        self.assertCodemod(code, code)

    def test_assert_dict_contains_subset_is_untouched(self) -> None:
        code = "self.assertDictContainsSubset({'a': 1}, d)\n"
        self.assertCodemod(code, code)

    def test_current_names_and_non_calls_are_untouched(self) -> None:
        code = """
            self.assertEqual(1, 1)
            check = self.assertEquals
            self.assertEqualsSomething(1)
        """
        self.assertCodemod(code, code)

    def test_locally_defined_alias_is_respected(self) -> None:
        code = """
            class Base:
                def assertEquals(self, a, b):
                    return custom_compare(a, b)

            class T(Base):
                def test(self):
                    self.assertEquals(1, 1)
                    self.failUnless(True)
        """
        after = code.replace("self.failUnless(", "self.assertTrue(")
        self.assertCodemod(code, after)

    def test_untouched_file_is_byte_identical(self) -> None:
        source = (
            "# -*- coding: utf-8 -*-\r\n"
            "class T:\r\n\tdef t(self):\r\n\t\tcase.assertEquals( 1,1 )  # x\r\n"
        )
        result = ReplaceUnittestAliases(CodemodContext()).transform_module(cst.parse_module(source))
        self.assertEqual(result.code, source)

    def test_changed_file_keeps_odd_formatting(self) -> None:
        source = "class T:\r\n\tdef t(self):\r\n\t\tself.assertEquals( 1,1 )  # x\r\n"
        result = ReplaceUnittestAliases(CodemodContext()).transform_module(cst.parse_module(source))
        self.assertEqual(result.code, source.replace("assertEquals", "assertEqual"))
