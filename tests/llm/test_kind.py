"""``kind = "llm"`` steps on a work tree, against the scripted OpenAI-compatible server."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetchange.changes import llm
from fleetchange.changes.base import AUTH_FAILED
from fleetchange.gitops import redact
from tests.llm import load_options, reset, run
from tests.servers.openai import OpenAIServer, Reply, fenced

CLI = '''\
"""Command line."""
import optparse


def parse(argv):
    parser = optparse.OptionParser()
    parser.add_option("-v", dest="verbose", action="store_true")
    options, _ = parser.parse_args(argv)
    return options


def untouched( a,b ):   # odd spacing stays
    return a+b
'''
PARSE_ARGPARSE = """\
def parse(argv):
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("-v", dest="verbose", action="store_true")
    return parser.parse_args(argv)
"""
TARGET = '\ntarget = { node = "function", calls = "optparse" }\n'


@pytest.fixture(autouse=True)
def fresh_clients() -> Iterator[None]:
    reset()
    yield
    llm.reset_clients()
    llm.CLIENT_DEFAULTS.clear()


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    (work / "pkg").mkdir(parents=True)
    (work / "pkg" / "cli.py").write_text(CLI)
    return work


def options(
    tmp_path: Path, server: OpenAIServer, change: str = TARGET, **kwargs: object
) -> dict[str, object]:
    folder = tmp_path / "campaign"
    folder.mkdir(exist_ok=True)
    return load_options(folder, server.url, change, **kwargs)  # type: ignore[arg-type]


def test_function_target_edited_and_spliced(
    tmp_path: Path, server: OpenAIServer, tree: Path
) -> None:
    server.script(Reply(fenced(PARSE_ARGPARSE), prompt_tokens=100, completion_tokens=40))
    result = run(options(tmp_path, server), tree, ["pkg/cli.py"], home=tmp_path / "home")
    assert result.failed is None, result.failed
    assert result.changed == ["pkg/cli.py"]
    new = (tree / "pkg" / "cli.py").read_text()
    assert (
        new
        == CLI[: CLI.index("def parse")] + PARSE_ARGPARSE + CLI[CLI.index("\n\ndef untouched") :]
    )
    assert result.usage == {"prompt_tokens": 100, "completion_tokens": 40, "calls": 1, "cached": 0}
    assert result.summary == "model test-model edited 1 function in 1 file"
    [note] = result.notes
    assert note.startswith("`pkg/cli.py::parse` edited by model `test-model` (prompt sha256 ")
    assert note.endswith("validated by: libcst parse")
    # the model saw only the function, with the instructions around it
    request = server.requests[0]
    system, user = request.messages
    assert "`parse` from `pkg/cli.py`" in system["content"]
    assert "Edit the python code of group/service in pkg/cli.py" in user["content"]
    assert "def parse(argv):\n    parser = optparse.OptionParser()" in user["content"]
    assert "untouched" not in user["content"]


def test_whole_file_target(tmp_path: Path, server: OpenAIServer, tree: Path) -> None:
    (tree / "pyproject.toml").write_text('[project]\nname = "x"\n')
    server.script(fenced('[project]\nname = "x"\nversion = "1"', "toml"))
    opts = options(tmp_path, server, '\npaths = ["*.toml"]\n', prompt="Add a version.\n")
    result = run(opts, tree, ["pyproject.toml"], home=tmp_path / "home")
    assert result.failed is None and result.changed == ["pyproject.toml"]
    assert (tree / "pyproject.toml").read_text() == '[project]\nname = "x"\nversion = "1"\n'
    assert result.notes[0].endswith("validated by: tomlkit parse")
    # a template without {code} gets the code appended in a fenced block
    user = server.requests[0].messages[1]["content"]
    assert user.startswith("Add a version.\n\n`pyproject.toml`:\n\n```toml\n[project]")


def test_bad_then_good_answers_are_retried_with_the_reason(
    tmp_path: Path, server: OpenAIServer, tree: Path
) -> None:
    server.script(
        Reply("```python\ndef parse(argv):\n    return (\n", finish_reason="length"),
        "```python\ndef parse(a):\n    pass\n```\n```python\nx = 1\n```",
        "Sure, I updated the function to use argparse.",
        Reply(""),
        fenced("def parse(argv):\n    return argv[\n"),
        fenced(PARSE_ARGPARSE),
    )
    opts = options(tmp_path, server, TARGET + "max_attempts = 6\n")
    result = run(opts, tree, ["pkg/cli.py"], home=tmp_path / "home")
    assert result.failed is None, result.failed
    assert PARSE_ARGPARSE in (tree / "pkg" / "cli.py").read_text()
    assert result.usage["calls"] == 6
    feedback = [r.prompt for r in server.requests[1:]]
    assert "cut off" in feedback[0]
    assert "2 code blocks" in feedback[1]
    assert "prose" in feedback[2]
    assert "empty" in feedback[3]
    assert "not valid Python" in feedback[4]
    # the conversation grows: each retry carries the earlier answers
    assert [m["role"] for m in server.requests[-1].messages] == ["system", "user"] + [
        "assistant",
        "user",
    ] * 5


def test_truncated_twice_fails(tmp_path: Path, server: OpenAIServer, tree: Path) -> None:
    server.script(*[Reply("```python\ndef parse(", finish_reason="length")] * 2)
    result = run(options(tmp_path, server), tree, ["pkg/cli.py"], home=tmp_path / "home")
    assert result.failed_state == "llm-failed"
    assert result.failed == "pkg/cli.py::parse: the answer was cut off twice"
    assert (tree / "pkg" / "cli.py").read_text() == CLI


def test_refusal_is_recorded_without_retrying(
    tmp_path: Path, server: OpenAIServer, tree: Path
) -> None:
    server.script("I'm sorry, but I can't help with rewriting this code.")
    opts = options(tmp_path, server)
    result = run(opts, tree, ["pkg/cli.py"], home=tmp_path / "home")
    assert result.failed_state == "llm-failed"
    assert result.failed is not None and "declined: I'm sorry" in result.failed
    assert server.calls == 1 and result.usage["calls"] == 1
    # a refusal is not cached: the next run asks again
    server.script(fenced(PARSE_ARGPARSE))
    assert run(opts, tree, ["pkg/cli.py"], home=tmp_path / "home").failed is None
    assert server.calls == 2


def test_answer_over_the_size_cap_is_rejected(
    tmp_path: Path, server: OpenAIServer, tree: Path
) -> None:
    huge = "def parse(argv):\n" + "    x = 1\n" * 100
    server.script(fenced(huge), fenced(PARSE_ARGPARSE))
    opts = options(tmp_path, server, TARGET + "max_answer_bytes = 600\n")
    result = run(opts, tree, ["pkg/cli.py"], home=tmp_path / "home")
    assert result.failed is None
    assert "over the limit of 600 bytes" in server.requests[1].prompt


def test_validation_failure_is_fed_back_then_passes(
    tmp_path: Path, server: OpenAIServer, tree: Path
) -> None:
    check = tmp_path / "check.py"
    check.write_text(
        "import sys\ntext = open(sys.argv[1]).read()\n"
        "if 'OptionParser' in text or 'add_argument' not in text:\n"
        "    print('check.py: still uses optparse, or no add_argument'); sys.exit(3)\n"
    )
    half = "def parse(argv):\n    parser = optparse.OptionParser(usage='x')\n    return parser.parse_args(argv)[0]\n"
    server.script(fenced(half), fenced(PARSE_ARGPARSE))
    change = TARGET + f'validate = ["python3 {check} {{file}}"]\n'
    result = run(options(tmp_path, server, change), tree, ["pkg/cli.py"], home=tmp_path / "home")
    assert result.failed is None, result.failed
    retry = server.requests[1].prompt
    assert "exited 3" in retry and "still uses optparse" in retry
    assert "This is the code you gave:" in retry and "OptionParser(usage='x')" in retry
    assert PARSE_ARGPARSE in (tree / "pkg" / "cli.py").read_text()
    assert result.notes[0].endswith(f"validated by: libcst parse, `python3 {check} {{file}}`")


def test_failing_every_attempt_restores_the_file(
    tmp_path: Path, server: OpenAIServer, tree: Path
) -> None:
    server.script(*[fenced(PARSE_ARGPARSE)] * 2)
    change = TARGET + 'validate = ["echo lint error in {file}; exit 1"]\nmax_attempts = 2\n'
    result = run(options(tmp_path, server, change), tree, ["pkg/cli.py"], home=tmp_path / "home")
    assert result.failed_state == "llm-failed"
    assert result.failed is not None
    assert "no acceptable answer in 2 attempts" in result.failed
    assert "`echo lint error in pkg/cli.py; exit 1` exited 1" in result.failed
    assert (tree / "pkg" / "cli.py").read_bytes() == CLI.encode()
    assert result.changed == [] and result.usage["calls"] == 2


def test_cache_makes_a_rerun_free_and_can_be_bypassed(
    tmp_path: Path, server: OpenAIServer, tree: Path
) -> None:
    server.script(fenced(PARSE_ARGPARSE))
    opts = options(tmp_path, server)
    home = tmp_path / "home"
    first = run(opts, tree, ["pkg/cli.py"], home=home)
    edited = (tree / "pkg" / "cli.py").read_text()
    assert list((home / "llm-cache").glob("*/*.json"))
    (tree / "pkg" / "cli.py").write_text(CLI)
    second = run(opts, tree, ["pkg/cli.py"], home=home)
    assert server.calls == 1
    assert (tree / "pkg" / "cli.py").read_text() == edited
    assert second.usage == {"prompt_tokens": 0, "completion_tokens": 0, "calls": 0, "cached": 1}
    assert second.summary.endswith("(1 answer from the cache)")
    assert second.notes == first.notes
    (tree / "pkg" / "cli.py").write_text(CLI)
    server.script(fenced(PARSE_ARGPARSE))
    third = run(opts, tree, ["pkg/cli.py"], home=home, use_llm_cache=False)
    assert server.calls == 2 and third.usage["calls"] == 1


def test_bad_answers_are_not_cached(tmp_path: Path, server: OpenAIServer, tree: Path) -> None:
    server.script(Reply("```python\ndef parse(", finish_reason="length"), fenced(PARSE_ARGPARSE))
    opts = options(tmp_path, server)
    run(opts, tree, ["pkg/cli.py"], home=tmp_path / "home")
    assert len(list((tmp_path / "home" / "llm-cache").glob("*/*.json"))) == 1


def test_budget_stops_new_calls(tmp_path: Path, server: OpenAIServer, tree: Path) -> None:
    two = CLI + "\n\ndef other():\n    return optparse.Values()\n"
    (tree / "pkg" / "cli.py").write_text(two)
    home = tmp_path / "home"
    opts = options(tmp_path, server)
    # nothing left: no call at all
    result = run(opts, tree, ["pkg/cli.py"], home=home, token_budget=10)
    assert result.failed_state == "budget-exhausted" and server.calls == 0
    assert (
        result.failed is not None
        and "token budget exhausted before pkg/cli.py::other" in result.failed
    )
    # room for one call: the first answer costs 5000 tokens, so the second call never happens
    server.script(
        Reply(fenced("def other():\n    return {}\n"), prompt_tokens=4000, completion_tokens=1000)
    )
    result = run(opts, tree, ["pkg/cli.py"], home=home, token_budget=5000)
    assert result.failed_state == "budget-exhausted"
    assert result.usage == {
        "prompt_tokens": 4000,
        "completion_tokens": 1000,
        "calls": 1,
        "cached": 0,
    }
    assert server.calls == 1
    assert (tree / "pkg" / "cli.py").read_text() == two  # nothing half-done is left behind
    # a later run with budget again: the first answer comes from the cache, free
    server.script(fenced(PARSE_ARGPARSE))
    result = run(opts, tree, ["pkg/cli.py"], home=home, token_budget=5000)
    assert result.failed is None, result.failed
    assert result.usage["cached"] == 1 and result.usage["calls"] == 1
    assert server.calls == 2
    new = (tree / "pkg" / "cli.py").read_text()
    assert "def other():\n    return {}\n" in new and PARSE_ARGPARSE in new
    assert [n.split("`")[1] for n in result.notes] == ["pkg/cli.py::parse", "pkg/cli.py::other"]


def test_429_then_success_counts_one_call(tmp_path: Path, server: OpenAIServer, tree: Path) -> None:
    server.script(
        Reply(status=429, headers={"Retry-After": "0"}),
        Reply(status=503),
        fenced(PARSE_ARGPARSE),
    )
    result = run(options(tmp_path, server), tree, ["pkg/cli.py"], home=tmp_path / "home")
    assert result.failed is None and result.usage["calls"] == 1
    assert server.calls == 3


def test_endpoint_down_fails_the_repo(tmp_path: Path, server: OpenAIServer, tree: Path) -> None:
    server.script(*[Reply(status=500)] * 4)
    result = run(options(tmp_path, server), tree, ["pkg/cli.py"], home=tmp_path / "home")
    assert result.failed_state == "llm-failed"
    assert result.failed is not None and "failed after 4 attempts: HTTP 500" in result.failed


def test_api_key_from_the_named_variable(
    tmp_path: Path, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_LLM_KEY", "sk-kind-secret-789")
    with OpenAIServer(api_key="sk-kind-secret-789") as server:
        opts = options(tmp_path, server, TARGET + 'api_key_env = "FLEET_LLM_KEY"\n')
        assert "sk-kind-secret-789" not in repr(opts)
        server.script(fenced(PARSE_ARGPARSE))
        assert run(opts, tree, ["pkg/cli.py"], home=tmp_path / "home").failed is None
        (tree / "pkg" / "cli.py").write_text(CLI)
        monkeypatch.setenv("FLEET_LLM_KEY", "sk-wrong-key-000")
        result = run(opts, tree, ["pkg/cli.py"], home=tmp_path / "home", use_llm_cache=False)
    assert result.failed_state == AUTH_FAILED  # the pipeline stops the whole run on it
    assert (
        result.failed is not None and "$FLEET_LLM_KEY" in result.failed and "401" in result.failed
    )
    assert "sk-wrong-key-000" not in result.failed
    assert redact("sk-wrong-key-000") == "***"


def test_files_without_targets_and_odd_files(
    tmp_path: Path, server: OpenAIServer, tree: Path
) -> None:
    (tree / "pkg" / "plain.py").write_text("def f():\n    return 1\n")
    (tree / "pkg" / "broken.py").write_text("def oops(:\n    optparse\n")
    (tree / "pkg" / "latin.py").write_bytes(b"# \xe9\nimport optparse\n")
    (tree / "README.md").write_text("optparse\n")
    candidates = ["pkg/plain.py", "pkg/broken.py", "pkg/latin.py", "README.md", "pkg/gone.py"]
    result = run(options(tmp_path, server), tree, candidates, home=tmp_path / "home")
    assert result.failed is None and server.calls == 0 and result.changed == []
    assert result.summary == "model test-model edited 0 functions in 0 files"
    assert result.problems[0].startswith("pkg/broken.py: does not parse (line ")
    assert result.problems[1:] == [
        "pkg/latin.py: not UTF-8, left alone",
        "README.md: not a Python file, so no function target",
    ]


def test_unchanged_answer_changes_nothing(tmp_path: Path, server: OpenAIServer, tree: Path) -> None:
    parse = CLI[CLI.index("def parse") : CLI.index("\n\ndef untouched")]
    server.script(fenced(parse))
    result = run(options(tmp_path, server), tree, ["pkg/cli.py"], home=tmp_path / "home")
    assert result.failed is None and result.changed == [] and result.notes == []


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_create_agents_md_from_repo_context(
    tmp_path: Path, server: OpenAIServer, tree: Path
) -> None:
    (tree / "README.md").write_text("# service\n\nDoes things.\n")
    (tree / "pyproject.toml").write_text('[project]\nname = "service"\n')
    (tree / ".github").mkdir()
    (tree / ".github" / "CODEOWNERS").write_text("* @platform-team\n")
    git("init", "-q", cwd=tree)
    git("add", "-A", cwd=tree)
    agents = "# AGENTS.md\n\nRun the tests:\n\n```bash\npytest\n```\n"
    server.script("````markdown\n" + agents + "````")
    change = '\ncreate = "AGENTS.md"\npaths = ["**"]\n'
    opts = options(tmp_path, server, change, prompt="Write {path} for {repo}.\n\n{context}\n")
    result = run(opts, tree, ["README.md"], home=tmp_path / "home")
    assert result.failed is None, result.failed
    assert (tree / "AGENTS.md").read_text() == agents
    assert result.changed == ["AGENTS.md"]
    assert result.summary == "model test-model wrote AGENTS.md"
    assert result.notes[0].startswith("`AGENTS.md` written by model `test-model`")
    prompt = server.requests[0].prompt
    assert prompt.startswith("Write AGENTS.md for group/service.")
    for expected in (
        "### File tree (4 files)",
        "pkg/cli.py",
        "Does things.",
        'name = "service"',
        "@platform-team",
    ):
        assert expected in prompt
    # it exists now: left alone without a call, unless overwrite = true
    assert run(opts, tree, ["README.md"], home=tmp_path / "home").summary == (
        "AGENTS.md already exists, left as it is"
    )
    assert server.calls == 1
    server.script(fenced("# AGENTS.md\n\nNew text.\n", "markdown"))
    opts = options(tmp_path, server, change + "overwrite = true\n")
    result = run(opts, tree, ["README.md"], home=tmp_path / "home")
    assert result.summary == "model test-model rewrote AGENTS.md"
    assert (tree / "AGENTS.md").read_text() == "# AGENTS.md\n\nNew text.\n"
    assert "### Current AGENTS.md" in server.requests[1].prompt


def test_create_that_fails_validation_leaves_no_file(
    tmp_path: Path, server: OpenAIServer, tree: Path
) -> None:
    server.script("# Agents\n", "# Agents\n")
    change = '\ncreate = "AGENTS.md"\nvalidate = ["grep -q Testing {file}"]\nmax_attempts = 2\n'
    result = run(options(tmp_path, server, change), tree, ["pkg/cli.py"], home=tmp_path / "home")
    assert result.failed_state == "llm-failed"
    assert not (tree / "AGENTS.md").exists()


def test_retries_after_failed_validation_are_cached_too(
    tmp_path: Path, server: OpenAIServer, tree: Path
) -> None:
    # the command's output changes on every run (a pid, like a test runner's timings)
    half = "def parse(argv):\n    return None\n"
    server.script(fenced(half), fenced(PARSE_ARGPARSE))
    change = TARGET + 'validate = ["echo pid $$; grep -q add_argument {file}"]\n'
    opts = options(tmp_path, server, change)
    first = run(opts, tree, ["pkg/cli.py"], home=tmp_path / "home")
    assert first.failed is None and server.calls == 2
    assert "pid " in server.requests[1].prompt  # the model saw the whole output
    (tree / "pkg" / "cli.py").write_text(CLI)
    second = run(opts, tree, ["pkg/cli.py"], home=tmp_path / "home")
    assert second.failed is None and server.calls == 2
    assert second.usage["cached"] == 2
    assert PARSE_ARGPARSE in (tree / "pkg" / "cli.py").read_text()


def test_model_calls_share_one_semaphore_per_endpoint_and_model() -> None:
    one = llm.semaphore_for("http://h/v1", "m", 2)
    assert llm.semaphore_for("http://h/v1", "m", 2) is one
    assert llm.semaphore_for("http://h/v1", "other", 2) is not one
    assert one.acquire(blocking=False) and one.acquire(blocking=False)
    assert not one.acquire(blocking=False)  # a third call waits
    one.release()
    one.release()
