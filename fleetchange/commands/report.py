"""``fleetchange report``: a self-contained HTML progress page, or the burndown as JSON."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console

from ..errors import UsageError
from ..report import burndown, first_opened, render_html
from ..state import Store


def report(
    store: Store,
    *,
    campaign_id: str,
    html_path: Path | None,
    as_json: bool,
    out: Console,
) -> int:
    campaign = store.campaign(campaign_id)
    if campaign is None:
        known = ", ".join(c.id for c in store.campaigns()) or "none yet"
        raise UsageError(f"unknown campaign {campaign_id!r} (known: {known})")
    if html_path is None and not as_json:
        raise UsageError("nothing to report: give --html PATH and/or --json")
    now = time.time()
    events = list(store.events(campaign_id))
    points = burndown(events, now)
    written: Path | None = None
    if html_path is not None:
        page = render_html(
            campaign,
            store.counts(campaign_id),
            store.repos(campaign_id),
            points,
            now,
            opened=first_opened(events),
        )
        written = write_atomically(html_path, page)
    if as_json:
        payload = {
            "campaign": campaign_id,
            "html": str(written) if written else None,
            "points": [p.as_json() for p in points],
        }
        print(json.dumps(payload, indent=2))
    elif written is not None:
        out.print(f"wrote {written}", markup=False, highlight=False, soft_wrap=True)
    return 0


def write_atomically(path: Path, text: str) -> Path:
    """Write ``text`` next to ``path`` then rename it over: readers see old or new, never half."""
    target = path.expanduser().absolute()
    if target.is_dir():
        raise UsageError(f"--html: {path} is a directory")
    umask = os.umask(0)
    os.umask(umask)
    fd, temp = -1, ""
    try:
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            fd = -1
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, target)
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
        if temp:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    return target
