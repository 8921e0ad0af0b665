"""Finding functions and classes for the model, and splicing its answers back exactly."""

from __future__ import annotations

import pytest

from fleetchange.llm.targets import Target, TargetError, TargetSpec, find_targets, splice

SOURCE = '''\
"""A CLI with optparse."""
import optparse
from optparse import OptionParser as OP  # alias


# a comment above the class
class Tool:
    """Holds the parser."""

    # the method's own comment
    @staticmethod
    @other.decorator(arg=1)
    def parser(prog):   # odd spacing kept elsewhere
        p = OP(prog=prog)
        p.add_option("-v", action="store_true")
        return p

    def run(self) -> int:
        return 0


def main(argv=None):
    """Entry point."""
    def helper():
        return optparse.Values()
    options, args = optparse.OptionParser().parse_args(argv)
    return helper()


async def untouched():
    await   something( 1,2 )
'''


def names(targets: list[Target]) -> list[str]:
    return [t.qualname for t in targets]


def test_find_by_reference_including_aliases_and_outermost_only() -> None:
    found = find_targets(SOURCE, TargetSpec("function", calls="optparse"))
    assert names(found) == ["Tool.parser", "main"]  # main.helper goes with main
    method = found[0]
    assert method.code.startswith("@staticmethod\n@other.decorator(arg=1)\ndef parser(prog):")
    assert "    p = OP(prog=prog)\n" in method.code  # dedented to column 0
    assert "# the method's own comment" not in method.code
    assert names(find_targets(SOURCE, TargetSpec("function", calls="optparse.OptionParser"))) == [
        "Tool.parser",
        "main",
    ]
    assert names(find_targets(SOURCE, TargetSpec("function", calls="optparse.Values"))) == ["main"]
    assert names(find_targets(SOURCE, TargetSpec("function", calls=r"Option\w+$"))) == [
        "Tool.parser",
        "main",
    ]


def test_find_by_name_and_kind() -> None:
    assert names(find_targets(SOURCE, TargetSpec("function", name="^(run|untouched)$"))) == [
        "Tool.run",
        "untouched",
    ]
    assert names(find_targets(SOURCE, TargetSpec("class", calls="optparse"))) == ["Tool"]
    assert names(find_targets(SOURCE, TargetSpec("function", name="help"))) == ["main.helper"]
    assert find_targets(SOURCE, TargetSpec("function", calls="argparse")) == []


def test_splice_keeps_every_other_byte() -> None:
    main = find_targets(SOURCE, TargetSpec("function", name="^main$"))[0]
    new = splice(SOURCE, main, "def main(argv=None):\n    return 42\n")
    head = SOURCE.split("def main(argv=None):")[0]
    assert new.startswith(head)
    assert new.endswith("\n\n\nasync def untouched():\n    await   something( 1,2 )\n")
    assert (
        new == head + "def main(argv=None):\n    return 42\n" + SOURCE[SOURCE.index("\n\nasync") :]
    )


def test_splice_a_method_reindents_and_keeps_comments_above() -> None:
    parser = find_targets(SOURCE, TargetSpec("function", name="parser"))[0]
    answer = "@staticmethod\ndef parser(prog):\n  import argparse\n  return argparse.ArgumentParser(prog=prog)\n"
    new = splice(SOURCE, parser, answer)
    assert (
        "    # the method's own comment\n"
        "    @staticmethod\n"
        "    def parser(prog):\n"
        "        import argparse\n"
        "        return argparse.ArgumentParser(prog=prog)\n"
        "\n"
        "    def run(self) -> int:\n"
    ) in new
    before, after = SOURCE.split("    @staticmethod\n", 1)
    assert new.startswith(before)
    assert new.endswith(after[after.index("\n    def run") :])


def test_answer_indented_as_in_the_class_is_accepted() -> None:
    run = find_targets(SOURCE, TargetSpec("function", name="^run$"))[0]
    new = splice(SOURCE, run, "    def run(self) -> int:\n        return 1\n")
    assert "    def run(self) -> int:\n        return 1\n" in new
    assert new.replace("return 1", "return 0") == SOURCE


def test_comments_the_model_adds_above_the_def_are_kept() -> None:
    run = find_targets(SOURCE, TargetSpec("function", name="^run$"))[0]
    new = splice(SOURCE, run, "# now returns 1\ndef run(self) -> int:\n    return 1\n")
    assert "\n    # now returns 1\n    def run(self) -> int:\n        return 1\n" in new


@pytest.mark.parametrize(
    "source",
    [
        SOURCE,
        SOURCE.replace("\n", "\r\n"),
        "class A:\n\tdef f(self):\n\t\treturn 1  # tab\n\n\tdef g(self): return 2\n",
        "def f(): return 1\n",
        "if True:\n    def f():\n        pass\n    x = 1\n",
        "def f():\n    pass\n    # trailing comment in the body\n\n# module comment\n",
        "@a\n@b.c(1)\nclass K(Base, metaclass=M):\n    x: int = 1\n\n    class Inner:\n        def f(self): ...\n",
    ],
)
def test_splicing_a_target_with_its_own_code_changes_nothing(source: str) -> None:
    for kind in ("function", "class"):
        for target in find_targets(source, TargetSpec(kind)):
            assert splice(source, target, target.code) == source, target.qualname


def test_crlf_files_stay_crlf() -> None:
    source = SOURCE.replace("\n", "\r\n")
    run = find_targets(source, TargetSpec("function", name="^run$"))[0]
    new = splice(source, run, "def run(self) -> int:\n    return 1\n")
    assert "\n" not in new.replace("\r\n", "")
    assert "    def run(self) -> int:\r\n        return 1\r\n" in new


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("def run(self) -> int:\n    return (\n", "not valid Python"),
        ("class run:\n    pass\n", "exactly one function"),
        ("import os\ndef run(self):\n    return 1\n", "exactly one function"),
        ("def run(self):\n    return 1\ndef extra():\n    pass\n", "exactly one function"),
        ("def walk(self):\n    return 1\n", "keep the name run"),
        ("x = 1\n", "exactly one function"),
        ("\n  \n", "empty"),
    ],
)
def test_bad_replacements_are_refused(answer: str, message: str) -> None:
    run = find_targets(SOURCE, TargetSpec("function", name="^run$"))[0]
    with pytest.raises(TargetError, match=message):
        splice(SOURCE, run, answer)


def test_a_target_that_moved_is_not_spliced() -> None:
    run = find_targets(SOURCE, TargetSpec("function", name="^run$"))[0]
    with pytest.raises(TargetError, match="no longer"):
        splice("\n" + SOURCE, run, run.code)


def test_targets_processed_last_first_keep_their_positions() -> None:
    spec = TargetSpec("function", calls="optparse")
    source = SOURCE
    for target in reversed(find_targets(SOURCE, spec)):
        code = target.code.replace("optparse", "argparse").replace("OP(", "argparse.Parser(")
        source = splice(source, target, code)
    assert find_targets(source, spec) == []
    assert source.count("argparse") == 3
    assert source.startswith(SOURCE[: SOURCE.index("    # the method's own comment")])
