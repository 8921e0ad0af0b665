"""Where fleetchange keeps what it writes: everything lives under ``$FLEETCHANGE_HOME``."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """``$FLEETCHANGE_HOME``, else ``$XDG_STATE_HOME/fleetchange``, else ``~/.local/state/...``."""
    explicit = os.environ.get("FLEETCHANGE_HOME")
    if explicit:
        return Path(explicit).expanduser().absolute()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return (base / "fleetchange").absolute()


def state_db() -> Path:
    return home() / "state.sqlite3"


def logs() -> Path:
    return home() / "logs"


def locks() -> Path:
    return home() / "locks"


def demo_fleet() -> Path:
    return home() / "demo" / "fleet"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make the leaf owner-only, whatever the umask."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path
