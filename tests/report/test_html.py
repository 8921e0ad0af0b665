"""The HTML page: self-contained, escaped, links only for http(s), a row per repo, a chart."""

from __future__ import annotations

import re

import pytest

from fleetchange.report import CSP, HOUR, Point, is_web_url, render_html, render_svg, time_ticks
from fleetchange.state import CampaignRecord, RepoRecord
from tests.report.dom import Page

NOW = 1_700_000_000.0
EVIL = "<script>alert(1)</script>"
CAMPAIGN = CampaignRecord(
    id="logging-warn",
    title=f"Replace logging.warn {EVIL}",
    file="/tmp/c<a>.toml",
    version="abc123",
    forge="gitlab",
    branch="fleetchange/logging-warn",
    created_at=NOW - 3 * 86400,
    updated_at=NOW,
)
POINTS = [
    Point(NOW - (4 - k) * HOUR, o, m, c)
    for k, (o, m, c) in enumerate([(0, 0, 0), (3, 0, 0), (2, 1, 0), (1, 1, 1), (0, 2, 1)])
]


def records() -> list[RepoRecord]:
    return [
        RepoRecord(
            "logging-warn",
            f"team/{EVIL}",
            "error",
            reason=f'<img src=x onerror=alert(1)> "quoted" & more\n{EVIL} second line',
        ),
        RepoRecord(
            "logging-warn",
            "team/web",
            "mr-open",
            mr_url='https://gitlab.example.com/team/web/-/merge_requests/7?a=1&b="2"',
            pipeline="running",
            approved=0,
        ),
        RepoRecord(
            "logging-warn",
            "team/js",
            "mr-open",
            mr_url="javascript:alert(document.cookie)",
            pipeline="<b>x</b>",
        ),
        RepoRecord("logging-warn", "team/local", "merged", mr_url="local:team/local!1", approved=1),
        RepoRecord(
            "logging-warn", "team/data", "mr-open", mr_url="data:text/html,<script>x</script>"
        ),
        RepoRecord("logging-warn", "team/quiet", "no-match"),
    ]


def page() -> str:
    counts = {"error": 1, "mr-open": 3, "merged": 1, "no-match": 1}
    opened = {
        "team/web": NOW - (3 * 86400 + 4 * HOUR),
        "team/local": NOW - 90,
        "team/js": NOW - 600,
    }
    return render_html(CAMPAIGN, counts, records(), POINTS, NOW, opened=opened)


def test_outside_strings_are_escaped_everywhere() -> None:
    text = page()
    assert text.count("<script") == 1  # ours, at the end; none injected
    assert "<img" not in text and "<b>x" not in text and "<a>.toml" not in text
    assert "team/&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "onerror" not in text.replace("&lt;img src=x onerror=alert(1)&gt;", "")
    parsed = Page(text)
    assert parsed.count("script") == 1 and parsed.count("img") == 0
    assert f"team/{EVIL}" in parsed.repos()  # the browser shows the name as typed
    error_row = parsed.rows[parsed.repos().index(f"team/{EVIL}")]
    assert error_row[-1] == '<img src=x onerror=alert(1)> "quoted" & more'  # first line shown
    reason_attrs = parsed.row_attrs[parsed.repos().index(f"team/{EVIL}")][-1]
    assert (
        reason_attrs["title"] == f'<img src=x onerror=alert(1)> "quoted" & more\n{EVIL} second line'
    )


def test_only_http_urls_become_links() -> None:
    parsed = Page(page())
    links = [a["href"] for t, a in parsed.tags if t == "a"]
    assert links == ['https://gitlab.example.com/team/web/-/merge_requests/7?a=1&b="2"']
    by_repo = dict(zip(parsed.repos(), parsed.rows, strict=True))
    assert by_repo["team/js"][2] == "javascript:alert(document.cookie)"  # shown, not linked
    assert by_repo["team/local"][2] == "local:team/local!1"
    assert by_repo["team/data"][2] == "data:text/html,<script>x</script>"


@pytest.mark.parametrize(
    ("url", "linked"),
    [
        ("https://gitlab.com/g/p/-/merge_requests/1", True),
        ("http://forge.internal:8080/pr/2", True),
        ("HTTPS://GITHUB.COM/o/r/pull/3", True),
        ("javascript:alert(1)", False),
        (" https://gitlab.com/x", False),
        ("https://gitlab.com/x\njavascript:alert(1)", False),
        ("https:///no-host", False),
        ("//gitlab.com/x", False),
        ("local:team/a!1", False),
        ("vbscript:x", False),
        ("", False),
        ("http://[::1", False),  # urlsplit raises ValueError
    ],
)
def test_is_web_url(url: str, linked: bool) -> None:
    assert is_web_url(url) is linked


def test_self_contained_under_a_strict_csp() -> None:
    text = page()
    assert text.startswith('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">')
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in text
    assert CSP == (
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
    )
    parsed = Page(text)
    for tag, attrs in parsed.tags:
        assert "src" not in attrs, (tag, attrs)
        if "href" in attrs:
            assert tag == "a" or (tag == "link" and attrs["href"] == "data:,"), (tag, attrs)
    # nothing in the page itself could load anything (outside strings are escaped, see above)
    benign = render_html(CAMPAIGN, {"mr-open": 1}, records()[1:2], POINTS, NOW)
    assert not re.search(r"url\(|@import|@font-face|fetch\(|XMLHttpRequest|\bsrc=", benign)


def test_table_has_one_row_per_repo_with_ages_and_sort_keys() -> None:
    parsed = Page(page())
    assert parsed.table["id"] == "repos"
    headers = [a["data-key"] for t, a in parsed.tags if t == "th"]
    assert headers == ["repo", "state", "mr", "pipeline", "approved", "age", "reason"]
    # trouble first, then open, merged, the rest: like `status`
    assert parsed.repos() == [
        f"team/{EVIL}",
        "team/data",
        "team/js",
        "team/web",
        "team/local",
        "team/quiet",
    ]
    by_repo = {row[0]: row for row in parsed.rows}
    assert by_repo["team/web"][3:6] == ["running", "no", "3d 4h"]
    assert by_repo["team/local"][3:6] == ["", "yes", "1m"]
    assert by_repo["team/js"][3:6] == ["<b>x</b>", "", "10m"]
    assert by_repo["team/quiet"][5] == ""
    ages = {
        row[0]: attrs[5]["data-sort"]
        for row, attrs in zip(parsed.rows, parsed.row_attrs, strict=True)
    }
    assert ages["team/web"] == str(3 * 86400 + 4 * 3600) and ages["team/quiet"] == ""


def test_counts_become_tiles() -> None:
    text = page()
    tiles = re.findall(r'<li class="tile ([^"]+)"><b>(\d+)</b><span>([^<]+)</span>', text)
    assert tiles == [
        ("s-error", "1", "error"),
        ("s-mr-open", "3", "mr-open"),
        ("s-merged", "1", "merged"),
        ("s-no-match", "1", "no-match"),
        ("total", "6", "total"),
    ]


def test_chart_has_a_line_per_series_tooltips_and_a_legend() -> None:
    parsed = Page(render_svg(POINTS))
    lines = parsed.polylines()
    assert set(lines) == {"open", "merged", "closed"}  # closed only because something closed
    assert all(len(v.split()) == len(POINTS) for v in lines.values())
    # the y axis tops at 3 (the most open at once): open starts at the bottom, peaks at the top
    open_y = [float(xy.split(",")[1]) for xy in lines["open"].split()]
    assert open_y[0] == open_y[-1] > open_y[1] and open_y[1] == 40.0
    titles = [t for t, _ in parsed.svg if t == "title"]
    assert len(titles) == 1 + 3 * len(POINTS)  # the chart's, then one tooltip per dot
    text = render_svg(POINTS)
    assert "open: 0</text>" in text and "merged: 2</text>" in text and "closed: 1</text>" in text
    without_closed = Page(render_svg([Point(p.at, p.open, p.merged, 0) for p in POINTS]))
    assert set(without_closed.polylines()) == {"open", "merged"}


def test_chart_without_history_or_with_one_point() -> None:
    empty = render_svg([])
    assert 'id="burndown"' in empty and "No history yet" in empty and "polyline" not in empty
    one = Page(render_svg([Point(NOW, 2, 1, 0)]))
    assert set(one.polylines()) == {"open", "merged"}


def test_time_ticks_fall_on_round_times() -> None:
    day = 86400
    t0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
    seconds = time_ticks(t0, t0 + 65)
    assert [label for _, label in seconds] == [f"22:13:{s}" for s in (20, 30, 40, 50)] + [
        "22:14:00",
        "22:14:10",
        "22:14:20",
    ]
    hourly = time_ticks(t0, t0 + 5 * HOUR)
    assert [label for _, label in hourly] == ["23:00", "Nov 15", "01:00", "02:00", "03:00"]
    daily = time_ticks(t0, t0 + 9 * day)
    assert [label for _, label in daily] == ["Nov 15", "Nov 17", "Nov 19", "Nov 21", "Nov 23"]
    assert all(at % (2 * day) == 0 for at, _ in daily)
    assert time_ticks(t0, t0) == [(t0, "2023-11-14 22:13")]
    assert len(time_ticks(t0, t0 + 10 * 365 * day)) <= 11
