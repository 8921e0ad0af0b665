"""The quickstart's `fleetchange demo`, twice, as a new user runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetchange.demo import demo_campaign_text
from fleetchange.forges.local import LocalForge
from tests.cli import run

ROOT = Path(__file__).resolve().parents[2]


def test_packaged_demo_campaign_matches_campaigns_folder() -> None:
    assert (ROOT / "campaigns" / "demo.toml").read_text() == demo_campaign_text()


def test_demo_opens_mrs_and_is_safe_to_rerun(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = run(capsys, "demo")
    assert first.code == 0, first.err
    assert "Built the demo fleet: 24 repositories" in first.err

    status = run(capsys, "status", "demo", "--json").json()
    counts = status["counts"]
    assert counts["mr-open"] >= 12
    assert counts.get("error", 0) == 0 and counts.get("test-failed", 0) == 0
    assert counts["skipped"] == 2  # the archived and the empty repo
    opened = [r for r in status["repos"] if r["state"] == "mr-open"]
    assert all(r["mr_url"].startswith("local:") for r in opened)
    forge = LocalForge(home / "demo" / "fleet")
    mrs_before = [(m.url, m.head_sha) for m in forge.all_mrs()]
    search = next(r for r in status["repos"] if r["repo"] == "platform/search")
    assert search["state"] == "mr-open"  # its unparsable module is listed, not fatal
    body = next(m.body for m in forge.all_mrs() if m.url == search["mr_url"])
    assert "broken_template.py: does not parse" in body

    second = run(capsys, "demo")
    assert second.code == 0, second.err
    assert "Using the demo fleet" in second.err
    assert [(m.url, m.head_sha) for m in forge.all_mrs()] == mrs_before
    assert run(capsys, "status", "demo", "--json").json()["counts"] == counts

    # the file in campaigns/ works as-is against the demo fleet too
    again = run(capsys, "apply", str(ROOT / "campaigns" / "demo.toml"))
    assert again.code == 0, again.err
    assert [(m.url, m.head_sha) for m in forge.all_mrs()] == mrs_before
