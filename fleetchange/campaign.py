"""Campaign files: schema, loading and validation.

Loading is all-or-nothing: any problem raises :class:`CampaignError` whose text
is one line, ``file:line: [table] key: what is wrong``.  Everything a run needs
(codemod sources, templates) is read here, so the resulting :class:`Campaign` is
plain picklable data and its :attr:`Campaign.version` changes whenever anything
that could change the result does.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions

from . import paths
from . import rollout as rollout_keys
from .changes import KINDS
from .changes.base import LoadContext
from .errors import CampaignError
from .rollout import Rollout
from .schema import (
    Key,
    Locator,
    TableContext,
    all_of,
    check_table,
    ere_check,
    int_range,
    non_empty,
    one_line,
    one_of,
    show_key,
    type_word,
)
from .template import unknown_placeholders

MAX_CAMPAIGN_BYTES = 1024 * 1024
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
FORGES = ("local", "gitlab", "github")
MESSAGE_PLACEHOLDERS = ("repo", "campaign", "title")
MR_TITLE_PLACEHOLDERS = ("repo", "campaign")  # what the pipeline fills in MR titles


def _id_check(value: Any) -> str | None:
    if not ID_PATTERN.fullmatch(value):
        return f"{value!r} is not a valid id: use lowercase letters, digits and '-', starting with a letter or digit (at most 63)"
    return None


def _glob_check(value: Any) -> str | None:
    for pattern in value:
        if not pattern.strip():
            return "patterns must not be empty"
    return None


def _branch_check(value: Any) -> str | None:
    if (
        not re.fullmatch(r"[A-Za-z0-9._/-]+", value)
        or ".." in value
        or value.endswith((".lock", "/"))
        or value.startswith(("/", "-"))
    ):
        return f"{value!r} is not a valid branch name"
    return None


def _url_check(value: Any) -> str | None:
    if not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", value):
        return f"expected an http:// or https:// URL, got {value!r}"
    return None


CAMPAIGN_KEYS: Mapping[str, Key] = {
    "id": Key("str", required=True, check=_id_check, doc="unique id: [a-z0-9][a-z0-9-]*"),
    "title": Key("str", required=True, check=non_empty, doc="MR title and commit subject"),
    "description": Key("str", default="", doc="why and how; the MR body (markdown)"),
    "branch": Key("str", check=_branch_check, doc="branch name (default fleetchange/<id>)"),
}
TARGET_KEYS: Mapping[str, Key] = {
    "forge": Key("str", required=True, check=one_of(*FORGES), doc="local, gitlab or github"),
    "root": Key("str", check=non_empty, doc="local forge folder (relative to this file)"),
    "url": Key("str", check=_url_check, doc="GitLab/GitHub base URL"),
    "token_env": Key("str", doc="environment variable holding the token"),
    "groups": Key("list[str]", default=[], check=_glob_check, doc="GitLab groups / GitHub orgs"),
    "repos": Key("list[str]", default=["**"], check=_glob_check, doc="globs over group/name"),
    "exclude": Key("list[str]", default=[], check=_glob_check, doc="globs to leave out"),
    "topics": Key("list[str]", default=[], doc="only repos with one of these topics"),
    "contains": Key(
        "str",
        check=all_of(non_empty, ere_check),
        doc="only repos whose default branch matches (git grep -E)",
    ),
    "include_archived": Key("bool", default=False),
    "include_forks": Key("bool", default=False),
}
CHANGE_COMMON_KEYS: Mapping[str, Key] = {
    "kind": Key("str", required=True, check=one_of(*KINDS), doc="libcst, command, toml or file"),
    "name": Key("str", doc="label for this step in the MR body"),
    "paths": Key("list[str]", check=_glob_check, doc="which files the step may touch"),
    "grep": Key(
        "str",
        check=all_of(non_empty, ere_check),
        doc="only files matching this regex (git grep -E)",
    ),
}
TEST_KEYS: Mapping[str, Key] = {
    "command": Key("str", check=non_empty, doc="run after the change; non-zero fails the repo"),
    "timeout": Key("int", default=600, check=int_range(1, 86_400), doc="seconds"),
}
MR_KEYS: Mapping[str, Key] = {
    "title": Key("str", check=non_empty, doc="default: campaign title"),
    "labels": Key("list[str]", default=["fleetchange"]),
    "draft": Key("bool", default=False),
    "assignees": Key("list[str]", default=[]),
    "reviewers": Key("list[str]", default=[]),
    "reviewers_from_codeowners": Key(
        "bool", default=False, doc="add the CODEOWNERS of the changed files as reviewers"
    ),
}
COMMIT_KEYS: Mapping[str, Key] = {
    "message": Key(
        "str", check=non_empty, doc="default: campaign title; {repo} {campaign} {title}"
    ),
    "author_name": Key("str", default="fleetchange", check=non_empty),
    "author_email": Key("str", default="fleetchange@localhost", check=non_empty),
}
TOP_LEVEL = {
    "campaign": CAMPAIGN_KEYS,
    "targets": TARGET_KEYS,
    "test": TEST_KEYS,
    "merge_request": MR_KEYS,
    "commit": COMMIT_KEYS,
    "rollout": rollout_keys.KEYS,
}


@dataclass(frozen=True)
class Targets:
    forge: str
    root: Path | None
    url: str | None
    token_env: str | None
    groups: tuple[str, ...]
    repos: tuple[str, ...]
    exclude: tuple[str, ...]
    topics: tuple[str, ...]
    contains: str | None
    include_archived: bool
    include_forks: bool


@dataclass(frozen=True)
class Step:
    kind: str
    index: int
    name: str
    paths: tuple[str, ...]
    grep: str | None
    options: Mapping[str, Any]


@dataclass(frozen=True)
class TestSpec:
    command: str | None
    timeout: int


@dataclass(frozen=True)
class MRSettings:
    title: str
    labels: tuple[str, ...]
    draft: bool
    assignees: tuple[str, ...]
    reviewers: tuple[str, ...]
    reviewers_from_codeowners: bool = False


@dataclass(frozen=True)
class CommitSettings:
    message: str
    author_name: str
    author_email: str


@dataclass(frozen=True)
class Campaign:
    id: str
    title: str
    description: str
    branch: str
    file: Path
    targets: Targets
    steps: tuple[Step, ...]
    test: TestSpec
    merge_request: MRSettings
    commit: CommitSettings
    rollout: Rollout = field(default_factory=Rollout)
    version: str = field(default="")  # hash of everything that shapes the result


def _unwrap(value: Any) -> Any:
    return value.unwrap() if hasattr(value, "unwrap") else value


def _read(path: Path, label: str) -> str:
    too_big = "file is larger than 1 MiB; is this really a campaign?"
    try:
        if not path.exists():
            raise CampaignError(label, "file not found")
        if path.is_dir():
            raise CampaignError(label, "is a directory, expected a campaign TOML file")
        if path.stat().st_size > MAX_CAMPAIGN_BYTES:
            raise CampaignError(label, too_big)
        with path.open("rb") as stream:  # bounded: /dev/zero or a pipe has no size to stat
            data = stream.read(MAX_CAMPAIGN_BYTES + 1)
    except OSError as exc:
        raise CampaignError(label, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_CAMPAIGN_BYTES:
        raise CampaignError(label, too_big)
    try:
        text = data.removeprefix(codecs.BOM_UTF8).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CampaignError(label, f"not UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise CampaignError(
            label, "file is empty; a campaign needs [campaign], [targets] and [[change]]"
        )
    return text


_DUPLICATE = re.compile(r'Key "(?P<key>.*)" already exists\.?$')


def _parse(text: str, label: str) -> dict[str, Any]:
    try:
        return _unwrap(tomlkit.parse(text))  # type: ignore[no-any-return]
    except tomlkit.exceptions.ParseError as exc:
        message = str(exc).rsplit(" at line ", 1)[0]
        line, col = _position(text, exc.line, exc.col)
        where = f" (column {col + 1})"
        duplicate = _DUPLICATE.match(message)
        if duplicate:
            # tomlkit reports where it noticed (e.g. the end of the second [table]),
            # not the second definition
            key = duplicate["key"]
            found = Locator(text).definitions(key, before=line)
            line = found[-1] if len(found) > 1 else line
            message, where = f"{show_key(key)} is defined twice", ""
        elif isinstance(exc, tomlkit.exceptions.UnexpectedEofError) or (
            "\0" not in text and ("'\\x00'" in message or "\\u0000" in message)
        ):  # tomlkit reads a NUL past the end of the text
            unclosed = Locator(text).unclosed
            message, where = "unexpected end of file", ""
            if unclosed is not None:
                opened = unclosed.quote or "[ or {"
                message, line = f"{opened} opened here is never closed", unclosed.since
        elif isinstance(exc, tomlkit.exceptions.UnexpectedCharError) and (
            (after := _after_equals(text, line, col)) is not None
        ):
            if after.isalpha():
                message = 'a string value needs quotes: write key = "text"'
            elif after in ("", "#"):
                message = "the value after = is missing"
        elif isinstance(exc, tomlkit.exceptions.InvalidControlChar) and "\\u000a" in message:
            message = (
                "unterminated string (close the quote on the same line, "
                'or use """ for multi-line strings)'
            )
        message = message.replace("Unexpected character: '\\n'", "unexpected end of line")
        raise CampaignError(
            label, f"TOML syntax error: {one_line(message)}{where}", line=line
        ) from None
    except (tomlkit.exceptions.TOMLKitError, ValueError, RecursionError) as exc:
        raise CampaignError(label, f"TOML syntax error: {one_line(str(exc))}") from None


def _position(text: str, line: int, col: int) -> tuple[int, int]:
    """tomlkit's (line, column) counted in ``"\n"``-separated lines.

    tomlkit numbers lines with ``str.splitlines``, which also breaks at a lone CR,
    U+2028, U+0085... -- characters a TOML string may hold, and editors do not count.
    """
    lines = text.splitlines(keepends=True)
    index = min(sum(len(part) for part in lines[: line - 1]) + col, len(text))
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1)


def _after_equals(text: str, line: int, col: int) -> str | None:
    """The character at the error if it is the first after ``key =`` ("" at the line's end)."""
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        return None
    current = lines[line - 1].rstrip("\r")
    return current[col : col + 1] if current[:col].rstrip().endswith("=") else None


def _expand_path(raw: str, base_dir: Path) -> Path:
    """``~``, ``$VARS`` and ``${FLEETCHANGE_HOME}`` (its default when unset), then relative.

    Raises ``OSError`` (e.g. name too long) or ``ValueError`` (a NUL from a variable).
    """
    raw = raw.replace("${FLEETCHANGE_HOME}", str(paths.home())).replace(
        "$FLEETCHANGE_HOME", str(paths.home())
    )
    expanded = os.path.expanduser(os.path.expandvars(raw))
    return (base_dir / expanded).resolve()


def load(path: Path | str, *, overrides: Mapping[str, Any] | None = None) -> Campaign:
    """Read, validate and freeze a campaign file.

    ``overrides`` replaces ``[targets]`` keys after validation of the file (the
    demo points its packaged campaign at the demo fleet this way).
    """
    path = Path(path)
    label = one_line(str(path))
    text = _read(path, label)
    raw = _parse(text, label)
    locator = Locator(text)
    base_dir = path.resolve().parent

    known = ", ".join(
        ["[campaign]", "[targets]", "[[change]]"]
        + [f"[{name}]" for name in TOP_LEVEL if name not in ("campaign", "targets")]
    )
    for name, value in raw.items():
        if name == "change":
            continue
        if name not in TOP_LEVEL:
            if isinstance(value, dict):
                what, where = f"unknown table (known: {known})", f"[{show_key(name)}]"
            else:
                what, where = f"unknown top-level key (known tables: {known})", show_key(name)
            raise CampaignError(label, what, line=locator.line("", name), key=where)
        if not isinstance(value, dict):
            raise CampaignError(
                label,
                f"expected a [{name}] table, got {type_word(value)}",
                line=locator.line("", name),
                key=name,
            )
    for required in ("campaign", "targets"):
        if required not in raw:
            raise CampaignError(label, f"missing [{required}] table")

    def table(name: str) -> dict[str, Any]:
        ctx = TableContext(label, locator, name)
        return check_table(raw.get(name, {}), TOP_LEVEL[name], ctx)

    meta = table("campaign")
    tgt = table("targets")
    test = table("test")
    mr = table("merge_request")
    commit = table("commit")
    rollout = table("rollout")

    targets_ctx = TableContext(label, locator, "targets")
    if overrides:
        tgt.update(overrides)
    root: Path | None = None
    if tgt["forge"] == "local":
        if not tgt["root"]:
            raise targets_ctx.error('is required for forge = "local"', "root")
        try:
            root = _expand_path(tgt["root"], base_dir)
            is_dir = root.is_dir()
        except (OSError, ValueError) as exc:
            problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise targets_ctx.error(f"unusable forge root: {problem}", "root") from None
        if not is_dir:
            raise targets_ctx.error(
                f"forge root {tgt['root']!r} does not exist (looked at {root})", "root"
            )
    elif not tgt["url"]:
        tgt["url"] = {"gitlab": "https://gitlab.com", "github": "https://api.github.com"}[
            tgt["forge"]
        ]
    targets = Targets(
        forge=tgt["forge"],
        root=root,
        url=tgt["url"],
        token_env=tgt["token_env"],
        groups=tuple(tgt["groups"]),
        repos=tuple(tgt["repos"]),
        exclude=tuple(tgt["exclude"]),
        topics=tuple(tgt["topics"]),
        contains=tgt["contains"],
        include_archived=tgt["include_archived"],
        include_forks=tgt["include_forks"],
    )

    changes = raw.get("change")
    if changes is None:
        raise CampaignError(label, "no [[change]] steps: a campaign needs at least one")
    if not isinstance(changes, list) or not all(isinstance(c, dict) for c in changes):
        raise CampaignError(
            label,
            f"expected an array of tables (write [[change]] for each step), got {type_word(changes)}",
            line=locator.line("", "change"),
            key="change",
        )
    if not changes:
        raise CampaignError(
            label,
            "no [[change]] steps: a campaign needs at least one",
            line=locator.line("", "change"),
            key="change",
        )
    steps = tuple(
        _load_step(index, change, label, locator, base_dir) for index, change in enumerate(changes)
    )

    # the commit message is a template; without one the campaign title is used as one
    commit_message = commit["message"] or meta["title"]
    message_ctx, message_key = (
        (TableContext(label, locator, "commit"), "message")
        if commit["message"]
        else (TableContext(label, locator, "campaign"), "title")
    )
    unknown = unknown_placeholders(commit_message, MESSAGE_PLACEHOLDERS)
    if unknown:
        raise message_ctx.error(
            f"unknown placeholder {{{unknown[0]}}} in the commit message (known: "
            + ", ".join("{" + p + "}" for p in MESSAGE_PLACEHOLDERS)
            + "; write {{ and }} for literal braces)",
            message_key,
        )
    unknown = unknown_placeholders(mr["title"] or "", MR_TITLE_PLACEHOLDERS)
    if unknown:
        raise TableContext(label, locator, "merge_request").error(
            f"unknown placeholder {{{unknown[0]}}} (known: "
            + ", ".join("{" + p + "}" for p in MR_TITLE_PLACEHOLDERS)
            + "; write {{ and }} for literal braces)",
            "title",
        )

    campaign = Campaign(
        id=meta["id"],
        title=meta["title"],
        description=meta["description"],
        branch=meta["branch"] or f"fleetchange/{meta['id']}",
        file=path.resolve(),
        targets=targets,
        steps=steps,
        test=TestSpec(command=test["command"], timeout=test["timeout"]),
        merge_request=MRSettings(
            title=mr["title"] or meta["title"],
            labels=tuple(mr["labels"]),
            draft=mr["draft"],
            assignees=tuple(mr["assignees"]),
            reviewers=tuple(mr["reviewers"]),
            reviewers_from_codeowners=mr["reviewers_from_codeowners"],
        ),
        commit=CommitSettings(
            message=commit_message,
            author_name=commit["author_name"],
            author_email=commit["author_email"],
        ),
        rollout=rollout_keys.from_table(rollout),
    )
    return _with_version(campaign)


def _load_step(
    index: int, raw: dict[str, Any], label: str, locator: Locator, base_dir: Path
) -> Step:
    ctx = TableContext(label, locator, "change", index)
    kind_name = raw.get("kind")
    if kind_name is None:
        raise ctx.error("is required (one of " + ", ".join(KINDS) + ")", "kind")
    if not isinstance(kind_name, str):
        raise ctx.error(f"expected a string, got {type_word(kind_name)}", "kind")
    if kind_name not in KINDS:
        raise ctx.error(f"unknown kind {kind_name!r} (known: {', '.join(KINDS)})", "kind")
    kind = KINDS[kind_name]
    common = check_table(
        {k: v for k, v in raw.items() if k in CHANGE_COMMON_KEYS},
        CHANGE_COMMON_KEYS,
        ctx,
    )
    options = check_table(
        {k: v for k, v in raw.items() if k not in CHANGE_COMMON_KEYS},
        kind.KEYS,
        ctx,
        allow=frozenset(CHANGE_COMMON_KEYS),
    )
    options["grep"] = common["grep"]
    try:
        options = kind.prepare(options, LoadContext(table=ctx, base_dir=base_dir))
    except CampaignError:
        raise
    except Exception as exc:  # e.g. a codemod constructor rejecting its args with ValueError
        detail = str(exc) if len(str(exc)) <= 300 else str(exc)[:297] + "..."
        raise ctx.error(f"invalid {kind_name} step: {type(exc).__name__}: {detail}") from None
    return Step(
        kind=kind_name,
        index=index,
        name=common["name"] or kind.describe(options),
        paths=tuple(common["paths"] or kind.DEFAULT_PATHS),
        grep=common["grep"],
        options=options,
    )


# options that pace or bound a step without changing what it produces: not part of the version
PACING_OPTIONS = frozenset({"max_tokens", "concurrency", "request_timeout"})


def _with_version(campaign: Campaign) -> Campaign:
    """Hash everything that shapes a repo's branch or MR, so any edit re-runs the fleet.

    Repos whose outcome did not change cost only a fetch: the push and the MR
    update are skipped when the tree and body are already as wanted.
    """
    shaping = {
        "branch": campaign.branch,
        "contains": campaign.targets.contains,
        "description": campaign.description,
        "merge_request": campaign.merge_request.__dict__,
        "steps": [
            {
                "kind": s.kind,
                "paths": s.paths,
                "grep": s.grep,
                "options": {k: v for k, v in s.options.items() if k not in PACING_OPTIONS},
            }
            for s in campaign.steps
        ],
        "test": [campaign.test.command, campaign.test.timeout],
        "commit": [
            campaign.commit.message,
            campaign.commit.author_name,
            campaign.commit.author_email,
        ],
    }
    digest = hashlib.sha256(json.dumps(shaping, sort_keys=True, default=str).encode()).hexdigest()
    return Campaign(**{**campaign.__dict__, "version": digest[:16]})
