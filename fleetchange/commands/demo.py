"""``fleetchange demo``: the whole flow on a local fleet, with no server and no token."""

from __future__ import annotations

from rich.console import Console

from .. import paths
from ..campaign import load
from ..demo import build_fleet, demo_campaign_text
from ..state import Store
from .apply import ApplyOptions, apply, check_home_writable, default_jobs
from .status import status


def demo(*, jobs: int | None, console: Console, out: Console) -> int:
    home = paths.home()
    check_home_writable(home)
    fleet = paths.demo_fleet()
    fresh = not (fleet / ".demo-complete").exists()
    names = build_fleet(fleet)
    console.print(
        f"{'Built' if fresh else 'Using'} the demo fleet: {len(names)} repositories in {fleet}"
    )
    campaign_file = home / "demo" / "demo.toml"
    campaign_file.write_text(demo_campaign_text(), encoding="utf-8")
    campaign = load(campaign_file, overrides={"root": str(fleet)})
    code = apply(
        campaign, options=ApplyOptions(jobs=jobs or default_jobs()), console=console, out=out
    )
    store = Store(paths.state_db())
    try:
        status(store, campaign_id=campaign.id, as_json=False, show_all=True, limit=0, out=out)
    finally:
        store.close()
    console.print(
        "\nThe merge requests live on the local forge. Try:\n"
        f"  fleetchange status demo --json\n"
        f"  fleetchange apply {campaign_file}    # again: opens no new MR"
    )
    return code
