"""``fleetchange apply`` with a ``kind = "llm"`` step on a local forge, against the scripted
server: the model's edit lands on the campaign branch, a re-run costs no model call."""

from __future__ import annotations

import io
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from fleetchange import paths
from fleetchange.campaign import load
from fleetchange.changes import llm
from fleetchange.commands.apply import ApplyOptions, apply
from fleetchange.forges.local import LocalForge
from fleetchange.gitops import git
from fleetchange.state import Store
from tests.llm import reset, write_campaign
from tests.servers.openai import OpenAIServer, Reply, Request, fenced

CLI = '''\
"""The service's command line."""
import optparse

VERSION = "1.0"  # kept as it is


def parse(argv):
    parser = optparse.OptionParser()
    parser.add_option("-n", dest="count", type="int", default=1)
    options, _ = parser.parse_args(argv)
    return options
'''
TESTS = """\
import unittest

from cli import parse


class ParseTest(unittest.TestCase):
    def test_count(self):
        self.assertEqual(parse(["-n", "3"]).count, 3)
"""
PARSE_ARGPARSE = """\
def parse(argv):
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("-n", dest="count", type=int, default=1)
    return parser.parse_args(argv)
"""
BROKEN = (
    "def parse(argv):\n    import argparse\n    return argparse.ArgumentParser().parse_args(argv)\n"
)


@pytest.fixture(autouse=True)
def fresh_clients() -> Iterator[None]:
    reset()
    yield
    llm.reset_clients()
    llm.CLIENT_DEFAULTS.clear()


def build_forge(root: Path, scratch: Path, repos: dict[str, dict[str, str]]) -> None:
    """Bare repos under ``root``, each with one initial commit of ``files``."""
    for name, files in repos.items():
        bare = root / f"{name}.git"
        bare.parent.mkdir(parents=True, exist_ok=True)
        git("init", "-q", "--bare", "-b", "main", str(bare), cwd=root)
        work = scratch / name
        work.mkdir(parents=True)
        for relative, text in files.items():
            (work / relative).parent.mkdir(parents=True, exist_ok=True)
            (work / relative).write_text(text)
        git("init", "-q", "-b", "main", cwd=work)
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", "initial", cwd=work)
        git("push", "-q", bare.as_uri(), "main", cwd=work)


def show(root: Path, repo: str, ref: str) -> str | None:
    done = subprocess.run(
        ["git", "show", ref],
        cwd=root / f"{repo}.git",
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout if done.returncode == 0 else None


def run_apply(campaign_file: Path, **options: object) -> int:
    return apply(
        load(campaign_file),
        options=ApplyOptions(jobs=2, **options),  # type: ignore[arg-type]
        console=Console(file=io.StringIO()),
        out=Console(file=io.StringIO()),
    )


def test_apply_pushes_the_model_edit_and_reruns_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEETCHANGE_HOME", str(tmp_path / "home"))
    root = tmp_path / "fleet"
    root.mkdir()
    build_forge(
        root,
        tmp_path / "scratch",
        {
            "team/alpha": {"cli.py": CLI, "tests/__init__.py": "", "tests/test_cli.py": TESTS},
            "team/beta": {"cli.py": CLI, "tests/__init__.py": "", "tests/test_cli.py": TESTS},
            "team/clean": {"cli.py": "import argparse\n"},
        },
    )

    def respond(request: Request) -> Reply:
        # answers well, except beta's first answer, which drops the option the tests need
        first_try = len(request.messages) == 2
        if "team/beta" in request.prompt and first_try:
            return Reply(fenced(BROKEN))
        return Reply(fenced(PARSE_ARGPARSE), prompt_tokens=120, completion_tokens=30)

    with OpenAIServer(responder=respond) as server:
        change = textwrap.dedent(
            """\
            paths = ["**/*.py"]
            grep = "optparse"
            target = { node = "function", calls = "optparse" }
            validate = ["python3 -m unittest discover -q -s tests -t ."]
            """
        )
        folder = tmp_path / "campaign"
        folder.mkdir()
        campaign_file = write_campaign(
            folder,
            server.url,
            change,
            prompt="Move {path} of {repo} to argparse.\n\n{code}\n",
            root=root,
        )
        assert run_apply(campaign_file) == 0
        calls = server.calls
        assert calls == 3  # alpha once, beta twice (its first edit failed the tests), clean none

        branch = "fleetchange/llm-test"
        for repo in ("team/alpha", "team/beta"):
            expected = CLI[: CLI.index("def parse")] + PARSE_ARGPARSE
            assert show(root, repo, f"{branch}:cli.py") == expected
        assert show(root, "team/clean", f"{branch}:cli.py") is None
        # the retry told the model what failed
        retry = [r for r in server.requests if len(r.messages) == 4]
        assert len(retry) == 1 and "python3 -m unittest discover" in retry[0].prompt

        store = Store(paths.state_db())
        try:
            alpha = store.repo("llm-test", "team/alpha")
            assert alpha is not None and alpha.state == "mr-open"
            assert store.repo("llm-test", "team/clean").state == "no-match"  # type: ignore[union-attr]
        finally:
            store.close()
        forge = LocalForge(root)
        [repo] = [r for r in forge.list_repos() if r.name == "team/alpha"]
        mr = forge.find_mr(repo, branch)
        assert mr is not None
        assert "`cli.py::parse` edited by model `test-model`" in mr.body

        # the same run again: nothing to redo
        assert run_apply(campaign_file) == 0
        assert server.calls == calls
        # forced: every repo goes through the pipeline again, the answers come from the cache
        heads = {r: show(root, r, branch) for r in ("team/alpha", "team/beta")}
        assert run_apply(campaign_file, force=True) == 0
        assert server.calls == calls
        assert {r: show(root, r, branch) for r in heads} == heads


def test_a_repo_whose_edit_never_validates_is_not_pushed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEETCHANGE_HOME", str(tmp_path / "home"))
    root = tmp_path / "fleet"
    root.mkdir()
    build_forge(root, tmp_path / "scratch", {"team/alpha": {"cli.py": CLI}})
    with OpenAIServer(responder=lambda request: Reply(fenced(BROKEN))) as server:
        folder = tmp_path / "campaign"
        folder.mkdir()
        change = (
            'target = { node = "function", calls = "optparse" }\n'
            'validate = ["grep -q add_argument {file}"]\nmax_attempts = 2\n'
        )
        campaign_file = write_campaign(folder, server.url, change, root=root)
        assert run_apply(campaign_file) == 1
        assert server.calls == 2
    assert show(root, "team/alpha", "fleetchange/llm-test") is None
    store = Store(paths.state_db())
    try:
        record = store.repo("llm-test", "team/alpha")
    finally:
        store.close()
    assert record is not None and record.state == "llm-failed"
    assert "no acceptable answer in 2 attempts" in record.reason


def test_budget_exhausted_then_continued_with_a_larger_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEETCHANGE_HOME", str(tmp_path / "home"))
    root = tmp_path / "fleet"
    root.mkdir()
    build_forge(root, tmp_path / "scratch", {"team/alpha": {"cli.py": CLI}})
    change = 'target = { node = "function", calls = "optparse" }\nmax_tokens = 5\n'
    with OpenAIServer(responder=lambda request: Reply(fenced(PARSE_ARGPARSE))) as server:
        folder = tmp_path / "campaign"
        folder.mkdir()
        campaign_file = write_campaign(folder, server.url, change, root=root)
        run_apply(campaign_file)
        assert server.calls == 0
        assert show(root, "team/alpha", "fleetchange/llm-test") is None
        store = Store(paths.state_db())
        try:
            record = store.repo("llm-test", "team/alpha")
            assert record is not None and record.state == "budget-exhausted"
        finally:
            store.close()
        campaign_file.write_text(campaign_file.read_text().replace("max_tokens = 5", ""))
        assert run_apply(campaign_file) == 0
        assert server.calls == 1
    assert CLI[: CLI.index("def parse")] + PARSE_ARGPARSE == show(
        root, "team/alpha", "fleetchange/llm-test:cli.py"
    )


def test_a_rejected_model_key_stops_the_run_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.cli import run

    monkeypatch.setenv("FLEETCHANGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TEST_LLM_KEY", "sk-wrong-key-123456")
    root = tmp_path / "fleet"
    root.mkdir()
    build_forge(root, tmp_path / "scratch", {f"team/r{i}": {"cli.py": CLI} for i in range(4)})
    with OpenAIServer(api_key="sk-the-right-one") as server:
        folder = tmp_path / "campaign"
        folder.mkdir()
        change = 'paths = ["**/*.py"]\ngrep = "optparse"\napi_key_env = "TEST_LLM_KEY"\n'
        campaign_file = write_campaign(folder, server.url, change, root=root)

        result = run(capsys, "apply", str(campaign_file), "--jobs", "1")

        assert result.code == 2
        last = result.err.strip().splitlines()[-1]
        assert last.startswith("fleetchange: ") and "401" in last and "TEST_LLM_KEY" in last
        assert "sk-wrong-key-123456" not in result.err
        assert server.calls <= 2  # it stopped at the first repo instead of trying them all
    forge = LocalForge(root)
    assert forge.all_mrs() == []
