"""`fleetchange apply` end to end on real bare repositories of the local forge."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fleetchange.state import Store
from tests.cli import run
from tests.fleet import LocalFleet, campaign_toml

WARN = "import logging\n\n\ndef f():\n    logging.warn('x')  # keep me\n"
WARNED = "import logging\n\n\ndef f():\n    logging.warning('x')  # keep me\n"
CLEAN = "import logging\n\n\ndef f():\n    logging.warning('x')\n"
BRANCH = "refs/heads/fleetchange/logging-warn"


def write_campaign(tmp_path: Path, fleet: LocalFleet, **kwargs: str | None) -> Path:
    path = tmp_path / "campaign.toml"
    path.write_text(campaign_toml(fleet.root, **kwargs))  # type: ignore[arg-type]
    return path


def state(home: Path, campaign: str = "logging-warn") -> dict[str, str]:
    store = Store(home / "state.sqlite3")
    try:
        return {r.repo: r.state for r in store.repos(campaign)}
    finally:
        store.close()


def test_apply_opens_one_mr_per_changed_repo(
    tmp_path: Path, fleet: LocalFleet, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.add("team/a", {"a.py": WARN, "untouched.py": "x = 1  # odd   spacing\n"})
    fleet.add("team/b", {"b.py": CLEAN})
    fleet.add("other/c", {"pkg/c.py": WARN})
    campaign = write_campaign(tmp_path, fleet)

    result = run(capsys, "apply", str(campaign))

    assert result.code == 0, result.err
    assert state(home) == {"team/a": "mr-open", "team/b": "no-match", "other/c": "mr-open"}
    assert fleet.show("team/a", BRANCH, "a.py") == WARNED.rstrip("\n")
    assert fleet.show("team/a", BRANCH, "untouched.py") == "x = 1  # odd   spacing"
    mrs = fleet.forge().all_mrs()
    assert [(m.url, m.state, m.target_branch) for m in mrs] == [
        ("local:other/c!1", "open", "main"),
        ("local:team/a!1", "open", "main"),
    ]
    body = mrs[1].body
    assert "logging.warn is deprecated." in body
    assert "`a.py`" in body
    assert "<!-- fleetchange:campaign=logging-warn" in body
    log = subprocess_out(
        ["git", "log", "-1", "--format=%an <%ae>%n%B", BRANCH], fleet.bare("team/a")
    )
    assert "fleetchange <fleetchange@localhost>" in log
    assert "Fleetchange-Campaign: logging-warn" in log


def subprocess_out(args: list[str], cwd: Path) -> str:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=True).stdout


def test_rerun_is_idempotent_and_skips_unchanged_repos(
    tmp_path: Path, fleet: LocalFleet, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.add("team/a", {"a.py": WARN})
    campaign = write_campaign(tmp_path, fleet)
    assert run(capsys, "apply", str(campaign)).code == 0
    head = fleet.sha("team/a", BRANCH)
    events_before = len(list(Store(home / "state.sqlite3").events("logging-warn")))

    again = run(capsys, "apply", str(campaign))

    assert again.code == 0
    assert "1 repo(s) unchanged since the last run" in again.err
    assert len(fleet.forge().all_mrs()) == 1
    assert fleet.sha("team/a", BRANCH) == head
    assert len(list(Store(home / "state.sqlite3").events("logging-warn"))) == events_before
    assert not (home / "work" / "logging-warn" / "team__a").exists()

    forced = run(capsys, "apply", str(campaign), "--force")
    assert forced.code == 0
    assert len(fleet.forge().all_mrs()) == 1
    assert fleet.sha("team/a", BRANCH) == head  # same tree on the same base: no push


def test_new_base_updates_branch_and_keeps_single_mr(
    tmp_path: Path, fleet: LocalFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.add("team/a", {"a.py": WARN})
    campaign = write_campaign(tmp_path, fleet)
    assert run(capsys, "apply", str(campaign)).code == 0
    first = fleet.sha("team/a", BRANCH)
    new_base = fleet.commit("team/a", {"b.py": "import logging\nlogging.warn('y')\n"})

    assert run(capsys, "apply", str(campaign)).code == 0

    second = fleet.sha("team/a", BRANCH)
    assert second != first
    assert (
        subprocess_out(["git", "rev-parse", f"{BRANCH}^"], fleet.bare("team/a")).strip() == new_base
    )
    assert fleet.show("team/a", BRANCH, "b.py") == "import logging\nlogging.warning('y')"
    mrs = fleet.forge().all_mrs()
    assert len(mrs) == 1 and "`b.py`" in mrs[0].body


def test_changed_campaign_updates_the_mr(
    tmp_path: Path, fleet: LocalFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.add("team/a", {"a.py": WARN})
    campaign = write_campaign(tmp_path, fleet)
    assert run(capsys, "apply", str(campaign)).code == 0
    campaign.write_text(campaign.read_text().replace("logging.warn is deprecated.", "New reasons."))

    assert run(capsys, "apply", str(campaign)).code == 0

    mrs = fleet.forge().all_mrs()
    assert len(mrs) == 1
    assert "New reasons." in mrs[0].body


def test_failing_tests_are_recorded_with_log_tail(
    tmp_path: Path, fleet: LocalFleet, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.add("team/good", {"a.py": WARN, "check.sh": "exit 0\n"})
    fleet.add("team/bad", {"a.py": WARN, "check.sh": "echo boom-from-the-tests; exit 3\n"})
    campaign = write_campaign(tmp_path, fleet, test="sh check.sh")

    result = run(capsys, "apply", str(campaign))

    assert result.code == 1
    assert state(home) == {"team/good": "mr-open", "team/bad": "test-failed"}
    status = run(capsys, "status", "logging-warn", "--json").json()
    bad = next(r for r in status["repos"] if r["repo"] == "team/bad")
    assert bad["reason"] == "`sh check.sh` exited 3"
    store = Store(home / "state.sqlite3")
    assert "boom-from-the-tests" in store.repo("logging-warn", "team/bad").test_log  # type: ignore[union-attr]
    assert fleet.sha("team/bad", BRANCH) is None  # nothing pushed
    assert (home / "logs" / "logging-warn" / "team__bad.log").read_text().startswith("boom")


def test_test_timeout_kills_the_process_group(
    tmp_path: Path, fleet: LocalFleet, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "child-survived"
    script = f"(sleep 3; touch {marker}) & sleep 30\n"
    fleet.add("team/slow", {"a.py": WARN, "check.sh": script})
    campaign = tmp_path / "campaign.toml"
    campaign.write_text(
        campaign_toml(fleet.root) + '[test]\ncommand = "sh check.sh"\ntimeout = 1\n'
    )

    result = run(capsys, "apply", str(campaign))

    assert result.code == 1
    assert state(home) == {"team/slow": "test-failed"}
    status = run(capsys, "status", "logging-warn", "--json").json()
    assert status["repos"][0]["reason"] == "`sh check.sh` timed out after 1s"
    # the backgrounded child was in the killed group: it can never touch the marker
    import time

    deadline = time.monotonic() + 4
    while time.monotonic() < deadline and not marker.exists():
        time.sleep(0.2)
    assert not marker.exists()


def test_one_repo_error_does_not_stop_the_others(
    tmp_path: Path, fleet: LocalFleet, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.add("team/a", {"a.py": WARN})
    fleet.add("team/b", {"b.py": WARN, "fail-here": ""})
    fleet.add("team/c", {"c.py": WARN})
    changes = (
        '[[change]]\nkind = "command"\nrun = "test ! -e fail-here || { echo no way; exit 4; }"\n\n'
        '[[change]]\nkind = "libcst"\ncodemod = "codemods.logging_warn.ReplaceLoggingWarn"\n'
    )
    campaign = write_campaign(tmp_path, fleet, changes=changes)

    result = run(capsys, "apply", str(campaign))

    assert result.code == 1
    assert state(home) == {"team/a": "mr-open", "team/b": "error", "team/c": "mr-open"}
    status = run(capsys, "status", "logging-warn", "--json").json()
    reason = next(r["reason"] for r in status["repos"] if r["repo"] == "team/b")
    assert reason.startswith("step 1 (command `test ! -e fail-here")
    assert "exited 4" in reason and "no way" in reason


def test_odd_repositories_are_recorded_not_fatal(
    tmp_path: Path, fleet: LocalFleet, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    latin1 = "# caf\xe9\nimport logging\nlogging.warn('x')\n".encode("latin-1")
    crlf = b"import logging\r\nlogging.warn('x')\r\n"
    binary = bytes(range(256)) + b"logging.warn("
    fleet.add("odd/empty", {})
    fleet.add(
        "odd/files",
        {
            "broken.py": "def f(:\n    logging.warn('x')\n",
            "latin1.py": latin1,
            "crlf.py": crlf,
            "blob.py": binary,
            "ok.py": WARN,
        },
    )

    result = run(capsys, "apply", str(write_campaign(tmp_path, fleet)))

    assert result.code == 0, result.err
    assert state(home) == {"odd/empty": "skipped", "odd/files": "mr-open"}
    assert fleet.show("odd/files", BRANCH, "ok.py") == WARNED.rstrip("\n")
    raw_crlf = subprocess.run(
        ["git", "cat-file", "blob", f"{BRANCH}:crlf.py"],
        cwd=fleet.bare("odd/files"),
        capture_output=True,
    ).stdout
    assert raw_crlf == b"import logging\r\nlogging.warning('x')\r\n"
    for unchanged, original in (
        ("latin1.py", latin1),
        ("broken.py", b"def f(:\n    logging.warn('x')\n"),
    ):
        raw = subprocess.run(
            ["git", "cat-file", "blob", f"{BRANCH}:{unchanged}"],
            cwd=fleet.bare("odd/files"),
            capture_output=True,
        ).stdout
        assert raw == original
    body = fleet.forge().all_mrs()[0].body
    assert "broken.py: does not parse" in body
    assert "latin1.py: not UTF-8, left alone" in body


def test_dry_run_shows_diff_and_writes_nothing(
    tmp_path: Path, fleet: LocalFleet, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.add("team/a", {"a.py": WARN})
    result = run(capsys, "apply", str(write_campaign(tmp_path, fleet)), "--dry-run")
    assert result.code == 0
    assert "-    logging.warn('x')  # keep me" in result.out
    assert "+    logging.warning('x')  # keep me" in result.out
    assert fleet.sha("team/a", BRANCH) is None
    assert fleet.forge().all_mrs() == []
    assert state(home) == {}


def test_limit_and_only_select_repos(
    tmp_path: Path, fleet: LocalFleet, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("a/one", "a/two", "b/three"):
        fleet.add(name, {"x.py": WARN})
    campaign = write_campaign(tmp_path, fleet)
    assert run(capsys, "apply", str(campaign), "--only", "a/*", "--limit", "1").code == 0
    assert state(home) == {"a/one": "mr-open"}
    assert run(capsys, "apply", str(campaign), "--only", "b/*").code == 0
    assert state(home) == {"a/one": "mr-open", "b/three": "mr-open"}


def test_repos_exclude_and_archived(
    tmp_path: Path, fleet: LocalFleet, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.add("platform/api", {"x.py": WARN})
    fleet.add("platform/legacy-x", {"x.py": WARN})
    archived = fleet.add("platform/old", {"x.py": WARN})
    subprocess.run(["git", "config", "fleetchange.archived", "true"], cwd=archived, check=True)
    fleet.add("edge/billing", {"x.py": WARN})
    fleet.add("edge/other", {"x.py": WARN})
    extra = 'repos = ["platform/*", "edge/billing"]\nexclude = ["platform/legacy-*"]\n'
    assert run(capsys, "apply", str(write_campaign(tmp_path, fleet, extra=extra))).code == 0
    assert state(home) == {
        "platform/api": "mr-open",
        "edge/billing": "mr-open",
        "platform/old": "skipped",
    }


def test_human_commit_on_branch_is_never_overwritten(
    tmp_path: Path, fleet: LocalFleet, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.add("team/a", {"a.py": WARN})
    campaign = write_campaign(tmp_path, fleet)
    assert run(capsys, "apply", str(campaign)).code == 0
    human = fleet.commit(
        "team/a", {"notes.txt": "mine\n"}, branch="fleetchange/logging-warn", message="human fix"
    )
    fleet.commit("team/a", {"new.py": "import logging\nlogging.warn('z')\n"})  # base moves

    assert run(capsys, "apply", str(campaign)).code == 0

    assert fleet.sha("team/a", BRANCH) == human
    assert state(home) == {"team/a": "diverged"}


def test_change_no_longer_needed_closes_the_mr(
    tmp_path: Path, fleet: LocalFleet, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.add("team/a", {"a.py": WARN})
    campaign = write_campaign(tmp_path, fleet)
    assert run(capsys, "apply", str(campaign)).code == 0
    fleet.commit("team/a", {"a.py": WARNED})  # fixed by hand upstream

    assert run(capsys, "apply", str(campaign)).code == 0

    forge = fleet.forge()
    (mr,) = forge.all_mrs()
    assert mr.state == "closed"
    assert "no longer needs this change" in forge.notes("team/a", 1)[0]
    assert state(home) == {"team/a": "closed"}


def test_merged_mr_is_reported_merged(
    tmp_path: Path, fleet: LocalFleet, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.add("team/a", {"a.py": WARN})
    campaign = write_campaign(tmp_path, fleet)
    assert run(capsys, "apply", str(campaign)).code == 0
    forge = fleet.forge()
    (mr,) = forge.all_mrs()
    repo = next(r for r in forge.list_repos() if r.name == "team/a")
    forge.merge_mr(repo, mr, sha=mr.head_sha or "")
    assert fleet.show("team/a", "refs/heads/main", "a.py") == WARNED.rstrip("\n")

    assert run(capsys, "apply", str(campaign)).code == 0

    assert state(home) == {"team/a": "merged"}
    assert len(forge.all_mrs()) == 1


def test_second_apply_of_same_campaign_is_refused_while_one_runs(
    tmp_path: Path, fleet: LocalFleet, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fleetchange.locking import campaign_lock

    fleet.add("team/a", {"a.py": WARN})
    campaign = write_campaign(tmp_path, fleet)
    with campaign_lock(home / "locks", "logging-warn"):
        result = run(capsys, "apply", str(campaign))
    assert result.code == 2
    assert "being applied by another fleetchange process" in result.err
    assert run(capsys, "apply", str(campaign)).code == 0  # the lock went with its holder


def test_status_json_shapes(
    tmp_path: Path, fleet: LocalFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.add("team/a", {"a.py": WARN})
    fleet.add("team/b", {"b.py": CLEAN})
    assert run(capsys, "apply", str(write_campaign(tmp_path, fleet))).code == 0

    one = run(capsys, "status", "logging-warn", "--json").json()
    assert one["campaign"] == "logging-warn"
    assert one["counts"] == {"mr-open": 1, "no-match": 1}
    assert [(r["repo"], r["state"], r["mr_url"]) for r in one["repos"]] == [
        ("team/a", "mr-open", "local:team/a!1"),
        ("team/b", "no-match", None),
    ]
    every = run(capsys, "status", "--json").json()
    assert isinstance(every, list) and every[0]["campaign"] == "logging-warn"
    table = run(capsys, "status", "logging-warn")
    assert "team/a" in table.out and "mr-open" in table.out
    listing = run(capsys, "campaigns", "--json").json()
    assert listing[0]["id"] == "logging-warn"
    unknown = run(capsys, "status", "nope")
    assert unknown.code == 2 and "unknown campaign 'nope'" in unknown.err


def test_toml_file_and_command_changes_in_order(
    tmp_path: Path, fleet: LocalFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    pyproject = '[project]\nname = "svc"\n# pinned for reasons\ndependencies = [\n    "requests>=2.0",  # http\n    "rich[jupyter]>=10; python_version >= \'3.8\'",\n]\n'
    fleet.add("team/a", {"pyproject.toml": pyproject})
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "agents.md").write_text(
        "# {repo}\n\nCampaign {campaign}, {{literal}}.\n"
    )
    changes = (
        '[[change]]\nkind = "toml"\nfile = "pyproject.toml"\n'
        'dependencies = {requests = ">=2.32", rich = ">=13"}\nset = {"tool.ruff.line-length" = 100}\n\n'
        '[[change]]\nkind = "file"\npath = "docs/{repo_name}.md"\ntemplate = "templates/agents.md"\n\n'
        '[[change]]\nkind = "command"\nrun = "cat docs/a.md > copy.txt"\n'
    )
    campaign = write_campaign(tmp_path, fleet, changes=changes)
    assert run(capsys, "apply", str(campaign)).code == 0
    new = fleet.show("team/a", BRANCH, "pyproject.toml")
    assert '    "requests>=2.32",  # http' in new
    assert "\"rich[jupyter]>=13; python_version >= '3.8'\"" in new
    assert "# pinned for reasons" in new
    assert "[tool.ruff]\nline-length = 100" in new
    assert (
        fleet.show("team/a", BRANCH, "docs/a.md") == "# team/a\n\nCampaign logging-warn, {literal}."
    )
    assert (
        fleet.show("team/a", BRANCH, "copy.txt") == "# team/a\n\nCampaign logging-warn, {literal}."
    )
