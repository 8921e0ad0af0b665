"""Progress over time: a burndown from the event history, for the terminal and as HTML.

Everything here is a pure function of records and events, except
:func:`print_burndown`, the one-call hook ``status`` uses.  The HTML page is
self-contained: inline CSS, inline SVG and a little inline script, under a
Content-Security-Policy that forbids loading anything at all, so it opens from
disk, from a mail attachment or from a CI artifact with no network.  Every
string that comes from outside (repo names, reasons, MR URLs, titles) is
escaped, and only http(s) URLs become links.
"""

from __future__ import annotations

import datetime
import html
import math
import time
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .commands.status import STATE_ORDER
from .state import CampaignRecord, Event, RepoRecord

if TYPE_CHECKING:
    from rich.console import Console

    from .state import Store

# The states a repo row can be in.  Every other event ("pipeline", "approval",
# "pushed", "sync-failed", ...) describes a step or a detail and leaves the state as is.
REPO_STATES = frozenset(
    {
        "skipped",
        "no-match",
        "no-change",
        "test-failed",
        "error",
        "mr-open",
        "merged",
        "closed",
        "diverged",
        "llm-failed",
        "budget-exhausted",
    }
)
MAX_POINTS = 60
MINUTE, HOUR, DAY = 60, 3600, 86400
# bucket sizes, smallest first: the first one that keeps the chart within MAX_POINTS wins
BUCKETS = (MINUTE, 5 * MINUTE, 15 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 7 * DAY)
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


@dataclass(frozen=True)
class Point:
    """How many repos were in each MR state at time ``at`` (seconds since the epoch)."""

    at: float
    open: int
    merged: int
    closed: int

    def as_json(self) -> dict[str, float | int | str]:
        return {
            "at": self.at,
            "time": _utc(self.at).isoformat(timespec="seconds"),
            "open": self.open,
            "merged": self.merged,
            "closed": self.closed,
        }


# -- burndown -------------------------------------------------------------------------


def bucket_seconds(start: float, end: float) -> int:
    """The smallest bucket (a minute … a week, then whole days) giving at most MAX_POINTS points."""
    for size in BUCKETS:
        if _point_count(start, end, size) <= MAX_POINTS:
            return size
    days = math.ceil((end - start) / (MAX_POINTS - 2) / DAY)
    return days * DAY


def _point_count(start: float, end: float, size: int) -> int:
    first = math.floor(start / size) * size
    return math.ceil((end - first) / size) + 1


def burndown(events: Iterable[Event], now: float) -> list[Point]:
    """Replay the history: repos open, merged and closed at each bucket boundary, and now.

    The first point is the boundary at or before the first event, the last one is
    ``now`` (or the last event, should the clock disagree).  A repo counts in the
    state of its latest repo-state event at or before the point's time.
    """
    history = sorted(events, key=lambda e: e.at)  # stable: same-time events keep their order
    if not history:
        return []
    start, end = history[0].at, max(now, history[-1].at)
    size = bucket_seconds(start, end)
    times: list[float] = []
    at = float(math.floor(start / size) * size)
    while at < end:
        times.append(at)
        at += size
    times.append(end)
    states: dict[str, str] = {}
    tally = {"mr-open": 0, "merged": 0, "closed": 0}
    points: list[Point] = []
    i = 0
    for t in times:
        while i < len(history) and history[i].at <= t:
            event = history[i]
            i += 1
            if event.state not in REPO_STATES:
                continue
            before = states.get(event.repo)
            if before in tally:
                tally[before] -= 1
            if event.state in tally:
                tally[event.state] += 1
            states[event.repo] = event.state
        points.append(Point(t, tally["mr-open"], tally["merged"], tally["closed"]))
    return points


def first_opened(events: Iterable[Event]) -> dict[str, float]:
    """Each repo's first ``mr-open`` event: when its merge request was opened."""
    opened: dict[str, float] = {}
    for event in events:
        if event.state == "mr-open" and (event.repo not in opened or event.at < opened[event.repo]):
            opened[event.repo] = event.at
    return opened


def human_age(seconds: float) -> str:
    """``3d 4h``, ``4h 12m``, ``12m``, ``40s``: two units at most."""
    s = max(0, int(seconds))
    days, rest = divmod(s, DAY)
    hours, rest = divmod(rest, HOUR)
    minutes, secs = divmod(rest, MINUTE)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


# -- terminal -------------------------------------------------------------------------

BLOCKS = "▁▂▃▄▅▆▇█"
SERIES = (("open", "mr-open", "cyan"), ("merged", "merged", "green"), ("closed", "closed", "dim"))


def _resample(points: Sequence[Point], width: int) -> list[Point]:
    if len(points) <= width:
        return list(points)
    if width <= 1:
        return [points[-1]]
    step = (len(points) - 1) / (width - 1)
    return [points[round(k * step)] for k in range(width)]


def _spark(values: Sequence[int], top: int) -> str:
    return "".join(
        " " if v <= 0 else BLOCKS[min(len(BLOCKS), max(1, math.ceil(v / top * len(BLOCKS)))) - 1]
        for v in values
    )


def terminal_burndown(points: Sequence[Point], width: int) -> RenderableType:
    """Sparklines of open and merged (and closed, if any) on one scale, latest numbers last."""
    shown = _resample(points, max(8, width - 18))
    series = [(label, [getattr(p, label) for p in shown], style) for label, _, style in SERIES]
    series = [s for s in series if s[0] != "closed" or any(s[1])]
    top = max((max(values) for _, values, _ in series), default=0) or 1
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column(justify="right", no_wrap=True)
    for label, values, style in series:
        grid.add_row(
            Text(f"  {label}", style=style),
            Text(_spark(values, top), style=style),
            Text(str(values[-1]), style=f"bold {style}"),
        )
    first, last = points[0].at, points[-1].at
    start, end = _when(first, last - first), _when(last, last - first)
    if start[:10] == end[:10] and len(end) > 10:
        end = end[11:]  # same day: the time is enough
    header = Text.assemble(
        ("burndown ", "bold"), (f"{start} → {end} UTC", "dim"), no_wrap=True, overflow="ellipsis"
    )
    return Group(header, grid)


def print_burndown(out: Console, store: Store, campaign_id: str) -> None:
    """For ``status``: the terminal burndown, once there is some MR history to show."""
    points = burndown(store.events(campaign_id), time.time())
    if len(points) >= 2 and any(p.open or p.merged or p.closed for p in points):
        out.print(terminal_burndown(points, out.width))


# -- HTML -----------------------------------------------------------------------------


def _utc(at: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(at, tz=datetime.UTC)


def _when(at: float, span: float) -> str:
    moment = _utc(at)
    if span < 2 * DAY:
        return moment.strftime("%Y-%m-%d %H:%M")
    return moment.strftime("%Y-%m-%d")


TICK_STEPS: tuple[int, ...] = (
    *(1, 5, 10, 30, MINUTE, 5 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR),
    *(12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY, 91 * DAY, 364 * DAY),
)


def time_ticks(t0: float, t1: float, most: int = 7) -> list[tuple[float, str]]:
    """Round times between t0 and t1 (whole minutes, hours, days...) and their labels."""
    if t1 <= t0:
        return [(t0, _utc(t0).strftime("%Y-%m-%d %H:%M"))]
    step = next((s for s in TICK_STEPS if (t1 - t0) / s <= most), TICK_STEPS[-1])
    ticks = []
    at = math.ceil(t0 / step) * step
    while at <= t1:
        moment = _utc(at)
        if step < MINUTE:
            label = moment.strftime("%H:%M:%S")
        elif step >= DAY or (moment.hour == 0 and moment.minute == 0):
            label = moment.strftime("%b %d")
        else:
            label = moment.strftime("%H:%M")
        ticks.append((float(at), label))
        at += step
    return ticks


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def is_web_url(url: str) -> bool:
    """Only absolute http(s) URLs with a host, nothing odd in them, become links."""
    if not url or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return False
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def _nice_top(value: int) -> tuple[int, int]:
    """An axis maximum >= value and a tick step dividing it into at most 5 steps."""
    if value <= 5:
        return max(value, 1), 1
    raw = value / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return math.ceil(value / step) * step, step


def render_svg(points: Sequence[Point]) -> str:
    """The burndown chart: axes, an area and a line per series, a legend, tooltips."""
    w, h = 760, 280
    left, right, top, bottom = 48, 16, 40, 40
    plot_w, plot_h = w - left - right, h - top - bottom
    parts = [
        f'<svg id="burndown" viewBox="0 0 {w} {h}" role="img" aria-labelledby="burndown-title"'
        ' xmlns="http://www.w3.org/2000/svg">',
        '<title id="burndown-title">Merge requests open and merged over time</title>',
    ]
    if not points:
        parts.append(
            f'<text class="empty" x="{w / 2:.0f}" y="{h / 2:.0f}" text-anchor="middle">'
            "No history yet: apply the campaign first.</text></svg>"
        )
        return "".join(parts)
    series = [(label, state, [getattr(p, label) for p in points]) for label, state, _ in SERIES]
    series = [s for s in series if s[0] != "closed" or any(s[2])]
    y_max, y_step = _nice_top(max(max(v) for _, _, v in series))
    t0, t1 = points[0].at, points[-1].at
    span = t1 - t0

    def x(at: float) -> float:
        return left + (plot_w * (at - t0) / span if span > 0 else plot_w / 2)

    def y(value: int) -> float:
        return top + plot_h - plot_h * value / y_max

    parts.append('<g class="grid">')
    for value in range(0, y_max + 1, y_step):
        parts.append(
            f'<line x1="{left}" x2="{w - right}" y1="{y(value):.1f}" y2="{y(value):.1f}"/>'
            f'<text class="tick" x="{left - 8}" y="{y(value) + 4:.1f}" text-anchor="end">'
            f"{value}</text>"
        )
    for at, label in time_ticks(t0, t1):
        anchor = "middle"
        if span > 0 and x(at) - left < 24:
            anchor = "start"
        elif span > 0 and w - right - x(at) < 24:
            anchor = "end"
        parts.append(
            f'<line class="tick-mark" x1="{x(at):.1f}" x2="{x(at):.1f}" y1="{y(0):.1f}"'
            f' y2="{y(0) + 5:.1f}"/>'
            f'<text class="tick" x="{x(at):.1f}" y="{h - bottom + 20}" text-anchor="{anchor}">'
            f"{_e(label)}</text>"
        )
    parts.append("</g>")
    parts.append(
        f'<line class="axis" x1="{left}" x2="{w - right}" y1="{y(0):.1f}" y2="{y(0):.1f}"/>'
        f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{y(0):.1f}"/>'
        f'<text class="caption" x="{w - right}" y="{h - 6}" text-anchor="end">time (UTC)</text>'
    )
    for label, _, values in series:
        coords = " ".join(f"{x(p.at):.1f},{y(v):.1f}" for p, v in zip(points, values, strict=True))
        area = f"{x(t0):.1f},{y(0):.1f} {coords} {x(t1):.1f},{y(0):.1f}"
        parts.append(
            f'<polygon class="area {label}" points="{area}"/>'
            f'<polyline class="line {label}" data-series="{label}" points="{coords}"/>'
        )
    radius = 3 if len(points) <= 30 else 2.2
    for label, _, values in series:
        parts.append(f'<g class="dots {label}">')
        for p, v in zip(points, values, strict=True):
            parts.append(
                f'<circle cx="{x(p.at):.1f}" cy="{y(v):.1f}" r="{radius}"><title>'
                f"{_e(_utc(p.at).strftime('%Y-%m-%d %H:%M UTC'))}: {v} {label}"
                "</title></circle>"
            )
        parts.append("</g>")
    parts.append(f'<g class="legend" transform="translate({left + 4},14)">')
    for k, (label, _, values) in enumerate(series):
        parts.append(
            f'<g transform="translate({k * 130},0)"><rect class="swatch {label}" width="14"'
            f' height="4" y="5"/><text x="20" y="11">{label}: {values[-1]}</text></g>'
        )
    parts.append("</g></svg>")
    return "".join(parts)


def _repo_row(r: RepoRecord, opened: Mapping[str, float], now: float) -> str:
    if is_web_url(r.mr_url):
        link = (
            f'<a href="{_e(r.mr_url)}" title="{_e(r.mr_url)}" rel="noreferrer">{_e(r.mr_url)}</a>'
        )
    elif r.mr_url:
        link = f'<span title="{_e(r.mr_url)}">{_e(r.mr_url)}</span>'
    else:
        link = ""
    approved = "" if r.approved is None else ("yes" if r.approved else "no")
    if r.repo in opened:
        seconds = max(0.0, now - opened[r.repo])
        age = f'<td class="num" data-sort="{seconds:.0f}">{_e(human_age(seconds))}</td>'
    else:
        age = '<td class="num" data-sort=""></td>'
    reason = r.reason.strip()
    first_line = reason.splitlines()[0] if reason else ""
    title = f' title="{_e(reason[:2000])}"' if reason and reason != first_line else ""
    state_rank = STATE_ORDER.index(r.state) if r.state in STATE_ORDER else len(STATE_ORDER)
    return (
        "<tr>"
        f"<td>{_e(r.repo)}</td>"
        f'<td data-sort="{state_rank}"><span class="state s-{_e(r.state)}">{_e(r.state)}</span></td>'
        f'<td class="mr">{link}</td>'
        f'<td><span class="pipe p-{_e(r.pipeline)}">{_e(r.pipeline)}</span></td>'
        f"<td>{approved}</td>"
        f"{age}"
        f'<td class="reason"{title}>{_e(first_line)}</td>'
        "</tr>"
    )


COLUMNS = (
    ("repo", "repo", "text"),
    ("state", "state", "number"),
    ("mr", "merge request", "text"),
    ("pipeline", "pipeline", "text"),
    ("approved", "approved", "text"),
    ("age", "age", "number"),
    ("reason", "reason", "text"),
)

STYLE = """
:root { color-scheme: light dark; --fg: #1f2328; --muted: #656d76; --bg: #ffffff;
  --panel: #f6f8fa; --line: #d0d7de; --open: #0969da; --merged: #1a7f37; --closed: #8c959f;
  --bad: #cf222e; --warn: #9a6700; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #8d96a0; --bg: #0d1117;
  --panel: #161b22; --line: #30363d; --open: #4493f8; --merged: #3fb950; --closed: #6e7681;
  --bad: #f85149; --warn: #d29922; } }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1180px; padding: 24px; color: var(--fg); background: var(--bg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
h1 { font-size: 22px; margin: 0 0 2px; } h2 { font-size: 16px; margin: 28px 0 10px; }
.meta { color: var(--muted); margin: 0 0 18px; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.tiles { display: flex; flex-wrap: wrap; gap: 10px; margin: 0; padding: 0; list-style: none; }
.tile { min-width: 104px; padding: 10px 14px; background: var(--panel); border: 1px solid var(--line);
  border-left: 4px solid var(--closed); border-radius: 6px; }
.tile b { display: block; font-size: 22px; font-variant-numeric: tabular-nums; }
.tile span { color: var(--muted); }
.tile.s-mr-open { border-left-color: var(--open); } .tile.s-merged { border-left-color: var(--merged); }
.tile.s-error, .tile.s-test-failed, .tile.s-llm-failed { border-left-color: var(--bad); }
.tile.s-diverged, .tile.s-budget-exhausted { border-left-color: var(--warn); }
.tile.total { border-left-color: var(--fg); }
.chart { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
#burndown { display: block; width: 100%; height: auto; font-size: 12px; }
#burndown .grid line { stroke: var(--line); stroke-width: 1; }
#burndown .tick, #burndown .caption, #burndown .empty { fill: var(--muted); }
#burndown .legend text { fill: var(--fg); }
#burndown .axis, #burndown .tick-mark { stroke: var(--muted); stroke-width: 1; }
#burndown .line { fill: none; stroke-width: 2.5; stroke-linejoin: round; }
#burndown .area { stroke: none; opacity: .12; }
#burndown .dots circle { stroke: var(--panel); stroke-width: 1; }
#burndown .open { stroke: var(--open); } #burndown .area.open, #burndown .dots.open, #burndown .swatch.open { fill: var(--open); }
#burndown .merged { stroke: var(--merged); } #burndown .area.merged, #burndown .dots.merged, #burndown .swatch.merged { fill: var(--merged); }
#burndown .closed { stroke: var(--closed); } #burndown .area.closed, #burndown .dots.closed, #burndown .swatch.closed { fill: var(--closed); }
#burndown .line.closed { stroke-dasharray: 5 4; }
#burndown .swatch { stroke: none; }
.table-wrap { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; }
#repos { width: 100%; border-collapse: collapse; }
#repos th, #repos td { padding: 6px 10px; text-align: left; border-bottom: 1px solid var(--line);
  white-space: nowrap; }
#repos tbody tr:last-child td { border-bottom: none; }
#repos tbody tr:hover { background: var(--panel); }
#repos th { background: var(--panel); position: sticky; top: 0; padding: 0; }
#repos th button { all: unset; box-sizing: border-box; display: block; width: 100%; padding: 7px 10px;
  cursor: pointer; font-weight: 600; }
#repos th button:focus-visible { outline: 2px solid var(--open); outline-offset: -2px; }
#repos th[aria-sort="ascending"] button::after { content: " \\25B2"; font-size: 10px; }
#repos th[aria-sort="descending"] button::after { content: " \\25BC"; font-size: 10px; }
#repos td.num { text-align: right; font-variant-numeric: tabular-nums; }
#repos td.reason { white-space: normal; color: var(--muted); min-width: 13em; max-width: 32em; }
#repos td.mr > * { display: inline-block; max-width: 22em; overflow: hidden; text-overflow: ellipsis;
  vertical-align: bottom; }
#repos a { color: var(--open); }
.state { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px;
  border: 1px solid var(--line); }
.s-mr-open { color: var(--open); } .s-merged { color: var(--merged); }
.s-error, .s-test-failed, .s-llm-failed { color: var(--bad); }
.s-diverged, .s-budget-exhausted { color: var(--warn); }
.s-closed, .s-no-match, .s-no-change, .s-skipped { color: var(--muted); }
.p-success { color: var(--merged); } .p-failed, .p-canceled { color: var(--bad); }
.p-running, .p-pending { color: var(--warn); }
footer { margin-top: 18px; color: var(--muted); font-size: 12px; }
"""

# Sorting: click a header (again to reverse), or open the page with #sort=COLUMN
# (#sort=-COLUMN for descending).  Empty cells always sort last.
SCRIPT = """
(function () {
  "use strict";
  var table = document.getElementById("repos");
  var body = table.tBodies[0];
  var heads = table.tHead.rows[0].cells;
  function value(row, i, numeric) {
    var cell = row.cells[i];
    var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent;
    raw = raw.trim();
    if (raw === "") return null;
    return numeric ? parseFloat(raw) : raw.toLowerCase();
  }
  function sortBy(i, descending) {
    var numeric = heads[i].getAttribute("data-type") === "number";
    var rows = Array.prototype.slice.call(body.rows);
    var keyed = rows.map(function (row, n) { return [value(row, i, numeric), n, row]; });
    keyed.sort(function (a, b) {
      if (a[0] === b[0]) return a[1] - b[1];
      if (a[0] === null) return 1;
      if (b[0] === null) return -1;
      var order = numeric ? a[0] - b[0] : a[0].localeCompare(b[0]);
      if (order === 0) return a[1] - b[1];
      return descending ? -order : order;
    });
    keyed.forEach(function (k) { body.appendChild(k[2]); });
    for (var j = 0; j < heads.length; j++) heads[j].removeAttribute("aria-sort");
    heads[i].setAttribute("aria-sort", descending ? "descending" : "ascending");
    table.setAttribute("data-sorted", (descending ? "-" : "") + heads[i].getAttribute("data-key"));
  }
  function column(key) {
    for (var j = 0; j < heads.length; j++) if (heads[j].getAttribute("data-key") === key) return j;
    return -1;
  }
  Array.prototype.forEach.call(heads, function (th, i) {
    th.querySelector("button").addEventListener("click", function () {
      var descending = th.getAttribute("aria-sort") === "ascending";
      sortBy(i, descending);
      try { history.replaceState(null, "", "#sort=" + (descending ? "-" : "") + th.getAttribute("data-key")); } catch (e) {}
    });
  });
  function fromHash() {
    var match = /^#sort=(-?)([a-z]+)$/.exec(location.hash);
    if (!match) return;
    var i = column(match[2]);
    if (i >= 0) sortBy(i, match[1] === "-");
  }
  window.addEventListener("hashchange", fromHash);
  fromHash();
  table.setAttribute("data-ready", "yes");
})();
"""


def render_html(
    campaign: CampaignRecord,
    counts: Mapping[str, int],
    records: Sequence[RepoRecord],
    points: Sequence[Point],
    now: float,
    *,
    opened: Mapping[str, float] | None = None,
) -> str:
    """One self-contained HTML5 page: burndown chart, counts, a sortable per-repo table.

    ``opened`` maps repos to the time their MR was first opened (see
    :func:`first_opened`); the table's age column is ``now`` minus that.
    """
    opened = opened or {}
    ordered_states = sorted(
        counts, key=lambda s: (STATE_ORDER.index(s) if s in STATE_ORDER else len(STATE_ORDER), s)
    )
    tiles = "".join(
        f'<li class="tile s-{_e(s)}"><b>{counts[s]}</b><span>{_e(s)}</span></li>'
        for s in ordered_states
    )
    tiles += f'<li class="tile total"><b>{sum(counts.values())}</b><span>total</span></li>'
    rows = sorted(
        records,
        key=lambda r: (
            STATE_ORDER.index(r.state) if r.state in STATE_ORDER else len(STATE_ORDER),
            r.repo,
        ),
    )
    heads = "".join(
        f'<th scope="col" data-key="{key}" data-type="{kind}">'
        f'<button type="button">{label}</button></th>'
        for key, label, kind in COLUMNS
    )
    body = "".join(_repo_row(r, opened, now) for r in rows)
    generated = _utc(now).strftime("%Y-%m-%d %H:%M UTC")
    title = f"{campaign.id} — {campaign.title}" if campaign.title else campaign.id
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        '<link rel="icon" href="data:,">'
        f"<title>{_e(title)} · fleetchange report</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<header><h1>{_e(title)}</h1>"
        f'<p class="meta">campaign <code>{_e(campaign.id)}</code> · forge {_e(campaign.forge)}'
        f" · branch <code>{_e(campaign.branch)}</code> · version <code>{_e(campaign.version)}</code>"
        f" · generated {_e(generated)}</p></header>"
        f'<section aria-label="counts"><ul class="tiles">{tiles}</ul></section>'
        f'<section><h2>Burndown</h2><div class="chart">{render_svg(points)}</div></section>'
        f"<section><h2>Repositories ({len(rows)})</h2>"
        f'<div class="table-wrap"><table id="repos"><thead><tr>{heads}</tr></thead>'
        f"<tbody>{body}</tbody></table></div></section>"
        f"<footer>fleetchange report · click a column header to sort · "
        f"campaign file <code>{_e(campaign.file)}</code></footer>"
        f"<script>{SCRIPT}</script>"
        "</body></html>\n"
    )
