"""The HTML report in a real browser: headless Chromium renders the chart, the table, the sort.

``--dump-dom`` prints the DOM after the page's script ran; ``--enable-logging=stderr``
prints the page's console, where Chromium reports every resource the
Content-Security-Policy blocked and every script error: there must be none.
``#sort=COLUMN`` in the URL sorts on load (the same code a header click runs).
Skipped when Chromium is not installed (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

from fleetchange.report import HOUR, Point, render_html
from fleetchange.state import CampaignRecord, RepoRecord
from tests.cli import run
from tests.report.dom import Page

TIMEOUT = 60  # seconds per browser run; one normally takes 1-2 s


@pytest.fixture
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("headless Chromium is not installed (Debian: apt-get install -y chromium)")


def browse(chromium: str, url: str, tmp: Path, *extra: str) -> str:
    """Load ``url`` in a fresh headless profile; stdout, after checking the page's console."""
    profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=tmp))
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        *extra,
        url,
    ]
    env = {**os.environ, "HOME": str(profile)}
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # the browser's helpers die with it on a timeout
    ) as browser:
        try:
            out, err = browser.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(browser.pid, signal.SIGKILL)
            browser.communicate()
            pytest.fail(f"chromium did not finish within {TIMEOUT}s: {url}")
    assert browser.returncode == 0, err[-2000:]
    console = [line for line in err.splitlines() if ":CONSOLE" in line]
    assert console == [], "the page logged (CSP violation or script error):\n" + "\n".join(console)
    return out


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_report_renders_in_chromium(
    chromium: str, merged_two: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    html = tmp_path / "out.html"
    result = run(capsys, "report", "logging-warn", "--html", str(html))
    assert result.code == 0, result.err
    url = html.as_uri()

    page = Page(browse(chromium, url, tmp_path, "--dump-dom"))
    assert page.table.get("data-ready") == "yes"  # the script ran under the page's CSP
    lines = page.polylines()
    assert set(lines) == {"open", "merged"}
    assert all(len(points.split()) >= 2 for points in lines.values())
    assert page.repos() == ["team/b", "team/d", "team/a", "team/c", "team/clean"]
    assert [row[1] for row in page.rows] == ["mr-open", "mr-open", "merged", "merged", "no-match"]

    by_name = Page(browse(chromium, url + "#sort=repo", tmp_path, "--dump-dom"))
    assert by_name.repos() == ["team/a", "team/b", "team/c", "team/clean", "team/d"]
    assert by_name.table.get("data-sorted") == "repo"

    # numeric sort on the state's rank, descending; ties keep their previous order
    by_state = Page(browse(chromium, url + "#sort=-state", tmp_path, "--dump-dom"))
    assert by_state.repos() == ["team/clean", "team/a", "team/c", "team/b", "team/d"]
    sorted_heads = [(a["data-key"], a.get("aria-sort")) for t, a in by_state.tags if t == "th"]
    assert ("state", "descending") in sorted_heads
    assert [s for _, s in sorted_heads if s] == ["descending"]

    shot = tmp_path / "shot.png"
    browse(chromium, url, tmp_path, f"--screenshot={shot}", "--window-size=1200,900")
    assert png_size(shot) == (1200, 900)
    assert shot.stat().st_size > 15_000  # a blank page compresses to a few kB


def test_age_sort_and_injected_markup_in_chromium(chromium: str, tmp_path: Path) -> None:
    now = 1_700_000_000.0
    campaign = CampaignRecord(
        "c", "<script>alert(1)</script>", "c.toml", "v", "gitlab", "b", now - HOUR, now
    )
    names = ["old", "new", "never", "<img src=x onerror=alert(1)>", "mid"]
    records = [
        RepoRecord("c", name, "mr-open", reason="</td><script>alert(2)</script>") for name in names
    ]
    opened = {"old": now - 3 * 86400, "new": now - 60, "mid": now - 5 * HOUR}
    opened["<img src=x onerror=alert(1)>"] = now - 2 * HOUR
    points = [Point(now - HOUR, 0, 0, 0), Point(now, 4, 0, 0)]
    html = tmp_path / "ages.html"
    html.write_text(render_html(campaign, {"mr-open": 5}, records, points, now, opened=opened))
    url = html.as_uri()

    ascending = Page(browse(chromium, url + "#sort=age", tmp_path, "--dump-dom"))
    assert ascending.repos() == ["new", "<img src=x onerror=alert(1)>", "mid", "old", "never"]
    assert [row[5] for row in ascending.rows] == ["1m", "2h 0m", "5h 0m", "3d 0h", ""]
    descending = Page(browse(chromium, url + "#sort=-age", tmp_path, "--dump-dom"))
    assert descending.repos() == ["old", "mid", "<img src=x onerror=alert(1)>", "new", "never"]
    # the markup in names, reasons and the title stayed text: one script (ours), no image
    assert descending.count("script") == 1 and descending.count("img") == 0
    assert {row[6] for row in descending.rows} == {"</td><script>alert(2)</script>"}
