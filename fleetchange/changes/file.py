"""``kind = "file"``: create or replace one file from a template.

The template (``template`` file relative to the campaign, or inline ``content``)
may use ``{repo}``, ``{repo_name}``, ``{group}``, ``{campaign}``, ``{title}`` and
``{default_branch}``; ``{{``/``}}`` are literal braces.  ``path`` may use them too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..schema import Key, non_empty, one_of
from ..template import fill, unknown_placeholders
from .base import LoadContext, StepContext, StepResult, UnsafePath, safe_target, write_if_changed

PLACEHOLDERS = ("repo", "repo_name", "group", "campaign", "title", "default_branch")
MAX_TEMPLATE_BYTES = 1024 * 1024

KEYS: Mapping[str, Key] = {
    "path": Key(
        "str", required=True, check=non_empty, doc="file to write, relative to the repo root"
    ),
    "template": Key("str", doc="template file, relative to the campaign file"),
    "content": Key("str", doc="inline template (instead of template)"),
    "mode": Key(
        "str",
        default="create-or-replace",
        check=one_of("create", "replace", "create-or-replace"),
        doc="create: only when missing; replace: only when present",
    ),
}
USES_CANDIDATES: bool = False
DEFAULT_PATHS: tuple[str, ...] = ("**",)


def prepare(options: dict[str, Any], ctx: LoadContext) -> dict[str, Any]:
    error = ctx.table.error
    if (options["template"] is None) == (options["content"] is None):
        raise error("give exactly one of template or content")
    if options["template"] is not None:
        path = (ctx.base_dir / options["template"]).resolve()
        if not path.is_file():
            raise error(
                f"template file {options['template']} not found (looked at {path})", "template"
            )
        if path.stat().st_size > MAX_TEMPLATE_BYTES:
            raise error("template file is larger than 1 MiB", "template")
        try:
            options["content"] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise error(f"cannot read template: {exc}", "template") from None
    key = "template" if options["template"] is not None else "content"
    for name, text in (("path", options["path"]), (key, options["content"])):
        unknown = unknown_placeholders(text, PLACEHOLDERS)
        if unknown:
            raise error(
                f"unknown placeholder {{{unknown[0]}}} (known: "
                + ", ".join("{" + p + "}" for p in PLACEHOLDERS)
                + ")",
                name,
            )
    try:
        safe_target(ctx.base_dir, fill(options["path"], dict.fromkeys(PLACEHOLDERS, "x")))
    except UnsafePath:
        raise error("must be a relative path inside the repository", "path") from None
    return options


def describe(options: Mapping[str, Any]) -> str:
    return f"file {options['path']}"


def apply(options: Mapping[str, Any], ctx: StepContext) -> StepResult:
    group, _, name = ctx.repo.rpartition("/")
    values = {
        "repo": ctx.repo,
        "repo_name": name,
        "group": group,
        "campaign": ctx.campaign_id,
        "title": ctx.title,
        "default_branch": ctx.default_branch,
    }
    relative = fill(options["path"], values)
    try:
        target = safe_target(ctx.workdir, relative)
    except UnsafePath as exc:
        return StepResult(summary="", failed=str(exc))
    exists = target.exists()
    if (options["mode"] == "create" and exists) or (options["mode"] == "replace" and not exists):
        return StepResult(summary=f"{relative} left as it is ({options['mode']} only)")
    if exists and not target.is_file():
        return StepResult(summary="", failed=f"{relative} exists and is not a file")
    if write_if_changed(target, fill(options["content"], values).encode("utf-8")):
        return StepResult(
            summary=f"{'updated' if exists else 'created'} {relative}", changed=[relative]
        )
    return StepResult(summary=f"{relative} already up to date")
