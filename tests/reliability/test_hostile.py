"""Hostile and broken repositories and environments: nothing leaks out, nothing crashes."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.cli import run
from tests.fleet import LocalFleet, campaign_toml, run_git

WARN = "import logging\nlogging.warn('x')\n"
BRANCH = "refs/heads/fleetchange/logging-warn"


def blob(fleet: LocalFleet, repo: str, path: str) -> bytes:
    return subprocess.run(
        ["git", "cat-file", "blob", f"{BRANCH}:{path}"],
        cwd=fleet.bare(repo),
        capture_output=True,
        check=True,
    ).stdout


def test_symlinks_out_of_the_repo_are_never_followed(
    tmp_path: Path, fleet: LocalFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.py"
    victim.write_text(WARN)
    fleet.add("evil/links", {"ok.py": WARN})
    work = fleet.scratch / "evil__links"
    os.symlink(victim, work / "link.py")  # a file symlink pointing outside
    os.symlink(outside, work / "docs")  # a directory symlink pointing outside
    run_git("add", "-A", cwd=work)
    run_git("commit", "-qm", "links", cwd=work)
    run_git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=work)
    changes = (
        '[[change]]\nkind = "libcst"\ncodemod = "codemods.logging_warn.ReplaceLoggingWarn"\n\n'
        '[[change]]\nkind = "file"\npath = "docs/victim.py"\ncontent = "pwned"\n'
    )
    campaign = tmp_path / "campaign.toml"
    campaign.write_text(campaign_toml(fleet.root, changes=changes))

    result = run(capsys, "apply", str(campaign))

    assert victim.read_text() == WARN  # untouched through either link
    assert sorted(p.name for p in outside.iterdir()) == ["victim.py"]
    status = run(capsys, "status", "logging-warn", "--json").json()
    (repo,) = status["repos"]
    assert repo["state"] == "error" and "refusing to follow symlink docs" in repo["reason"]
    assert result.code == 1


def test_crlf_binary_submodule_and_filters_survive(
    tmp_path: Path, fleet: LocalFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    big = b"import logging\n" + ("# filler line to make the file large\n" * 60000).encode()  # ~2 MB
    fleet.add(
        "odd/mixed",
        {
            "crlf.py": b"import logging\r\nlogging.warn('x')\r\n",
            "big.py": big + b"logging.warn('big')\n",
            "image.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64,
            ".gitattributes": "*.py filter=evil\n",
        },
    )
    sub = fleet.add("odd/sub", {"s.py": WARN})
    work = fleet.scratch / "odd__mixed"
    run_git(
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "-q",
        sub.as_uri(),
        "vendor/sub",
        cwd=work,
    )
    run_git("commit", "-qm", "submodule", cwd=work)
    run_git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=work)
    marker = tmp_path / "filter-ran"
    # a hostile clean/smudge filter in the user's global config must never run
    global_config = tmp_path / "gitconfig"
    global_config.write_text(
        f'[filter "evil"]\n\tclean = touch {marker}; cat\n\tsmudge = touch {marker}; cat\n'
    )
    os.environ["GIT_CONFIG_GLOBAL"] = str(global_config)
    try:
        campaign = tmp_path / "campaign.toml"
        campaign.write_text(campaign_toml(fleet.root, extra='repos = ["odd/mixed"]\n'))
        result = run(capsys, "apply", str(campaign))
    finally:
        os.environ["GIT_CONFIG_GLOBAL"] = os.devnull
    assert result.code == 0, result.err
    assert blob(fleet, "odd/mixed", "crlf.py") == b"import logging\r\nlogging.warning('x')\r\n"
    assert blob(fleet, "odd/mixed", "big.py") == big + b"logging.warning('big')\n"
    assert blob(fleet, "odd/mixed", "image.png") == b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64
    tree = run_git("ls-tree", BRANCH, "vendor/sub", cwd=fleet.bare("odd/mixed"))
    assert tree.startswith("160000 commit")  # the submodule pointer is untouched
    assert not marker.exists()


def test_hooks_from_global_config_and_repo_never_run(
    tmp_path: Path, fleet: LocalFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "hook-ran"
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    for name in ("pre-commit", "post-checkout", "pre-push", "reference-transaction", "post-commit"):
        hook = hooks / name
        hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
        hook.chmod(0o755)
    global_config = tmp_path / "gitconfig"
    global_config.write_text(f"[core]\n\thooksPath = {hooks}\n")
    fleet.add("team/a", {"m.py": WARN})
    campaign = tmp_path / "campaign.toml"
    campaign.write_text(campaign_toml(fleet.root))
    os.environ["GIT_CONFIG_GLOBAL"] = str(global_config)
    try:
        result = run(capsys, "apply", str(campaign))
    finally:
        os.environ["GIT_CONFIG_GLOBAL"] = os.devnull
    assert result.code == 0, result.err
    assert fleet.sha("team/a", BRANCH) is not None
    assert not marker.exists()


def test_workspaces_are_owner_only_and_removed(
    tmp_path: Path, fleet: LocalFleet, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.add("team/a", {"m.py": WARN})
    campaign = tmp_path / "campaign.toml"
    probe = tmp_path / "mode"
    campaign.write_text(campaign_toml(fleet.root, test=f"stat -c %a . > {probe}"))
    assert run(capsys, "apply", str(campaign)).code == 0
    assert int(probe.read_text().strip(), 8) == 0o700  # the workspace, seen from its test command
    assert stat.S_IMODE((home / "work").stat().st_mode) == 0o700
    assert not any((home / "work" / "logging-warn").iterdir())


def test_unwritable_home_fails_fast_before_any_push(
    tmp_path: Path,
    fleet: LocalFleet,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if os.geteuid() == 0:
        # root ignores permission bits: make the home a file instead, which nobody can write into
        blocked = tmp_path / "home-is-a-file"
        blocked.write_text("")
    else:
        blocked = tmp_path / "readonly"
        blocked.mkdir(mode=0o500)
    monkeypatch.setenv("FLEETCHANGE_HOME", str(blocked / "sub" if os.geteuid() != 0 else blocked))
    fleet.add("team/a", {"m.py": WARN})
    campaign = tmp_path / "campaign.toml"
    campaign.write_text(campaign_toml(fleet.root))
    result = run(capsys, "apply", str(campaign))
    assert result.code == 2
    assert (
        result.err.startswith("fleetchange: FLEETCHANGE_HOME ") and "is not writable" in result.err
    )
    assert len(result.err.strip().splitlines()) == 1
    assert fleet.sha("team/a", BRANCH) is None
