from __future__ import annotations

import pytest
from libcst.codemod import CodemodContext, CodemodTest

from codemods.rename_method import RenameMethodCall


class TestRenameMethodCall(CodemodTest):
    TRANSFORM = RenameMethodCall

    def test_renames_only_calls_on_the_receiver(self) -> None:
        before = (
            "import logging\n"
            "logging.warn('x')  # logging.warn( in a comment stays\n"
            "log.warn('y')\n"
            "s = 'logging.warn(' \n"
            "warnings.warn('z')\n"
            "f = logging.warn\n"
        )
        after = (
            "import logging\n"
            "logging.warning('x')  # logging.warn( in a comment stays\n"
            "log.warn('y')\n"
            "s = 'logging.warn(' \n"
            "warnings.warn('z')\n"
            "f = logging.warn\n"
        )
        self.assertCodemod(before, after, receiver="logging", old="warn", new="warning")

    def test_dotted_receiver(self) -> None:
        self.assertCodemod(
            "self.log.warn(1)\nlog.warn(2)\n",
            "self.log.warning(1)\nlog.warn(2)\n",
            receiver="self.log",
            old="warn",
            new="warning",
        )


def test_rejects_bad_names() -> None:
    with pytest.raises(ValueError, match="not a"):
        RenameMethodCall(CodemodContext(), receiver="a-b", old="warn", new="warning")
    with pytest.raises(ValueError, match="without dots"):
        RenameMethodCall(CodemodContext(), receiver="a", old="x.y", new="warning")
