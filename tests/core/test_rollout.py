"""Rollout pacing: waves, max_open, per_hour and the window, across repeated applies."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from fleetchange.rollout import Rollout, in_window, wave_caps
from tests.cli import run
from tests.fleet import LocalFleet, campaign_toml

WARN = "import logging\n\n\ndef f():\n    logging.warn('x')\n"


def counts(capsys: pytest.CaptureFixture[str]) -> dict[str, int]:
    return dict(run(capsys, "status", "logging-warn", "--json").json()["counts"])


def merge_open(
    fleet: LocalFleet, capsys: pytest.CaptureFixture[str], limit: int | None = None
) -> int:
    forge = fleet.forge()
    repos = {r.name: r for r in forge.list_repos()}
    merged = 0
    for mr in forge.all_mrs():
        if mr.state == "open" and (limit is None or merged < limit):
            forge.merge_mr(
                repos[mr.url.removeprefix("local:").split("!")[0]], mr, sha=mr.head_sha or ""
            )
            merged += 1
    assert run(capsys, "sync", "logging-warn").code == 0
    return merged


def open_mrs(fleet: LocalFleet) -> int:
    return sum(m.state == "open" for m in fleet.forge().all_mrs())


def test_waves_and_max_open(
    tmp_path: Path, fleet: LocalFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    for index in range(60):
        fleet.add(f"g{index % 4}/r{index:02d}", {"m.py": WARN})
    campaign = tmp_path / "campaign.toml"
    rollout = '[rollout]\nwaves = [5, 20, "100%"]\nmax_open = 15\n'
    campaign.write_text(campaign_toml(fleet.root) + rollout)

    first = run(capsys, "apply", str(campaign))
    assert first.code == 0, first.err
    assert "55 repo(s) wait: wave 1 of 3 is full" in first.err
    assert counts(capsys) == {"mr-open": 5, "pending": 55}

    # the canary is not merged yet: nothing moves
    assert run(capsys, "apply", str(campaign)).code == 0
    assert counts(capsys) == {"mr-open": 5, "pending": 55}

    merge_open(fleet, capsys, limit=4)  # 80% of the canary merged: promote
    assert run(capsys, "apply", str(campaign)).code == 0
    assert open_mrs(fleet) == 15  # wave 2 allows 20 more, max_open only 14 more
    assert counts(capsys) == {"merged": 4, "mr-open": 15, "pending": 41}

    history = [open_mrs(fleet)]
    for _ in range(12):
        if counts(capsys).get("pending", 0) == 0 and open_mrs(fleet) == 0:
            break
        merge_open(fleet, capsys)
        assert run(capsys, "apply", str(campaign)).code == 0
        history.append(open_mrs(fleet))
        assert max(history) <= 15
    assert counts(capsys) == {"merged": 60} or counts(capsys) == {"merged": 45, "mr-open": 15}
    merge_open(fleet, capsys)
    assert counts(capsys) == {"merged": 60}
    assert len(fleet.forge().all_mrs()) == 60  # one MR per repo, never a second


def test_next_wave_forces_promotion_and_per_hour(
    tmp_path: Path, fleet: LocalFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    for index in range(12):
        fleet.add(f"g/r{index:02d}", {"m.py": WARN})
    campaign = tmp_path / "campaign.toml"
    campaign.write_text(
        campaign_toml(fleet.root) + '[rollout]\nwaves = [2, "100%"]\nper_hour = 6\n'
    )

    assert run(capsys, "apply", str(campaign)).code == 0
    assert counts(capsys)["mr-open"] == 2
    forced = run(capsys, "apply", str(campaign), "--next-wave")
    assert forced.code == 0
    assert counts(capsys)["mr-open"] == 6  # wave 2 is open, but only 6 new MRs per clock hour
    assert "per_hour = 6 reached" in forced.err


def test_wave_caps_and_window() -> None:
    assert wave_caps([5, 20, "100%"], 60) == [5, 25, 60]
    assert wave_caps([10, "50%", "100%"], 10) == [10, 10, 10]
    assert wave_caps(["10%", "100%"], 95) == [10, 95]
    rollout = Rollout(window="09:00-17:00", days=("mon", "tue", "wed", "thu", "fri"))
    monday_ten = dt.datetime(2026, 12, 7, 10, 0)
    assert in_window(rollout, monday_ten)
    assert not in_window(rollout, monday_ten.replace(hour=17))
    assert not in_window(rollout, dt.datetime(2026, 12, 5, 10, 0))  # a Saturday


def test_bad_rollout_tables(
    tmp_path: Path, fleet: LocalFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = {
        "waves = [0]": "wave sizes must be at least 1",
        'waves = ["150%"]': 'percentages are written like "25%"',
        'promote_when = "merged > lots"': "cannot read 'merged > lots'",
        'window = "9-5"': 'expected a local time range like "09:00-17:00"',
        'days = ["caturday"]': "unknown day 'caturday'",
        "max_open = 0": "must be between 1 and",
    }
    for line, message in cases.items():
        campaign = tmp_path / "campaign.toml"
        campaign.write_text(campaign_toml(fleet.root) + f"[rollout]\n{line}\n")
        result = run(capsys, "apply", str(campaign))
        assert result.code == 2, line
        assert message in result.err and "[rollout]" in result.err, result.err
