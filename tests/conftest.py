"""Shared fixtures: every test gets its own FLEETCHANGE_HOME and a pinned git identity."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fleet import LocalFleet


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches the developer's $HOME, state or git config."""
    home = tmp_path_factory.mktemp("fc-home")
    monkeypatch.setenv("FLEETCHANGE_HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test Author")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "author@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test Author")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "author@example.com")
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    # the forge clients are cached per process; campaigns in tests point at fresh folders
    from fleetchange.pipeline import forge_for

    forge_for.cache_clear()


@pytest.fixture
def home() -> Path:
    return Path(os.environ["FLEETCHANGE_HOME"])


@pytest.fixture
def fleet(tmp_path: Path) -> LocalFleet:
    return LocalFleet(tmp_path / "forge")
