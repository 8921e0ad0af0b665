"""Errors by kind: what the CLI prints and which exit status it returns."""

from __future__ import annotations


class FleetchangeError(Exception):
    """An expected failure: one line on stderr, exit status :attr:`exit_code`."""

    exit_code = 1


class UsageError(FleetchangeError):
    """Bad input (campaign file, option, environment): exit 2, nothing written."""

    exit_code = 2


class CampaignError(UsageError):
    """A campaign file is invalid.  ``str()`` is ``file:line: where: what`` ."""

    def __init__(self, file: str, what: str, *, line: int | None = None, key: str = "") -> None:
        self.file, self.line, self.key, self.what = file, line, key, what
        location = f"{file}:{line}" if line else file
        super().__init__(f"{location}: {key + ': ' if key else ''}{what}")


class LockedError(UsageError):
    """Another fleetchange process holds the campaign lock."""
