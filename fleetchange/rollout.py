"""Pacing a campaign: waves, a cap on open MRs, MRs per hour and a time window.

``[rollout]`` turns "open every MR now" into a canary and waves::

    [rollout]
    waves = [10, 100, "100%"]          # MRs per wave; the first one is the canary
    promote_when = "merged >= 0.8 and failed_pipelines == 0"
    max_open = 50                      # open MRs at once
    per_hour = 20                      # new MRs per clock hour
    window = "09:00-17:00"             # local time; new MRs only inside it
    days = ["mon", "tue", "wed", "thu", "fri"]

Everything here is computed from the state (repos and events), so pacing
survives restarts and a later ``apply`` continues where the last one stopped.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .schema import Key, int_range
from .state import Store

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MR_STATES = ("mr-open", "merged", "closed")
_CLAUSE = re.compile(
    r"^\s*(merged|open|closed|failed_pipelines|errors)\s*(>=|<=|==|>|<)\s*([0-9.]+)\s*$"
)
_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


def _waves_check(value: Any) -> str | None:
    if not value:
        return "needs at least one wave"
    for wave in value:
        if isinstance(wave, bool) or not isinstance(wave, int | str):
            return 'waves are MR counts (10) or percentages ("100%")'
        if isinstance(wave, int) and wave < 1:
            return f"wave sizes must be at least 1, got {wave}"
        if isinstance(wave, str):
            match = re.fullmatch(r"(\d{1,3})%", wave)
            if not match or not 0 < int(match.group(1)) <= 100:
                return f'percentages are written like "25%" (1% to 100%), got {wave!r}'
    return None


def _promote_check(value: Any) -> str | None:
    for clause in value.split(" and "):
        if not _CLAUSE.match(clause):
            return (
                f"cannot read {clause.strip()!r}: write clauses like 'merged >= 0.8' joined by 'and'"
                " (metrics: merged, open, closed as fractions of the wave; failed_pipelines, errors as counts)"
            )
    return None


def _window_check(value: Any) -> str | None:
    if not _WINDOW.match(value):
        return f'expected a local time range like "09:00-17:00", got {value!r}'
    return None


def _days_check(value: Any) -> str | None:
    wrong = [d for d in value if d.lower() not in DAYS]
    return f"unknown day {wrong[0]!r} (use {', '.join(DAYS)})" if wrong else None


KEYS: Mapping[str, Key] = {
    "waves": Key("list", check=_waves_check, doc='MRs per wave, e.g. [10, 100, "100%"]'),
    "promote_when": Key(
        "str", default="merged >= 0.8 and failed_pipelines == 0", check=_promote_check
    ),
    "max_open": Key("int", check=int_range(1, 1_000_000), doc="open MRs at once"),
    "per_hour": Key("int", check=int_range(1, 1_000_000), doc="new MRs per clock hour"),
    "window": Key("str", check=_window_check, doc='local time range, e.g. "09:00-17:00"'),
    "days": Key("list[str]", default=list(DAYS), check=_days_check, doc="days new MRs may open"),
}


@dataclass(frozen=True)
class Rollout:
    waves: tuple[int | str, ...] = ()
    promote_when: str = "merged >= 0.8 and failed_pipelines == 0"
    max_open: int | None = None
    per_hour: int | None = None
    window: str | None = None
    days: tuple[str, ...] = DAYS

    @property
    def paced(self) -> bool:
        return bool(self.waves or self.max_open or self.per_hour or self.window)


def from_table(values: Mapping[str, Any]) -> Rollout:
    return Rollout(
        waves=tuple(values["waves"] or ()),
        promote_when=values["promote_when"],
        max_open=values["max_open"],
        per_hour=values["per_hour"],
        window=values["window"],
        days=tuple(d.lower() for d in values["days"]),
    )


def wave_caps(waves: Sequence[int | str], total: int) -> list[int]:
    """Cumulative MR counts at the end of each wave, for a campaign of ``total`` repos."""
    caps, running = [], 0
    for wave in waves:
        size = math.ceil(total * int(wave[:-1]) / 100) if isinstance(wave, str) else wave
        running = min(total, running + size) if isinstance(wave, int) else max(running, size)
        caps.append(running)
    return caps


@dataclass(frozen=True)
class Pace:
    """How many new MRs this run may open, and why not more."""

    allowed: int | None  # None: no limit
    reason: str
    wave: int  # 0-based current wave
    promoted: bool = False


def metrics(store: Store, campaign_id: str, repos: Sequence[str]) -> dict[str, float]:
    records = {r.repo: r for r in store.repos(campaign_id)}
    wave = [records[r] for r in repos if r in records]
    size = len(wave) or 1
    return {
        "merged": sum(r.state == "merged" for r in wave) / size,
        "open": sum(r.state == "mr-open" for r in wave) / size,
        "closed": sum(r.state == "closed" for r in wave) / size,
        "failed_pipelines": sum(r.pipeline == "failed" for r in wave),
        "errors": sum(r.state == "error" for r in wave),
    }


def satisfied(expression: str, values: Mapping[str, float]) -> bool:
    for clause in expression.split(" and "):
        match = _CLAUSE.match(clause)
        assert match is not None  # validated at load
        metric, op, number = match.group(1), match.group(2), float(match.group(3))
        left = values[metric]
        ok = {
            ">=": left >= number,
            "<=": left <= number,
            "==": left == number,
            ">": left > number,
            "<": left < number,
        }[op]
        if not ok:
            return False
    return True


def in_window(rollout: Rollout, now: dt.datetime) -> bool:
    if now.strftime("%a").lower() not in rollout.days:
        return False
    if rollout.window is None:
        return True
    start, end = rollout.window.split("-")
    return start <= now.strftime("%H:%M") < end


def pace(
    rollout: Rollout,
    store: Store,
    campaign_id: str,
    *,
    targets: int,
    next_wave: bool,
    now: dt.datetime | None = None,
) -> Pace:
    """The number of new MRs this run may open, from the recorded history."""
    now = now or dt.datetime.now()
    first_opened: dict[str, float] = {}
    for event in store.events(campaign_id):
        if event.state == "mr-open" and event.repo not in first_opened:
            first_opened[event.repo] = event.at
    opened_order = sorted(first_opened, key=first_opened.__getitem__)
    counts = store.counts(campaign_id)
    limits: list[tuple[int, str]] = []
    if (rollout.window or rollout.days != DAYS) and not in_window(rollout, now):
        return Pace(
            0,
            f"outside the rollout window ({rollout.window or 'all day'} on {', '.join(rollout.days)})",
            0,
        )
    if rollout.max_open is not None:
        limits.append(
            (rollout.max_open - counts.get("mr-open", 0), f"max_open = {rollout.max_open} reached")
        )
    if rollout.per_hour is not None:
        hour_start = now.replace(minute=0, second=0, microsecond=0).timestamp()
        this_hour = sum(at >= hour_start for at in first_opened.values())
        limits.append((rollout.per_hour - this_hour, f"per_hour = {rollout.per_hour} reached"))
    wave, promoted = 0, False
    if rollout.waves:
        caps = wave_caps(rollout.waves, targets)
        stored = store.campaign_wave(campaign_id)
        wave = stored
        opened = len(opened_order)
        while wave < len(caps) - 1 and opened >= caps[wave]:
            previous = opened_order[caps[wave - 1] if wave else 0 : caps[wave]]
            if next_wave or satisfied(rollout.promote_when, metrics(store, campaign_id, previous)):
                wave, promoted, next_wave = wave + 1, True, False
            else:
                break
        if wave != stored:
            store.set_campaign_wave(campaign_id, wave)
        limits.append(
            (
                caps[wave] - opened,
                f"wave {wave + 1} of {len(caps)} is full; it is promoted when {rollout.promote_when} (or apply --next-wave)",
            )
        )
    if not limits:
        return Pace(None, "", wave, promoted)
    allowed, reason = min(limits, key=lambda item: item[0])
    return Pace(max(0, allowed), reason, wave, promoted)
