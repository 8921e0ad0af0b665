"""The burndown replays the event history exactly; the terminal rendering shows it compactly."""

from __future__ import annotations

import itertools

import pytest
from rich.console import Console

from fleetchange.report import (
    DAY,
    HOUR,
    MAX_POINTS,
    MINUTE,
    Point,
    bucket_seconds,
    burndown,
    first_opened,
    human_age,
    terminal_burndown,
)
from fleetchange.state import Event

T0 = 472222 * HOUR  # 2023-11-14 22:00:00 UTC: on an hour boundary


def ev(at: float, repo: str, state: str, detail: str = "") -> Event:
    return Event("c", repo, T0 + at, state, detail)


HISTORY = [
    ev(600, "a", "resolved"),
    ev(600, "a", "transformed"),
    ev(600, "a", "tested"),
    ev(600, "a", "pushed"),
    ev(600, "a", "mr-open", "local:a!1"),
    ev(600, "b", "mr-open", "local:b!1"),
    ev(600, "c", "no-change"),
    ev(600, "d", "error", "boom"),
    ev(HOUR + 60, "a", "pipeline", "success"),
    ev(HOUR + 60, "a", "approval", "approved"),
    ev(HOUR + 60, "a", "merged", "local:a!1 is merged"),
    ev(HOUR + 70, "a", "branch-deleted"),
    ev(2 * HOUR + 10, "b", "sync-failed", "timeout"),
    ev(2 * HOUR + 10, "d", "mr-open", "local:d!1"),
    ev(4 * HOUR, "d", "mr-updated"),
    ev(4 * HOUR, "d", "merge-failed", "conflict"),
    ev(4 * HOUR, "b", "auto-merge"),
    ev(5 * HOUR, "b", "closed", "superseded"),  # exactly on a boundary: counts at that point
    ev(5 * HOUR, "b", "close-failed", "ignored: not a state"),
]


def test_replays_only_repo_states_hourly() -> None:
    now = T0 + 20 * HOUR + 1800
    points = burndown(HISTORY, now)

    assert [p.at - T0 for p in points] == [h * HOUR for h in range(21)] + [20 * HOUR + 1800]
    got = [(p.open, p.merged, p.closed) for p in points]
    assert got[:7] == [
        (0, 0, 0),  # before the first event
        (2, 0, 0),  # a and b opened; c no-change and d error do not count
        (1, 1, 0),  # a merged
        (2, 1, 0),  # d opened after its error
        (2, 1, 0),  # mr-updated, merge-failed, auto-merge change nothing
        (1, 1, 1),  # b closed at exactly T0+5h
        (1, 1, 1),
    ]
    assert set(got[6:]) == {(1, 1, 1)}
    assert points[-1] == Point(now, 1, 1, 1)


def test_events_out_of_order_and_same_instant() -> None:
    # same instant: the later event (by history order) wins; out of order input is sorted by time
    events = [
        ev(2 * MINUTE, "a", "merged"),
        ev(0, "a", "mr-open"),
        ev(0, "b", "mr-open"),
        ev(0, "b", "merged"),
    ]
    points = burndown(events, T0 + 3 * MINUTE)
    assert [(p.at - T0, p.open, p.merged) for p in points] == [
        (0, 1, 1),  # T0 is the first event and its own bucket boundary
        (MINUTE, 1, 1),
        (2 * MINUTE, 0, 2),
        (3 * MINUTE, 0, 2),
    ]


def test_reopened_and_error_after_merge_move_counts() -> None:
    events = [ev(0, "a", "mr-open"), ev(10, "a", "closed"), ev(20, "a", "mr-open")]
    events += [ev(30, "b", "mr-open"), ev(40, "b", "error")]
    points = burndown(events, T0 + 50)
    assert (points[-1].open, points[-1].merged, points[-1].closed) == (1, 0, 0)


def test_no_events_no_points() -> None:
    assert burndown([], T0) == []


def test_single_instant_is_one_point() -> None:
    assert burndown([ev(0, "a", "mr-open")], T0) == [Point(T0, 1, 0, 0)]


def test_clock_behind_the_events_ends_at_the_last_event() -> None:
    points = burndown([ev(0, "a", "mr-open"), ev(90, "a", "merged")], T0 - 1000)
    assert points[-1] == Point(T0 + 90, 0, 1, 0)


@pytest.mark.parametrize(
    ("span", "size"),
    [
        (5, MINUTE),
        (59 * MINUTE, MINUTE),
        (4 * HOUR, 5 * MINUTE),
        (14 * HOUR, 15 * MINUTE),
        (20 * HOUR, HOUR),
        (3 * DAY, 3 * HOUR),
        (30 * DAY, DAY),
        (200 * DAY, 7 * DAY),
    ],
)
def test_bucket_follows_the_span(span: int, size: int) -> None:
    assert bucket_seconds(T0, T0 + span) == size
    points = burndown([ev(0, "a", "mr-open")], T0 + span)
    assert all(b.at - a.at == size for a, b in itertools.pairwise(points[:-1]))


@pytest.mark.parametrize("span", [0, 1, 61, 3599, 3601, 86399, 86401, 10**6, 10**7, 10**8, 10**9])
@pytest.mark.parametrize("offset", [0, 1, 1799, HOUR - 1])
def test_never_more_than_max_points(span: int, offset: int) -> None:
    points = burndown([ev(offset, "a", "mr-open")], T0 + offset + span)
    assert 1 <= len(points) <= MAX_POINTS
    assert points[-1].at == T0 + offset + span
    assert [p.at for p in points] == sorted({p.at for p in points})


def test_first_opened_and_human_age() -> None:
    assert first_opened(HISTORY) == {"a": T0 + 600, "b": T0 + 600, "d": T0 + 2 * HOUR + 10}
    assert [
        human_age(s) for s in (-5, 0, 59, 60, 3599, 3600, 3660, DAY - 1, 3 * DAY + 4 * HOUR)
    ] == [
        "0s",
        "0s",
        "59s",
        "1m",
        "59m",
        "1h 0m",
        "1h 1m",
        "23h 59m",
        "3d 4h",
    ]


def render(points: list[Point], width: int = 80) -> str:
    console = Console(width=width, record=True, no_color=True, force_terminal=False)
    console.print(terminal_burndown(points, width))
    return console.export_text()


def test_terminal_sparklines_with_latest_numbers() -> None:
    points = [
        Point(T0 + k * HOUR, o, m, 0)
        for k, (o, m) in enumerate([(0, 0), (4, 0), (2, 2), (1, 3), (0, 4)])
    ]
    text = render(points)
    lines = text.splitlines()
    assert lines[0] == "burndown 2023-11-14 22:00 → 2023-11-15 02:00 UTC"
    same_day = render(points[:3]).splitlines()[0]
    assert same_day == "burndown 2023-11-14 22:00 → 2023-11-15 00:00 UTC"
    assert render(points[:2]).splitlines()[0] == "burndown 2023-11-14 22:00 → 23:00 UTC"
    assert lines[1].split() == ["open", "█▄▂", "0"]
    assert lines[1].startswith("  open    █▄▂ ")  # zero is blank, one column per point
    assert lines[2].split() == ["merged", "▄▆█", "4"]
    assert "closed" not in text  # nothing ever closed: no row


def test_terminal_closed_row_and_resampling() -> None:
    points = [Point(T0 + k * MINUTE, 60 - k, k // 2, k - k // 2) for k in range(61)]
    text = render(points, width=40)
    lines = text.splitlines()
    assert lines[0] == "burndown 2023-11-14 22:00 → 23:00 UTC"
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"open", "merged", "closed"}
    assert [rows[k].split()[-1] for k in ("open", "merged", "closed")] == ["0", "30", "30"]
    # resampled to the width (first and last point kept): 22 columns of 61 points
    assert [rows[k][31:] for k in ("open", "merged", "closed")] == ["  0", " 30", " 30"]
    sparks = {k: line[9:31] for k, line in rows.items()}
    assert sparks["open"].endswith("▁ ")  # the last point, zero, is blank
    assert sparks["open"][0] == "█" and sparks["closed"][0] == " " and sparks["closed"][21] == "▄"
    assert all(len(line) <= 40 for line in text.splitlines())
