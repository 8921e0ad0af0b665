"""A campaign applied to four repos of the local forge, two of its MRs merged."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import run
from tests.fleet import LocalFleet, campaign_toml

WARN = "import logging\n\n\ndef f():\n    logging.warn('x')\n"
REPOS = ("team/a", "team/b", "team/c", "team/d")


@pytest.fixture
def merged_two(tmp_path: Path, fleet: LocalFleet, capsys: pytest.CaptureFixture[str]) -> Path:
    """a and c merged (approved, green), b and d still open; returns the campaign file."""
    for name in REPOS:
        fleet.add(name, {"m.py": WARN})
    fleet.add("team/clean", {"m.py": "x = 1\n"})
    campaign = tmp_path / "campaign.toml"
    campaign.write_text(campaign_toml(fleet.root))
    applied = run(capsys, "apply", str(campaign))
    assert applied.code == 0, applied.err
    forge = fleet.forge()
    forge.approve("team/a", 1, pipeline="success")
    forge.approve("team/c", 1, pipeline="success")
    forge.approve("team/d", 1, pipeline="failed")
    merged = run(capsys, "merge", "logging-warn")
    assert merged.code == 0, merged.err
    return campaign
