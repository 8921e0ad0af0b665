"""`fleetchange report` and the burndown in `fleetchange status`, through the real CLI."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.cli import run
from tests.report.dom import Page


def test_report_writes_the_page_atomically(
    merged_two: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()
    out.write_text("old")
    result = run(capsys, "report", "logging-warn", "--html", str(out))
    assert result.code == 0, result.err
    assert result.out.strip() == f"wrote {out}"
    assert os.listdir(out.parent) == ["report.html"]  # no temp file left behind
    mode = stat.S_IMODE(out.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
    page = Page(out.read_text(encoding="utf-8"))
    assert page.repos() == ["team/b", "team/d", "team/a", "team/c", "team/clean"]
    by_repo = {row[0]: row for row in page.rows}
    assert by_repo["team/a"][1:5] == ["merged", "local:team/a!1", "success", "yes"]
    assert by_repo["team/d"][1:5] == ["mr-open", "local:team/d!1", "failed", "yes"]
    assert by_repo["team/clean"][1] == "no-match"
    assert by_repo["team/b"][5].endswith("s") and by_repo["team/clean"][5] == ""
    assert set(page.polylines()) == {"open", "merged"}


def test_report_json_is_the_burndown(
    merged_two: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(capsys, "report", "logging-warn", "--json")
    assert result.code == 0, result.err
    payload = result.json()
    assert payload["campaign"] == "logging-warn" and payload["html"] is None
    last = payload["points"][-1]
    assert (last["open"], last["merged"], last["closed"]) == (2, 2, 0)
    assert set(last) == {"at", "time", "open", "merged", "closed"}
    assert last["time"].endswith("+00:00")
    assert len(payload["points"]) >= 2
    out = tmp_path / "r.html"
    both = run(capsys, "report", "logging-warn", "--json", "--html", str(out))
    assert both.code == 0 and both.json()["html"] == str(out) and out.is_file()


def test_status_shows_the_burndown(merged_two: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "status", "logging-warn")
    assert result.code == 0, result.err
    tail = result.out.splitlines()[-3:]
    assert tail[0].startswith("burndown ") and tail[0].endswith(" UTC")
    assert tail[1].split()[0] == "open" and tail[1].split()[-1] == "2"
    assert tail[2].split()[0] == "merged" and tail[2].split()[-1] == "2"


def test_status_without_mrs_has_no_burndown(
    tmp_path: Path, fleet: object, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.fleet import LocalFleet, campaign_toml

    assert isinstance(fleet, LocalFleet)
    fleet.add("team/clean", {"m.py": "x = 1\n"})
    campaign = tmp_path / "campaign.toml"
    campaign.write_text(campaign_toml(fleet.root))
    assert run(capsys, "apply", str(campaign)).code == 0
    result = run(capsys, "status", "logging-warn")
    assert result.code == 0 and "burndown" not in result.out


def test_report_usage_errors(
    merged_two: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unknown = run(capsys, "report", "nope", "--html", str(tmp_path / "x.html"))
    assert unknown.code == 2
    assert unknown.err == "fleetchange: unknown campaign 'nope' (known: logging-warn)\n"
    assert not (tmp_path / "x.html").exists()

    nothing = run(capsys, "report", "logging-warn")
    assert nothing.code == 2
    assert nothing.err == "fleetchange: nothing to report: give --html PATH and/or --json\n"

    missing = tmp_path / "no" / "such" / "dir" / "r.html"
    no_dir = run(capsys, "report", "logging-warn", "--html", str(missing))
    assert no_dir.code == 2
    assert no_dir.err.startswith(f"fleetchange: cannot write {missing}: ")
    assert len(no_dir.err.splitlines()) == 1

    a_dir = run(capsys, "report", "logging-warn", "--html", str(tmp_path))
    assert a_dir.code == 2 and a_dir.err == f"fleetchange: --html: {tmp_path} is a directory\n"


def test_report_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "report", "--help")
    assert result.code == 0
    assert "--html" in result.out and "--json" in result.out and "campaign_id" in result.out.lower()
    assert "self-contained HTML page" in result.out and "burndown points as JSON" in result.out
