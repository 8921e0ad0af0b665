"""Reading code out of a model's answer: fences, bare code, and what is not code."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetchange.changes.llm import AnswerProblem, check_answer, extract_code, fence
from fleetchange.llm.client import Completion


def problem(text: str, **kwargs: bool) -> str:
    with pytest.raises(AnswerProblem) as caught:
        extract_code(text, **kwargs)
    return caught.value.kind


def answer(content: str, finish_reason: str = "stop", refusal: str | None = None) -> Completion:
    return Completion(content, finish_reason, 1, 1, refusal=refusal)


def test_one_fenced_block_with_chat_around_it() -> None:
    text = "Sure! Here it is:\n\n```python\ndef f():\n    return 1\n```\n\nThis returns 1."
    assert extract_code(text) == "def f():\n    return 1"


def test_tilde_and_long_fences() -> None:
    assert extract_code("~~~\nx = 1\n~~~") == "x = 1"
    assert extract_code("````py\ns = '```'\n````") == "s = '```'"


def test_unclosed_fence_takes_the_rest() -> None:
    assert extract_code("```python\nx = 1\ny = 2\n") == "x = 1\ny = 2"


def test_bare_code_is_accepted() -> None:
    assert extract_code("\n\ndef f():\n    return 1\n") == "def f():\n    return 1"


def test_several_blocks_prose_and_empty_are_problems() -> None:
    assert problem("```\na = 1\n```\nand\n```\nb = 2\n```") == "several"
    assert problem("Here is what I changed: I renamed the variable.") == "prose"
    assert problem("   \n") == "empty"


@pytest.mark.parametrize(
    "text",
    [
        "I can't help with that.",
        "I cannot do this request.",
        "I'm sorry, but I won't rewrite this.",
        "As an AI language model, I do not edit code.",
        "Unfortunately, as an AI I must decline.",
    ],
)
def test_refusals(text: str) -> None:
    assert problem(text) == "refusal"
    assert problem(text, document=True) == "refusal"


def test_documents_keep_their_own_fences() -> None:
    doc = "# AGENTS.md\n\nRun the tests:\n\n```bash\npytest\n```\n\nLint:\n\n```\nruff check\n```\n"
    assert extract_code(doc, document=True) == doc.strip()
    # one example block in a bare document is part of it, not the answer
    one = "# Guide\n\n```bash\npytest\n```\n"
    assert extract_code(one, document=True) == one.strip()
    # a document wrapped as a whole, with fences inside
    wrapped = "````markdown\n" + doc + "````"
    assert extract_code(wrapped, document=True) == doc.rstrip("\n")
    assert extract_code("```markdown\n" + doc + "```", document=True) == doc.rstrip("\n")
    # a line of chat and one block holding the document
    chatty = "Here is the file:\n\n```markdown\n# Title\n\nText.\n```"
    assert extract_code(chatty, document=True) == "# Title\n\nText."
    assert extract_code("Plain prose is a fine document.", document=True) == (
        "Plain prose is a fine document."
    )


def test_check_answer_finish_reasons_and_limits() -> None:
    assert check_answer(answer("```\nx\n```"), document=False, max_bytes=100) == "x"
    for completion, kind in [
        (answer("```\nx = [1,", "length"), "truncated"),
        (answer("", refusal="no"), "refusal"),
        (answer("```\nx\n```", "content_filter"), "refusal"),
        (answer("x" * 101), "too-large"),
        (answer("```python\n\n```"), "empty"),
        (answer(""), "empty"),
    ]:
        with pytest.raises(AnswerProblem) as caught:
            check_answer(completion, document=False, max_bytes=100)
        assert caught.value.kind == kind, completion


def test_fence_outgrows_backticks_in_the_code() -> None:
    assert fence("a\n", "python") == "```python\na\n```"
    assert fence("s = '```'", "python") == "````python\ns = '```'\n````"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["```", "```python", "````", "~~~", "x = 1", "", "Here is it:", "I can't"])
        | st.text(max_size=20),
        max_size=12,
    ),
    st.booleans(),
)
def test_any_answer_gives_code_or_a_named_problem(lines: list[str], document: bool) -> None:
    text = "\n".join(lines)
    try:
        code = extract_code(text, document=document)
    except AnswerProblem as problem:
        assert problem.kind in {"empty", "several", "prose", "refusal"}
    else:
        assert code.strip()
