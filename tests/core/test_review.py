"""sync, merge and close on the local forge: the review lifecycle after `apply`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import run
from tests.fleet import LocalFleet, campaign_toml

WARN = "import logging\n\n\ndef f():\n    logging.warn('x')\n"


@pytest.fixture
def applied(tmp_path: Path, fleet: LocalFleet, capsys: pytest.CaptureFixture[str]) -> Path:
    for name in ("team/a", "team/b", "team/c", "team/d"):
        fleet.add(name, {"m.py": WARN})
    campaign = tmp_path / "campaign.toml"
    campaign.write_text(campaign_toml(fleet.root))
    assert run(capsys, "apply", str(campaign)).code == 0
    return campaign


def states(capsys: pytest.CaptureFixture[str]) -> dict[str, tuple[str, str | None, bool | None]]:
    status = run(capsys, "status", "logging-warn", "--json").json()
    return {r["repo"]: (r["state"], r["pipeline"], r["approved"]) for r in status["repos"]}


def test_sync_records_pipeline_approval_and_merges(
    applied: Path, fleet: LocalFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    forge = fleet.forge()
    forge.approve("team/a", 1, pipeline="success")
    forge.approve("team/b", 1, pipeline="failed")
    repo_c = next(r for r in forge.list_repos() if r.name == "team/c")
    (mr_c,) = [m for m in forge.all_mrs() if m.url == "local:team/c!1"]
    forge.merge_mr(repo_c, mr_c, sha=mr_c.head_sha or "")

    result = run(capsys, "sync", "logging-warn")

    assert result.code == 0, result.err
    assert "synced 4 merge requests, 3 changed, 0 failed" in result.err
    assert states(capsys) == {
        "team/a": ("mr-open", "success", True),
        "team/b": ("mr-open", "failed", True),
        "team/c": ("merged", None, False),
        "team/d": ("mr-open", None, False),
    }
    again = run(capsys, "sync", "logging-warn")
    assert "0 changed" in again.err  # nothing new: no events


def test_merge_only_merges_approved_and_green(
    applied: Path, fleet: LocalFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    forge = fleet.forge()
    forge.approve("team/a", 1, pipeline="success")
    forge.approve("team/b", 1, pipeline="failed")
    forge.approve("team/c", 1, pipeline=None)

    dry = run(capsys, "merge", "logging-warn", "--dry-run")
    assert dry.code == 0
    assert "would merge" in dry.out and "pipeline is failed" in dry.out
    assert "pipeline is missing" in dry.out and "is not approved" in dry.out
    assert {m.url: m.state for m in forge.all_mrs()}["local:team/a!1"] == "open"

    done = run(capsys, "merge", "logging-warn")
    assert done.code == 0, done.err
    merged = {m.url: m.state for m in forge.all_mrs()}
    assert merged == {
        "local:team/a!1": "merged",
        "local:team/b!1": "open",
        "local:team/c!1": "open",
        "local:team/d!1": "open",
    }
    assert "logging.warning('x')" in fleet.show("team/a", "refs/heads/main", "m.py")
    assert states(capsys)["team/a"][0] == "merged"

    with_no_ci = run(capsys, "merge", "logging-warn", "--allow-no-pipeline")
    assert with_no_ci.code == 0
    assert {m.url: m.state for m in forge.all_mrs()}["local:team/c!1"] == "merged"

    # merged repos stay merged on re-apply: no new MR for them
    assert run(capsys, "apply", str(applied)).code == 0
    assert len(forge.all_mrs()) == 4


def test_merge_refuses_when_head_moved(
    applied: Path, fleet: LocalFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    forge = fleet.forge()
    forge.approve("team/a", 1, pipeline="success")
    repo = next(r for r in forge.list_repos() if r.name == "team/a")
    (mr,) = [m for m in forge.all_mrs() if m.url == "local:team/a!1"]
    from fleetchange.forges.base import ForgeError

    with pytest.raises(ForgeError, match="head moved"):
        forge.merge_mr(repo, mr, sha="0" * 40)


def test_close_comments_deletes_branches_and_sticks(
    applied: Path, fleet: LocalFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(
        capsys, "close", "logging-warn", "--repo", "team/[ab]", "--reason", "superseded by v2"
    )
    assert result.code == 0, result.err
    assert "closed 2 merge request(s)" in result.out
    forge = fleet.forge()
    assert {m.url: m.state for m in forge.all_mrs()} == {
        "local:team/a!1": "closed",
        "local:team/b!1": "closed",
        "local:team/c!1": "open",
        "local:team/d!1": "open",
    }
    assert forge.notes("team/a", 1) == [
        "Closed by fleetchange (campaign `logging-warn`): superseded by v2"
    ]
    assert fleet.sha("team/a", "refs/heads/fleetchange/logging-warn") is None
    assert states(capsys)["team/a"][0] == "closed"
    # a re-apply of the same campaign does not reopen what was closed
    assert run(capsys, "apply", str(applied)).code == 0
    assert len(forge.all_mrs()) == 4
    assert fleet.sha("team/a", "refs/heads/fleetchange/logging-warn") is None


def test_review_commands_reject_unknown_campaign(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (("sync", "nope"), ("merge", "nope"), ("close", "nope", "--reason", "x")):
        result = run(capsys, *args)
        assert result.code == 2
        assert result.err.strip() == "fleetchange: unknown campaign 'nope' (known: none yet)"
