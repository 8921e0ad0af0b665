"""verify (the code's state, not the MR's), import (adopt others' MRs) and nudge (stale MRs)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from fleetchange.forges.base import MRSpec
from tests.cli import run
from tests.fleet import LocalFleet, campaign_toml

WARN = "import logging\n\n\ndef f():\n    logging.warn('x')\n"
FIXED = "import logging\n\n\ndef f():\n    logging.warning('x')\n"


def apply(tmp_path: Path, fleet: LocalFleet, capsys: pytest.CaptureFixture[str], **kw: str) -> Path:
    campaign = tmp_path / "campaign.toml"
    campaign.write_text(campaign_toml(fleet.root, **kw))
    assert run(capsys, "apply", str(campaign)).code == 0
    return campaign


def test_verify_finds_reverted_and_unreached_repos(
    tmp_path: Path, fleet: LocalFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("team/merged-clean", "team/reverted", "team/open"):
        fleet.add(name, {"m.py": WARN})
    fleet.add("team/clean", {"m.py": FIXED})
    apply(tmp_path, fleet, capsys)
    forge = fleet.forge()
    repos = {r.name: r for r in forge.list_repos()}
    for mr in forge.all_mrs():
        name = mr.url.removeprefix("local:").split("!")[0]
        if name in ("team/merged-clean", "team/reverted"):
            forge.merge_mr(repos[name], mr, sha=mr.head_sha or "")
    assert run(capsys, "sync", "logging-warn").code == 0
    fleet.commit("team/reverted", {"m.py": WARN}, message="Revert the fleetchange change")
    fleet.add("team/late", {"new.py": WARN})  # created after the campaign ran

    result = run(capsys, "verify", "logging-warn", "--json")

    assert result.code == 1
    report = result.json()
    assert report["scanned"] == 5 and report["clean"] == 2
    remaining = {r["repo"]: (r["state"], r["verdict"], r["files"]) for r in report["remaining"]}
    assert remaining == {
        "team/late": (None, "never reached by the campaign", ["new.py"]),
        "team/open": ("mr-open", "MR still open", ["m.py"]),
        "team/reverted": (
            "merged",
            "merged but the pattern is back (reverted or re-introduced)",
            ["m.py"],
        ),
    }
    table = run(capsys, "verify", "logging-warn")
    assert "scanned 5 default branches; 2 clean, 3 still carry the pattern" in table.out


def test_verify_needs_a_pattern(
    tmp_path: Path, fleet: LocalFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.add("team/a", {"m.py": WARN})
    changes = '[[change]]\nkind = "file"\npath = "NOTICE"\ncontent = "hi"\n'
    apply(tmp_path, fleet, capsys, changes=changes)
    result = run(capsys, "verify", "logging-warn")
    assert result.code == 2
    assert "has no contains or grep pattern" in result.err


def test_import_adopts_existing_mrs_and_apply_leaves_them(
    tmp_path: Path, fleet: LocalFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.add("team/a", {"m.py": WARN})
    fleet.add("team/b", {"m.py": WARN})
    fleet.commit("team/a", {"m.py": FIXED}, branch="someone/fix-warn")
    forge = fleet.forge()
    repo_a = next(r for r in forge.list_repos() if r.name == "team/a")
    forge.create_mr(repo_a, MRSpec("someone/fix-warn", "main", "Fix warn by hand", "by hand"))
    campaign = tmp_path / "campaign.toml"
    campaign.write_text(campaign_toml(fleet.root))

    result = run(capsys, "import", str(campaign), "--branch", "someone/fix-warn")
    assert result.code == 0, result.err
    assert "imported 1 merge request(s) on branch someone/fix-warn" in result.out
    again = run(capsys, "import", "logging-warn", "--branch", "someone/fix-warn")
    assert "imported 0 merge request(s)" in again.out and "1 already tracked" in again.out

    assert run(capsys, "apply", str(campaign)).code == 0
    status = run(capsys, "status", "logging-warn", "--json").json()
    assert {r["repo"]: (r["state"], r["mr_url"]) for r in status["repos"]} == {
        "team/a": ("mr-open", "local:team/a!1"),
        "team/b": ("mr-open", "local:team/b!1"),
    }
    assert len(forge.all_mrs()) == 2  # no second MR for the adopted repo


def test_nudge_comments_once_per_interval(
    tmp_path: Path, fleet: LocalFleet, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.add("team/old", {"m.py": WARN})
    fleet.add("team/new", {"m.py": WARN})
    apply(tmp_path, fleet, capsys)
    db = sqlite3.connect(home / "state.sqlite3")
    ten_days_ago = time.time() - 10 * 86400
    db.execute("UPDATE events SET at = ? WHERE repo = 'team/old'", (ten_days_ago,))
    db.commit()
    db.close()

    dry = run(capsys, "nudge", "logging-warn", "--older-than", "7d", "--dry-run")
    assert "team/old: would be nudged (open 10d 0h)" in dry.out
    assert fleet.forge().notes("team/old", 1) == []

    first = run(capsys, "nudge", "logging-warn", "--older-than", "7d")
    assert first.code == 0
    assert "1 stale merge request(s)" in first.out
    notes = fleet.forge().notes("team/old", 1)
    assert len(notes) == 1 and "open for 10d 0h" in notes[0]
    assert fleet.forge().notes("team/new", 1) == []

    second = run(capsys, "nudge", "logging-warn", "--older-than", "7d")
    assert "0 stale merge request(s)" in second.out
    assert len(fleet.forge().notes("team/old", 1)) == 1

    bad = run(capsys, "nudge", "logging-warn", "--older-than", "soon")
    assert bad.code == 2 and "expected a number and a unit" in bad.err
