"""Loading ``kind = "llm"`` steps: what is read at load time and what is refused."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleetchange.campaign import load
from fleetchange.errors import CampaignError
from tests.llm import DEFAULT_PROMPT, write_campaign

ENDPOINT = "http://127.0.0.1:11434/v1"
REPO_ROOT = Path(__file__).resolve().parents[2]


def error(tmp_path: Path, change: str = "", **kwargs: object) -> str:
    path = write_campaign(tmp_path, kwargs.pop("endpoint", ENDPOINT), change, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(CampaignError) as caught:
        load(path)
    return str(caught.value)


def test_prompt_and_context_are_read_at_load_time(tmp_path: Path) -> None:
    (tmp_path / "codemods" / "prompts").mkdir(parents=True)
    (tmp_path / "codemods" / "prompts" / "style.md").write_text("Use 4 spaces.\n")
    path = write_campaign(
        tmp_path,
        ENDPOINT + "/",
        'context = ["codemods/prompts/style.md"]\napi_key_env = "OPENAI_API_KEY"\n',
    )
    step = load(path).steps[0]
    options = step.options
    assert step.kind == "llm" and step.paths == ("**/*.py",)
    assert step.name == "llm test-model edits files"
    assert options["endpoint"] == ENDPOINT  # trailing slash dropped
    assert options["prompt_text"] == DEFAULT_PROMPT
    assert options["prompt_sha256"] == hashlib.sha256(DEFAULT_PROMPT.encode()).hexdigest()
    assert options["context_files"] == [["codemods/prompts/style.md", "Use 4 spaces.\n"]]
    assert options["target"] == "file"
    assert options["api_key_env"] == "OPENAI_API_KEY"
    assert (options["max_attempts"], options["max_answer_bytes"], options["concurrency"]) == (
        3,
        200_000,
        4,
    )
    assert len(options["version"]) == 12
    # the version follows the prompt: editing it re-runs the fleet
    (tmp_path / "codemods" / "prompts" / "edit.md").write_text("Something else {code}\n")
    assert load(path).steps[0].options["version"] != options["version"]


def test_target_table_is_normalised(tmp_path: Path) -> None:
    path = write_campaign(tmp_path, ENDPOINT, 'target = { node = "class", name = "^Cli" }\n')
    step = load(path).steps[0]
    assert step.options["target"] == {"node": "class", "name": "^Cli", "calls": None}
    assert step.name == "llm test-model edits classes named like /^Cli/"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('target = "functions"\n', 'target: expected "file" or a table'),
        ('target = { node = "method" }\n', "target: node must be one of 'function', 'class'"),
        ('target = { name = "x" }\n', "target: node must be one of"),
        ('target = { node = "function", regex = "x" }\n', "unknown key 'regex'"),
        (
            'target = { node = "function", name = "(" }\n',
            "target: name: invalid regular expression",
        ),
        ('target = { node = "function", calls = "" }\n', "calls must be a non-empty string"),
        ("target = 3\n", "target: expected a string or a table, got integer"),
        ('create = "AGENTS.md"\ntarget = { node = "function" }\n', "cannot be combined"),
        ('create = "../AGENTS.md"\n', "create: must be a relative path inside the repository"),
        ('create = "/etc/motd"\n', "create: must be a relative path"),
        ('create = ".git/config"\n', "create: must be a relative path"),
        ('create = "docs/"\n', "create: must be a plain file path"),
        ("overwrite = true\n", "overwrite: only makes sense together with create"),
        ('validate = ["ruff check {path}"]\n', "validate: unknown placeholder {path}"),
        ('validate = [" "]\n', "validate: commands must not be empty"),
        ("max_attempts = 0\n", "max_attempts: must be between 1 and 10, got 0"),
        ("max_tokens = 0\n", "max_tokens: must be at least 1"),
        ("temperature = 3\n", "temperature: must be between 0 and 2"),
        ('api_key_env = "sk-proj-abc123"\n', "is not an environment variable name"),
        ('context = ["missing.md"]\n', "context: context file missing.md not found"),
        ("temprature = 0.5\n", "temprature: unknown key"),
    ],
)
def test_bad_change_tables(tmp_path: Path, change: str, message: str) -> None:
    assert message in error(tmp_path, change)


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("localhost:11434/v1", "is not an http(s) URL"),
        ("ftp://models.example/v1", "is not an http(s) URL"),
        ("https://user:sk-secret@api.example/v1", "must not carry credentials"),
        ("https://api.example/v1/chat/completions", "without /chat/completions"),
        ("https://api.example/v1?key=1", "must not have a query"),
        ("http://[::1/v1", "is not a valid URL"),
        ("http://127.0.0.1:99999/v1", "is not a valid URL"),
    ],
)
def test_bad_endpoints(tmp_path: Path, endpoint: str, message: str) -> None:
    text = error(tmp_path, endpoint=endpoint)
    assert "endpoint: " in text and message in text


def test_prompt_problems(tmp_path: Path) -> None:
    missing = error(tmp_path, prompt=None)
    assert "[[change]] #1 prompt: prompt file codemods/prompts/edit.md not found" in missing
    assert "campaign.toml:13:" in missing  # the line of the prompt key
    unknown = error(tmp_path, prompt="Fix {code} in {file}\n")
    assert "unknown placeholder {file}" in unknown
    assert "{repo}, {path}, {language}, {code}, {context}" in unknown
    assert "is empty" in error(tmp_path, prompt="  \n")
    # literal braces are written doubled
    write_campaign(tmp_path, ENDPOINT, prompt="Return {{'a': 1}} style dicts. {code}\n")
    load(tmp_path / "campaign.toml")


def test_missing_required_keys(tmp_path: Path) -> None:
    path = tmp_path / "campaign.toml"
    write_campaign(tmp_path, ENDPOINT)
    path.write_text(path.read_text().replace('model = "test-model"\n', ""))
    with pytest.raises(CampaignError, match="model: is required"):
        load(path)


def test_cli_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    path = write_campaign(tmp_path, ENDPOINT, 'target = { node = "lambda" }\n')
    done = subprocess.run(
        [sys.executable, "-m", "fleetchange", "apply", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "FLEETCHANGE_HOME": str(tmp_path / "home")},
        check=False,
    )
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert "campaign.toml:14: [[change]] #1 target: node must be one of" in line


def test_example_campaigns_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETCHANGE_HOME", str(tmp_path))
    (tmp_path / "demo" / "fleet").mkdir(parents=True)
    agents = load(REPO_ROOT / "campaigns" / "agents-md.toml")
    [step] = agents.steps
    assert step.kind == "llm" and step.options["create"] == "AGENTS.md"
    assert "{context}" in step.options["prompt_text"]
    migrate = load(REPO_ROOT / "campaigns" / "optparse-to-argparse.toml")
    [step] = migrate.steps
    assert step.options["target"] == {"node": "function", "name": None, "calls": "optparse"}
    assert step.grep == "optparse"
    for campaign in (agents, migrate):
        assert campaign.steps[0].options["endpoint"] == ENDPOINT
        assert campaign.steps[0].options["prompt_text"].strip()
