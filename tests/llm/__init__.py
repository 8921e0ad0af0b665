"""Tests of ``kind = "llm"`` changes, against the scripted server in tests/servers/openai.py.

Helpers shared by the test modules: write a campaign with one llm step into a
temporary folder, load it with the real loader, and run the step on a work tree.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from fleetchange.campaign import Campaign, load
from fleetchange.changes import llm
from fleetchange.changes.base import StepContext, StepResult

DEFAULT_PROMPT = "Edit the {language} code of {repo} in {path} as asked.\n\n{code}\n"


def no_wait(seconds: float) -> None:
    """Injected instead of time.sleep: retries never wait in tests."""


def write_campaign(
    folder: Path,
    endpoint: str,
    change: str = "",
    *,
    prompt: str | None = DEFAULT_PROMPT,
    prompt_name: str = "codemods/prompts/edit.md",
    model: str = "test-model",
    root: Path | None = None,
) -> Path:
    """A campaign file in ``folder`` with one ``kind = "llm"`` step; returns its path.

    ``change`` holds extra lines of the [[change]] table (TOML).
    """
    if prompt is not None:
        prompt_path = folder / prompt_name
        prompt_path.parent.mkdir(parents=True, exist_ok=True)
        prompt_path.write_text(prompt)
    if root is None:
        root = folder / "fleet"
        root.mkdir(exist_ok=True)
    text = textwrap.dedent(
        f"""\
        [campaign]
        id = "llm-test"
        title = "Model edit"

        [targets]
        forge = "local"
        root = "{root.as_posix()}"

        [[change]]
        kind = "llm"
        endpoint = "{endpoint}"
        model = "{model}"
        prompt = "{prompt_name}"
        """
    )
    text += textwrap.dedent(change)
    path = folder / "campaign.toml"
    path.write_text(text)
    return path


def load_options(folder: Path, endpoint: str, change: str = "", **kwargs: Any) -> dict[str, Any]:
    campaign: Campaign = load(write_campaign(folder, endpoint, change, **kwargs))
    return dict(campaign.steps[0].options)


def run(
    options: dict[str, Any],
    workdir: Path,
    candidates: list[str],
    *,
    home: Path,
    **ctx: Any,
) -> StepResult:
    context = StepContext(
        workdir=workdir,
        repo="group/service",
        campaign_id="llm-test",
        candidates=candidates,
        home=home,
        **ctx,
    )
    return llm.apply(options, context)


def reset(max_retries: int = 3) -> None:
    """Fresh shared clients that never sleep between retries."""
    llm.reset_clients()
    llm.CLIENT_DEFAULTS.clear()
    llm.CLIENT_DEFAULTS.update(sleep=no_wait, max_retries=max_retries)
