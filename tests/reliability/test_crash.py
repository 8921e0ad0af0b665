"""SIGKILL `fleetchange apply` at chosen points, re-run it, and compare with an uninterrupted run.

The kill points (``fleetchange/killpoints.py``) sit between every pair of side
effects a crash could split: after a clone, after the worktree, after the
commit, between the push and the MR, right after the forge created the MR but
before fleetchange recorded it, and inside the state transaction.  Each is hit
early, in the middle and late in a 50-repo campaign.  After the re-run, every
changed repo must have exactly one open MR whose branch holds the same tree as
in the uninterrupted run, every repo the same state, and each repo's event
history must end in its recorded state.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fleet import LocalFleet, campaign_toml

REPOS = 50
CHANGED = REPOS // 2
BRANCH = "refs/heads/fleetchange/logging-warn"
KILL_POINTS = [
    "cloned:1",
    "cloned:13",
    "cloned:40",
    "worktree:1",
    "worktree:9",
    "worktree:22",
    "committed:2",
    "committed:15",
    "pushed:1",
    "pushed:6",
    "pushed:18",
    "pushed:25",
    "mr-created:1",
    "mr-created:8",
    "mr-created:25",
    "mr:3",
    "mr:20",
    "state-write:1",
    "state-write:12",
    "state-write:31",
    "state-write:50",
]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    fleet = LocalFleet(tmp_path_factory.mktemp("pristine") / "forge")
    for index in range(REPOS):
        body = "logging.warn('x')" if index % 2 == 0 else "logging.warning('x')"
        fleet.add(
            f"g{index % 5}/repo{index:02d}", {"m.py": f"import logging\n\n\ndef f():\n    {body}\n"}
        )
    return fleet.root


def scenario(tmp_path: Path, pristine: Path) -> tuple[Path, Path, dict[str, str]]:
    forge = tmp_path / "forge"
    shutil.copytree(pristine, forge, symlinks=True)
    campaign = tmp_path / "campaign.toml"
    campaign.write_text(campaign_toml(forge))
    env = {**os.environ, "FLEETCHANGE_HOME": str(tmp_path / "home")}
    env.pop("FLEETCHANGE_KILL_AT", None)
    return forge, campaign, env


def apply(campaign: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleetchange", "apply", str(campaign), "--jobs", "8"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def outcome(forge: Path, home: Path) -> dict[str, object]:
    """Everything that must be the same after a crash and re-run as after one clean run."""
    db = sqlite3.connect(home / "state.sqlite3")
    states = dict(
        db.execute("SELECT repo, state FROM repos WHERE campaign = 'logging-warn'").fetchall()
    )
    last_events = dict(
        db.execute(
            "SELECT repo, state FROM events WHERE id IN (SELECT MAX(id) FROM events GROUP BY repo)"
        ).fetchall()
    )
    db.close()
    mrs = (
        sqlite3.connect(forge / ".forge.sqlite3")
        .execute("SELECT repo, COUNT(*), SUM(state = 'open') FROM merge_requests GROUP BY repo")
        .fetchall()
    )
    trees = {}
    for repo in sorted(states):
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "-q", f"{BRANCH}^{{tree}}"],
            cwd=forge / f"{repo}.git",
            capture_output=True,
            text=True,
        )
        trees[repo] = done.stdout.strip() or None
    return {"states": states, "last_events": last_events, "mrs": sorted(mrs), "trees": trees}


@pytest.fixture(scope="module")
def baseline(pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    forge, campaign, env = scenario(tmp_path_factory.mktemp("baseline"), pristine)
    done = apply(campaign, env)
    assert done.returncode == 0, done.stderr
    result = outcome(forge, Path(env["FLEETCHANGE_HOME"]))
    states = result["states"]
    assert isinstance(states, dict)
    assert list(states.values()).count("mr-open") == CHANGED
    return result


@pytest.mark.parametrize("point", KILL_POINTS)
def test_killed_run_converges_on_rerun(
    point: str, tmp_path: Path, pristine: Path, baseline: dict[str, object]
) -> None:
    forge, campaign, env = scenario(tmp_path, pristine)

    killed = apply(campaign, {**env, "FLEETCHANGE_KILL_AT": point})
    assert killed.returncode == -9, f"{point} was never reached: {killed.stderr[-500:]}"

    rerun = apply(campaign, env)
    assert rerun.returncode == 0, rerun.stderr

    result = outcome(forge, Path(env["FLEETCHANGE_HOME"]))
    assert result["states"] == baseline["states"]
    assert result["mrs"] == baseline["mrs"]  # exactly one MR per changed repo, open
    assert result["trees"] == baseline["trees"]
    assert result["last_events"] == result["states"]
    # and the lock the killed run held did not outlive it; no workspace is left behind
    assert not any((Path(env["FLEETCHANGE_HOME"]) / "work" / "logging-warn").glob("*"))
