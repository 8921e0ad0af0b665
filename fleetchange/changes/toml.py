"""``kind = "toml"``: edit one TOML file with tomlkit, keeping comments and layout.

- ``set = {"tool.ruff.line-length" = 100}`` sets dotted keys (tables are created);
- ``remove = ["tool.black"]`` deletes keys;
- ``dependencies = {requests = ">=2.32"}`` rewrites the version constraint of those
  packages wherever ``pyproject.toml`` lists them (``project.dependencies``,
  ``project.optional-dependencies``, ``dependency-groups``, Poetry's tables),
  keeping extras and environment markers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

import tomlkit
import tomlkit.exceptions
from tomlkit.items import Table

from ..schema import Key, non_empty
from .base import LoadContext, StepContext, StepResult, UnsafePath, safe_target, write_if_changed

KEYS: Mapping[str, Key] = {
    "file": Key("str", default="pyproject.toml", check=non_empty, doc="TOML file in the repo"),
    "set": Key("table", default={}, doc='dotted key = value, e.g. {"tool.ruff.line-length" = 100}'),
    "remove": Key("list[str]", default=[], doc="dotted keys to delete"),
    "dependencies": Key("table", default={}, doc='package = "constraint" to rewrite'),
    "create": Key("bool", default=False, doc="create the file when the repo has none"),
}
USES_CANDIDATES: bool = False
DEFAULT_PATHS: tuple[str, ...] = ("**",)

_REQUIREMENT = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?P<extras>\[[^\]]*\])?\s*(?P<spec>[^;@]*?)\s*(?P<marker>;.*)?$"
)
_CONSTRAINT = re.compile(
    r"^\s*(((~=|==|!=|<=|>=|<|>|===)\s*[A-Za-z0-9.*+!-]+)\s*,?\s*)*$|^[\^~]?[0-9][A-Za-z0-9.*]*$|^\*$"
)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def prepare(options: dict[str, Any], ctx: LoadContext) -> dict[str, Any]:
    error = ctx.table.error
    try:
        safe_target(ctx.base_dir, options["file"])
    except UnsafePath:
        raise error("must be a relative path inside the repository", "file") from None
    if not (options["set"] or options["remove"] or options["dependencies"]):
        raise error("nothing to do: give set, remove or dependencies")
    for dotted in [*options["set"], *options["remove"]]:
        if not all(part.strip() for part in dotted.split(".")):
            raise error(
                f"invalid dotted key {dotted!r}", "set" if dotted in options["set"] else "remove"
            )
    for name, constraint in options["dependencies"].items():
        if not isinstance(constraint, str) or not _CONSTRAINT.match(constraint):
            raise error(
                f'{name}: expected a version constraint such as ">=2.32", got {constraint!r}',
                "dependencies",
            )
    options["set"] = {key: _plain(value) for key, value in options["set"].items()}
    return options


def _plain(value: Any) -> Any:
    """tomlkit items -> plain Python, so options pickle."""
    return value.unwrap() if hasattr(value, "unwrap") else value


def describe(options: Mapping[str, Any]) -> str:
    return f"toml edit of {options['file']}"


def _set(doc: Any, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = doc
    for part in parts[:-1]:
        if part not in node:
            node[part] = tomlkit.table()
        node = node[part]
        if not isinstance(node, MutableMapping):
            raise ValueError(f"{dotted}: {part} is not a table")
    node[parts[-1]] = value


def _remove(doc: Any, dotted: str) -> None:
    parts = dotted.split(".")
    node = doc
    for part in parts[:-1]:
        if not isinstance(node, Mapping) or part not in node:
            return
        node = node[part]
    if isinstance(node, MutableMapping) and parts[-1] in node:
        del node[parts[-1]]


def _bump_list(items: Any, wanted: Mapping[str, str]) -> int:
    count = 0
    if not isinstance(items, list):
        return 0
    for index, requirement in enumerate(items):
        if not isinstance(requirement, str):
            continue
        match = _REQUIREMENT.match(requirement.strip())
        if not match or canonical(match["name"]) not in wanted:
            continue
        constraint = wanted[canonical(match["name"])]
        marker = f"; {match['marker'][1:].strip()}" if match["marker"] else ""
        new = f"{match['name']}{match['extras'] or ''}{constraint}{marker}"
        if new != str(requirement):
            items[index] = new
            count += 1
    return count


def _bump_poetry(table: Any, wanted: Mapping[str, str]) -> int:
    count = 0
    if not isinstance(table, MutableMapping):
        return 0
    for name in list(table):
        if canonical(name) not in wanted or canonical(name) == "python":
            continue
        constraint = wanted[canonical(name)]
        value = table[name]
        if isinstance(value, str) and value != constraint:
            table[name] = constraint
            count += 1
        elif (
            isinstance(value, Table | dict)
            and "version" in value
            and value["version"] != constraint
        ):
            value["version"] = constraint
            count += 1
    return count


def bump(doc: Any, dependencies: Mapping[str, str]) -> int:
    wanted = {canonical(name): constraint for name, constraint in dependencies.items()}
    project = doc.get("project", {})
    count = _bump_list(project.get("dependencies"), wanted)
    for group in project.get("optional-dependencies", {}).values():
        count += _bump_list(group, wanted)
    for group in doc.get("dependency-groups", {}).values():
        count += _bump_list(group, wanted)
    poetry = doc.get("tool", {}).get("poetry", {})
    count += _bump_poetry(poetry.get("dependencies"), wanted)
    count += _bump_poetry(poetry.get("dev-dependencies"), wanted)
    for group in poetry.get("group", {}).values():
        count += _bump_poetry(group.get("dependencies"), wanted)
    return count


def apply(options: Mapping[str, Any], ctx: StepContext) -> StepResult:
    relative = options["file"]
    try:
        target = safe_target(ctx.workdir, relative)
    except UnsafePath as exc:
        return StepResult(summary="", failed=str(exc))
    if not target.is_file():
        if not options["create"]:
            return StepResult(summary=f"no {relative}: nothing to edit")
        original = ""
    else:
        try:
            original = target.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            return StepResult(summary="", failed=f"{relative}: not UTF-8")
    try:
        doc = tomlkit.parse(original)
        for dotted, value in options["set"].items():
            _set(doc, dotted, value)
        for dotted in options["remove"]:
            _remove(doc, dotted)
        bumped = bump(doc, options["dependencies"])
    except (tomlkit.exceptions.TOMLKitError, ValueError) as exc:
        return StepResult(summary="", failed=f"{relative}: {exc}")
    if write_if_changed(target, tomlkit.dumps(doc).encode("utf-8")):
        detail = f", {bumped} constraint{'s' if bumped != 1 else ''} bumped" if bumped else ""
        return StepResult(summary=f"edited {relative}{detail}", changed=[relative])
    return StepResult(summary=f"{relative} already as wanted")
