"""The merge request a reviewer receives: why, what, how it was made and tested."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from . import __version__
from .campaign import Campaign

MARKER = "<!-- fleetchange:campaign={id} version={version} -->"
MAX_LISTED_FILES = 50


@dataclass(frozen=True)
class StepReport:
    name: str
    summary: str
    version: str = ""
    notes: tuple[str, ...] = ()


def render(
    campaign: Campaign,
    *,
    repo: str,
    files: Sequence[str],
    steps: Sequence[StepReport],
    problems: Sequence[str],
    test_summary: str,
) -> str:
    lines = [campaign.description.strip() or campaign.title, "", "## What changed", ""]
    for step in steps:
        lines.append(f"- **{step.name}**: {step.summary}")
        lines += [f"  - {note}" for note in step.notes]
    lines += ["", f"{len(files)} file{'s' if len(files) != 1 else ''} changed:", ""]
    lines += [f"- `{path}`" for path in files[:MAX_LISTED_FILES]]
    if len(files) > MAX_LISTED_FILES:
        lines.append(f"- … and {len(files) - MAX_LISTED_FILES} more")
    if problems:
        lines += ["", "Left alone (review by hand if they matter):", ""]
        lines += [f"- {p}" for p in problems[:MAX_LISTED_FILES]]
    lines += ["", "## Tests", "", test_summary]
    lines += ["", "## How this was made", ""]
    for step in steps:
        version = f" (version `{step.version}`)" if step.version else ""
        lines.append(f"- {step.name}{version}")
    lines += [
        f"- fleetchange {__version__}, campaign `{campaign.id}` version `{campaign.version}`",
        "",
        "To reproduce locally, from a checkout of the campaign file:",
        "",
        "```",
        f"fleetchange apply {campaign.file.name} --only {repo} --dry-run",
        "```",
        "",
        "This merge request was opened by fleetchange. Commits pushed to the branch by "
        "people are never overwritten.",
        "",
        MARKER.format(id=campaign.id, version=campaign.version),
    ]
    return "\n".join(lines)
