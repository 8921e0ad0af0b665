"""``kind = "llm"``: a model edits code (or writes a file) through an OpenAI-compatible API.

Three modes:

- ``target = "file"`` (the default): each candidate file goes to the model whole and
  its answer replaces the file;
- ``target = {node = "function", calls = "optparse"}``: each matching function (or
  class) goes to the model on its own and the answer is spliced back with libcst,
  every byte outside the targets kept as it was;
- ``create = "AGENTS.md"``: the model writes a new file from the repository's context
  (file tree, README, ``pyproject.toml``, CODEOWNERS).

Every answer is checked before it touches the tree: one fenced code block (bare code
is accepted), not truncated, not empty, not a refusal, not over ``max_answer_bytes``;
Python must parse with libcst and TOML with tomlkit; then the ``validate`` commands
run.  A failed check re-prompts the model with what went wrong, up to
``max_attempts``; after that the repository fails as ``llm-failed`` and every file
the step touched is restored, so nothing unvalidated is ever committed.  Answers are
cached under ``$FLEETCHANGE_HOME/llm-cache`` so a re-run costs no tokens and makes
the same edit.  ``ctx.token_budget`` stops new model calls (``budget-exhausted``).
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import libcst as cst
import tomlkit
import tomlkit.exceptions

from .. import paths
from ..gitops import GitError, git, redact
from ..llm.cache import ResponseCache, cache_key
from ..llm.client import ChatClient, Completion, LLMAuthError, LLMError, Message
from ..llm.targets import NODE_KINDS, Target, TargetError, TargetSpec, find_targets, splice
from ..process import run_with_timeout
from ..schema import Check, Key, int_range, non_empty, regex_check
from ..template import fill, placeholders, unknown_placeholders
from .base import (
    AUTH_FAILED,
    LoadContext,
    StepContext,
    StepResult,
    UnsafePath,
    safe_target,
    write_if_changed,
)

PLACEHOLDERS = ("repo", "path", "language", "code", "context")
VALIDATE_PLACEHOLDERS = ("file",)
MAX_PROMPT_BYTES = 256 * 1024
MAX_CONTEXT_BYTES = 1024 * 1024
GENERATED_MARKER = "@" + "generated"
#: what a budget check expects a ``create`` answer to cost (an edit's: the code's size)
CREATE_ANSWER_TOKENS = 2000
#: bumped whenever the fixed instructions change, so cached answers are not reused
PROTOCOL_VERSION = "1"


def _url_check(value: Any) -> str | None:
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises on a port out of range or not a number
    except ValueError as exc:
        return f"{value!r} is not a valid URL: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{value!r} is not an http(s) URL such as http://127.0.0.1:11434/v1"
    if parts.username or parts.password:
        return "must not carry credentials: put the key in an environment variable named by api_key_env"
    if parts.query or parts.fragment:
        return (
            "must not have a query or fragment: give the base URL, e.g. https://api.openai.com/v1"
        )
    if parts.path.rstrip("/").endswith("/chat/completions"):
        return "give the base URL (ending in /v1), without /chat/completions"
    return None


def _env_name_check(value: Any) -> str | None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        return f"{value!r} is not an environment variable name (the key itself never goes in the campaign)"
    return None


def _positive(value: Any) -> str | None:
    return None if value >= 1 else f"must be at least 1, got {value}"


def _float_range(low: float, high: float) -> Check:
    def check(value: Any) -> str | None:
        if not low <= value <= high:
            return f"must be between {low:g} and {high:g}, got {value}"
        return None

    return check


KEYS: Mapping[str, Key] = {
    "endpoint": Key(
        "str",
        required=True,
        check=_url_check,
        doc="base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:11434/v1",
    ),
    "model": Key("str", required=True, check=non_empty, doc="model name, e.g. qwen2.5-coder:7b"),
    "api_key_env": Key(
        "str", check=_env_name_check, doc="environment variable holding the API key (none: no auth)"
    ),
    "prompt": Key(
        "str",
        required=True,
        check=non_empty,
        doc="prompt template file relative to the campaign: {repo} {path} {language} {code} {context}",
    ),
    "context": Key(
        "list[str]", default=[], doc="extra files (relative to the campaign) for {context}"
    ),
    "target": Key(
        "str|table",
        default="file",
        doc='"file", or {node = "function"|"class", name = "regex", calls = "dotted.name"}',
    ),
    "create": Key("str", check=non_empty, doc="write this repo-relative file from repo context"),
    "overwrite": Key("bool", default=False, doc="with create: replace the file if it exists"),
    "validate": Key(
        "list[str]", default=[], doc="commands run in the repo root after each edit; {file}"
    ),
    "validate_timeout": Key("int", default=600, check=int_range(1, 86_400), doc="seconds"),
    "max_attempts": Key("int", default=3, check=int_range(1, 10), doc="model answers per edit"),
    "max_tokens": Key("int", check=_positive, doc="token budget for the whole campaign"),
    "max_answer_bytes": Key("int", default=200_000, check=int_range(1, 10_000_000)),
    "temperature": Key("float", default=0.0, check=_float_range(0.0, 2.0)),
    "request_timeout": Key("float", default=120.0, check=_float_range(1.0, 3600.0)),
    "concurrency": Key(
        "int", default=4, check=int_range(1, 256), doc="model calls in flight per process"
    ),
}
USES_CANDIDATES: bool = True
DEFAULT_PATHS: tuple[str, ...] = ("**/*.py",)

_LANGUAGES = {
    ".py": "python",
    ".pyi": "python",
    ".toml": "toml",
    ".md": "markdown",
    ".markdown": "markdown",
    ".rst": "rst",
    ".txt": "text",
    ".js": "javascript",
    ".mjs": "javascript",
    ".ts": "typescript",
    ".tsx": "tsx",
    ".jsx": "jsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".kt": "kotlin",
    ".rb": "ruby",
    ".php": "php",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".hpp": "cpp",
    ".cs": "csharp",
    ".sh": "bash",
    ".bash": "bash",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".ini": "ini",
    ".cfg": "ini",
    ".sql": "sql",
    ".html": "html",
    ".css": "css",
}
_NAMED = {
    "dockerfile": "dockerfile",
    "makefile": "makefile",
    "codeowners": "text",
    "readme": "markdown",
}
DOCUMENT_LANGUAGES = frozenset({"markdown", "rst", "text"})


def language_of(path: str) -> str:
    name = Path(path).name
    return _LANGUAGES.get(Path(path).suffix.lower()) or _NAMED.get(name.lower(), "text")


# -- loading ------------------------------------------------------------------------------


def _read_text(path: Path, limit: int) -> str:
    if path.stat().st_size > limit:
        raise ValueError(f"is larger than {limit // 1024} KiB")
    return path.read_text(encoding="utf-8")


def _prepare_target(value: Any, ctx: LoadContext) -> str | dict[str, str | None]:
    error = ctx.table.error
    if isinstance(value, str):
        if value != "file":
            raise error(
                f'expected "file" or a table such as {{node = "function", calls = "optparse"}}, got {value!r}',
                "target",
            )
        return "file"
    assert isinstance(value, dict)
    unknown = sorted(set(value) - {"node", "name", "calls"})
    if unknown:
        raise error(f"unknown key {unknown[0]!r} in the table (known: node, name, calls)", "target")
    node = value.get("node")
    if node not in NODE_KINDS:
        raise error(
            f"node must be one of {', '.join(map(repr, NODE_KINDS))}, got {node!r}", "target"
        )
    out: dict[str, str | None] = {"node": node, "name": None, "calls": None}
    for key in ("name", "calls"):
        if key not in value:
            continue
        item = value[key]
        if not isinstance(item, str) or not item.strip():
            raise error(f"{key} must be a non-empty string", "target")
        problem = regex_check(item)
        if problem:
            raise error(f"{key}: {problem}", "target")
        out[key] = item
    return out


def prepare(options: dict[str, Any], ctx: LoadContext) -> dict[str, Any]:
    error = ctx.table.error
    prompt_path = (ctx.base_dir / options["prompt"]).resolve()
    if not prompt_path.is_file():
        raise error(
            f"prompt file {options['prompt']} not found (looked at {prompt_path})", "prompt"
        )
    try:
        prompt = _read_text(prompt_path, MAX_PROMPT_BYTES)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise error(f"cannot read prompt file {options['prompt']}: {exc}", "prompt") from None
    if not prompt.strip():
        raise error(f"prompt file {options['prompt']} is empty", "prompt")
    unknown = unknown_placeholders(prompt, PLACEHOLDERS)
    if unknown:
        raise error(
            f"prompt file {options['prompt']} has an unknown placeholder {{{unknown[0]}}} (known: "
            + ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            + "; write {{ and }} for literal braces)",
            "prompt",
        )
    context: list[list[str]] = []
    total = 0
    for name in options["context"]:
        path = (ctx.base_dir / name).resolve()
        if not path.is_file():
            raise error(f"context file {name} not found (looked at {path})", "context")
        try:
            text = _read_text(path, MAX_CONTEXT_BYTES)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise error(f"cannot read context file {name}: {exc}", "context") from None
        total += len(text.encode("utf-8"))
        if total > MAX_CONTEXT_BYTES:
            raise error("context files are larger than 1 MiB together", "context")
        context.append([name, text])
    target = _prepare_target(options["target"], ctx)
    if options["create"] is not None:
        if target != "file":
            raise error("create writes a new file: it cannot be combined with a target table")
        try:
            safe_target(ctx.base_dir, options["create"])
        except UnsafePath:
            raise error("must be a relative path inside the repository", "create") from None
        if "{" in options["create"] or options["create"].endswith(("/", "\\")):
            raise error("must be a plain file path (no placeholders, not a folder)", "create")
    elif options["overwrite"]:
        raise error("only makes sense together with create", "overwrite")
    for command in options["validate"]:
        if not command.strip():
            raise error("commands must not be empty", "validate")
        unknown = unknown_placeholders(command, VALIDATE_PLACEHOLDERS)
        if unknown:
            raise error(f"unknown placeholder {{{unknown[0]}}} (known: {{file}})", "validate")
    options["endpoint"] = options["endpoint"].rstrip("/")
    options["target"] = target
    options["prompt_text"] = prompt
    options["prompt_sha256"] = hashlib.sha256(prompt.encode("utf-8")).hexdigest()
    options["context_files"] = context
    shaping = {
        k: options[k]
        for k in ("endpoint", "model", "target", "create", "validate", "temperature", "prompt_text")
    }
    shaping["context"] = context
    shaping["protocol"] = PROTOCOL_VERSION
    options["version"] = hashlib.sha256(
        json.dumps(shaping, sort_keys=True).encode("utf-8")
    ).hexdigest()[:12]
    return options


def describe(options: Mapping[str, Any]) -> str:
    if options.get("create"):
        return f"llm {options['model']} writes {options['create']}"
    target = options["target"]
    if target == "file":
        return f"llm {options['model']} edits files"
    return f"llm {options['model']} edits {TargetSpec.from_options(target).describe()}"


# -- clients, shared by every step of the process -------------------------------------------

#: extra keyword arguments for every :class:`ChatClient` made (tests: ``sleep``, ``max_retries``)
CLIENT_DEFAULTS: dict[str, Any] = {}
_CLIENTS: dict[tuple[str, str, str | None, float], ChatClient] = {}
_SEMAPHORES: dict[tuple[str, str, int], threading.BoundedSemaphore] = {}
_LOCK = threading.Lock()


def client_for(options: Mapping[str, Any]) -> ChatClient:
    """One long-lived client per endpoint, model, key variable and timeout, per process."""
    key = (
        options["endpoint"],
        options["model"],
        options["api_key_env"],
        float(options["request_timeout"]),
    )
    with _LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = ChatClient(
                key[0], key[1], api_key_env=key[2], timeout=key[3], **CLIENT_DEFAULTS
            )
            _CLIENTS[key] = client
        return client


def semaphore_for(endpoint: str, model: str, concurrency: int) -> threading.BoundedSemaphore:
    """Bounds the model calls in flight in this process to one endpoint and model."""
    key = (endpoint, model, concurrency)
    with _LOCK:
        semaphore = _SEMAPHORES.get(key)
        if semaphore is None:
            semaphore = _SEMAPHORES[key] = threading.BoundedSemaphore(concurrency)
        return semaphore


def reset_clients() -> None:
    """Close and forget every client (tests, or after changing :data:`CLIENT_DEFAULTS`)."""
    with _LOCK:
        for client in _CLIENTS.values():
            client.close()
        _CLIENTS.clear()
        _SEMAPHORES.clear()


# -- answers ----------------------------------------------------------------------------------

_FENCE_OPEN = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*?)\s*$")
_REFUSAL = re.compile(
    r"^\W*(i\s*(?:'|\u2019)?m\s+(?:sorry|afraid|unable|not able)|i\s+am\s+(?:sorry|afraid|unable|not able)"
    r"|i\s+can\s*(?:'|\u2019)?t\b|i\s+cannot\b|i\s+can\s+not\b|i\s+won\s*(?:'|\u2019)?t\b|i\s+will\s+not\b"
    r"|sorry,|as\s+an\s+ai\b)",
    re.IGNORECASE,
)
_PROSE = re.compile(
    r"^\W*(sure|certainly|of course|here(?:'s|\u2019s| is| are)|below|okay|ok[,.!]|great|"
    r"i(?:'ve|'ll| have| will| updated| changed| made)|the following|this (?:code|function|file|class))\b",
    re.IGNORECASE,
)


class AnswerProblem(Exception):
    """The answer is unusable; ``kind`` is empty, truncated, refusal, several, prose or too-large."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Block:
    info: str
    body: str
    closed: bool


def fenced_blocks(text: str) -> tuple[list[Block], list[str]]:
    """The top-level fenced code blocks of ``text``, and the lines outside them."""
    blocks: list[Block] = []
    outside: list[str] = []
    fence: str | None = None
    info, body = "", list[str]()
    for line in text.split("\n"):
        if fence is None:
            opened = _FENCE_OPEN.match(line)
            if opened:
                fence, info, body = opened.group("fence"), opened.group("info"), []
            else:
                outside.append(line)
            continue
        stripped = line.strip()
        if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
            blocks.append(Block(info, "\n".join(body), True))
            fence = None
        else:
            body.append(line)
    if fence is not None:
        blocks.append(Block(info, "\n".join(body), False))
    return blocks, outside


def _wrapped_whole(text: str) -> str | None:
    """The middle of an answer that is one fence from its first line to its last."""
    lines = text.split("\n")
    if len(lines) < 2:
        return None
    opened = _FENCE_OPEN.match(lines[0])
    last = lines[-1].strip()
    if not opened or not last or set(last) != {opened.group("fence")[0]}:
        return None
    if len(last) < len(opened.group("fence")):
        return None
    return "\n".join(lines[1:-1])


def extract_code(text: str, *, document: bool = False) -> str:
    """The code in a model's answer: its one fenced block, or the bare answer.

    ``document``: the file is prose (Markdown, text), so a bare answer — which may
    itself hold fenced examples — is the content, and only an answer fenced as a
    whole (or one block with a line of chat around it) is unwrapped.
    """
    code = _extract(text, document=document)
    if not code.strip():
        raise AnswerProblem("empty", "the code block in the answer is empty")
    return code


def _extract(text: str, *, document: bool) -> str:
    stripped = text.strip()
    if not stripped:
        raise AnswerProblem("empty", "the answer is empty")
    if document:
        whole = _wrapped_whole(stripped)
        if whole is not None:
            return whole
    blocks, outside = fenced_blocks(stripped)
    chat = [line for line in outside if line.strip()]
    if len(blocks) == 1 and (
        not document or (len(chat) <= 3 and not any(line.lstrip().startswith("#") for line in chat))
    ):
        return blocks[0].body
    if document and blocks:
        return stripped
    if len(blocks) > 1:
        raise AnswerProblem(
            "several",
            f"the answer has {len(blocks)} code blocks; answer with exactly one fenced code "
            "block holding the complete code",
        )
    first = stripped.split("\n", 1)[0]
    if _REFUSAL.match(first) or re.search(r"\bas an ai\b", stripped[:300], re.IGNORECASE):
        raise AnswerProblem("refusal", f"the model declined: {first[:200]}")
    if not document and _PROSE.match(first):
        raise AnswerProblem(
            "prose",
            "the answer is prose, not code; answer with exactly one fenced code block "
            "holding the complete code and nothing else",
        )
    return stripped


def check_answer(completion: Completion, *, document: bool, max_bytes: int) -> str:
    """The usable code of ``completion`` or :class:`AnswerProblem`."""
    if completion.refusal:
        raise AnswerProblem("refusal", f"the model declined: {completion.refusal[:200]}")
    if completion.finish_reason == "content_filter":
        raise AnswerProblem("refusal", "the endpoint's content filter blocked the answer")
    if completion.finish_reason == "length":
        raise AnswerProblem(
            "truncated",
            "the answer was cut off (finish_reason = length); answer again with the complete "
            "code, as short as it can be, in one fenced code block",
        )
    size = len(completion.content.encode("utf-8"))
    if size > max_bytes:
        raise AnswerProblem(
            "too-large", f"the answer is {size} bytes, over the limit of {max_bytes} bytes"
        )
    return extract_code(completion.content, document=document)


def fence(code: str, language: str) -> str:
    ticks = "```"
    while ticks in code:
        ticks += "`"
    body = code if code.endswith("\n") else code + "\n"
    return f"{ticks}{language}\n{body}{ticks}"


# -- one run of the step in one repository -------------------------------------------------


class _Stop(Exception):
    def __init__(self, state: str, reason: str) -> None:
        super().__init__(reason)
        self.state = state
        self.reason = reason


@dataclass
class _Unit:
    """One edit the model makes: a whole file, one target in a file, or a new file."""

    path: str
    label: str  # "pkg/cli.py::main", "pkg/cli.py", "AGENTS.md"
    language: str
    code: str  # what the model is shown ({code}); "" in create mode
    context: str  # {context}
    input_hash: str
    target: Target | None = None


@dataclass
class _Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    cached: int = 0

    @property
    def spent(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "calls": self.calls,
            "cached": self.cached,
        }


def _estimate_tokens(text: str) -> int:
    return len(text) // 4 + 1


@dataclass
class _Run:
    options: Mapping[str, Any]
    ctx: StepContext
    usage: _Usage = field(default_factory=_Usage)
    originals: dict[str, bytes | None] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    edited: int = 0

    def __post_init__(self) -> None:
        self.model: str = self.options["model"]
        self.client = client_for(self.options)
        self.semaphore = semaphore_for(
            self.options["endpoint"], self.model, self.options["concurrency"]
        )
        home = self.ctx.home or paths.home()
        self.cache = ResponseCache(home / "llm-cache") if self.ctx.use_llm_cache else None
        self.commands: list[str] = list(self.options["validate"])

    # the model ---------------------------------------------------------------------------

    def ask(
        self, messages: list[Message], unit: _Unit, keyed: list[Message]
    ) -> tuple[Completion, str | None]:
        """The answer to ``messages``, from the cache when ``keyed`` was asked before, and
        the cache key to keep a fresh answer under (None: it came from the cache).

        ``keyed`` is ``messages`` with validation output cut to its first line (the
        command and its exit status): test runners print timings, so the full output
        would make every re-run miss the cache.
        """
        key = cache_key(
            self.options["endpoint"],
            self.model,
            keyed,
            unit.input_hash,
            temperature=float(self.options["temperature"]),
        )
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.usage.cached += 1
                return hit, None
        budget = self.ctx.token_budget
        if budget is not None:
            answer = _estimate_tokens(unit.code) if unit.code else CREATE_ANSWER_TOKENS
            needed = sum(_estimate_tokens(m["content"]) for m in messages) + answer
            left = budget - self.usage.spent
            if needed > left:
                raise _Stop(
                    "budget-exhausted",
                    f"token budget exhausted before {unit.label}: {max(left, 0)} tokens left, "
                    f"the next model call needs about {needed}",
                )
        try:
            with self.semaphore:
                completion = self.client.complete(
                    messages, temperature=float(self.options["temperature"])
                )
        except LLMAuthError as exc:
            # the key is wrong for every repo alike: stop the run, like a rejected forge token
            raise _Stop(AUTH_FAILED, redact(str(exc))) from None
        except LLMError as exc:
            raise _Stop("llm-failed", f"{unit.label}: {redact(str(exc))}") from None
        self.usage.calls += 1
        self.usage.prompt_tokens += completion.prompt_tokens
        self.usage.completion_tokens += completion.completion_tokens
        return completion, key

    def keep(self, key: str | None, completion: Completion, problem: str | None) -> None:
        """Cache a fresh answer, unless it was cut off, empty or refused (worth asking again)."""
        if key is None or self.cache is None or completion.finish_reason != "stop":
            return
        if problem in ("refusal", "truncated", "empty"):
            return
        self.cache.put(key, completion)

    def system_message(self, unit: _Unit) -> str:
        if self.options.get("create"):
            return (
                f"You write the file `{unit.path}` for the repository {self.ctx.repo}. "
                "Answer with the complete content of the file in exactly one fenced code "
                "block, and nothing else."
            )
        lines = [
            "You edit source code for an automated change made across many repositories.",
            "Answer with the complete new version of the code you are given, in exactly one "
            f"fenced code block (```{unit.language}), and nothing else.",
            "Change only what the instructions ask for; keep everything else exactly as it is, "
            "comments and formatting included.",
        ]
        if unit.target is not None:
            kind = unit.target.kind
            lines.append(
                f"You are given one {kind}, `{unit.target.qualname}` from `{unit.path}`. Return "
                f"that one {kind} only, with the same name; anything you need (imports "
                f"included) must go inside it."
            )
        return "\n".join(lines)

    def user_message(self, unit: _Unit) -> str:
        template: str = self.options["prompt_text"]
        used = placeholders(template)
        text = fill(
            template,
            {
                "repo": self.ctx.repo,
                "path": unit.path,
                "language": unit.language,
                "code": unit.code,
                "context": unit.context,
            },
        )
        if "context" not in used and unit.context:
            text = text.rstrip("\n") + "\n\n" + unit.context
        if "code" not in used and unit.code:
            text = text.rstrip("\n") + f"\n\n`{unit.path}`:\n\n" + fence(unit.code, unit.language)
        return text

    def converse(self, unit: _Unit, accept: Callable[[str], str | None]) -> str:
        """Ask until ``accept(code)`` returns None (applied and validated); the final code.

        ``accept`` returns an error text for the model when the code does not do: its
        first line must say what failed in words that do not change between runs.
        """
        messages: list[Message] = [
            {"role": "system", "content": self.system_message(unit)},
            {"role": "user", "content": self.user_message(unit)},
        ]
        keyed = list(messages)
        attempts = int(self.options["max_attempts"])
        document = unit.language in DOCUMENT_LANGUAGES
        truncated = 0
        last = ""
        for _attempt in range(attempts):
            completion, key = self.ask(messages, unit, keyed)
            try:
                code = check_answer(
                    completion, document=document, max_bytes=self.options["max_answer_bytes"]
                )
            except AnswerProblem as problem:
                self.keep(key, completion, problem.kind)
                if problem.kind == "refusal":
                    raise _Stop("llm-failed", f"{unit.label}: {problem.message}") from None
                if problem.kind == "truncated":
                    truncated += 1
                    if truncated > 1:
                        raise _Stop(
                            "llm-failed", f"{unit.label}: the answer was cut off twice"
                        ) from None
                last = problem.message
                feedback = stable = f"Your answer cannot be used: {problem.message}."
            else:
                self.keep(key, completion, None)
                error = accept(code)
                if error is None:
                    return code
                last = error.split("\n", 1)[0]
                feedback, stable = (
                    f"Your code for {unit.label} was rejected:\n\n{reason}\n\n"
                    f"This is the code you gave:\n\n{fence(code, unit.language)}\n\n"
                    "Fix it and answer again with the complete code in one fenced code block."
                    for reason in (error, last)
                )
            echo = completion.content
            if len(echo.encode("utf-8")) > self.options["max_answer_bytes"]:
                echo = echo[: self.options["max_answer_bytes"] // 4] + "\n[... cut]"
            messages += [
                {"role": "assistant", "content": echo},
                {"role": "user", "content": feedback},
            ]
            keyed += [
                {"role": "assistant", "content": echo},
                {"role": "user", "content": stable},
            ]
        raise _Stop(
            "llm-failed",
            f"{unit.label}: no acceptable answer in {attempts} attempt"
            f"{'s' if attempts != 1 else ''}; last problem: {last}",
        )

    # the tree ----------------------------------------------------------------------------

    def remember(self, relative: str, path: Path) -> None:
        if relative not in self.originals:
            self.originals[relative] = path.read_bytes() if path.exists() else None

    def restore(self) -> None:
        for relative, data in self.originals.items():
            try:
                path = safe_target(self.ctx.workdir, relative)
            except UnsafePath:
                continue
            if data is None:
                path.unlink(missing_ok=True)
            else:
                write_if_changed(path, data)
        self.originals.clear()

    def parse_check(self, relative: str, text: str) -> str | None:
        language = language_of(relative)
        if language == "python":
            try:
                cst.parse_module(text)
            except cst.ParserSyntaxError as exc:
                return (
                    f"the code does not parse as Python (libcst): line {exc.raw_line}, "
                    f"column {exc.raw_column}: {exc.message}"
                )
        elif language == "toml":
            try:
                tomlkit.parse(text)
            except (tomlkit.exceptions.TOMLKitError, ValueError) as exc:
                return f"the file does not parse as TOML (tomlkit): {exc}"
        return None

    def checks_for(self, relative: str) -> list[str]:
        language = language_of(relative)
        checks = []
        if language == "python":
            checks.append("libcst parse")
        elif language == "toml":
            checks.append("tomlkit parse")
        return checks + [f"`{command}`" for command in self.commands]

    def write_and_validate(
        self, relative: str, path: Path, text: str, before: bytes | None
    ) -> str | None:
        """Write ``text``, run the checks; on failure put ``before`` back and say why."""
        problem = self.parse_check(relative, text)
        if problem:
            return problem
        write_if_changed(path, text.encode("utf-8"))
        for command in self.commands:
            filled = fill(command, {"file": shlex.quote(relative)})
            done = run_with_timeout(
                filled,
                cwd=self.ctx.workdir,
                timeout=self.options["validate_timeout"],
                env={"FLEETCHANGE_REPO": self.ctx.repo, "FLEETCHANGE_FILE": relative},
            )
            if done.timed_out or done.returncode != 0:
                if before is None:
                    path.unlink(missing_ok=True)
                else:
                    write_if_changed(path, before)
                why = (
                    f"timed out after {self.options['validate_timeout']}s"
                    if done.timed_out
                    else f"exited {done.returncode}"
                )
                tail = redact(done.tail)[-8000:]
                return f"validation command `{filled}` {why}:\n\n{fence(tail, 'text')}"
        return None

    def note(self, label: str, verb: str, relative: str) -> None:
        checks = self.checks_for(relative)
        validated = ", ".join(checks) if checks else "nothing (no `validate` commands)"
        self.notes.append(
            f"`{label}` {verb} by model `{self.model}` "
            f"(prompt sha256 {self.options['prompt_sha256'][:12]}…), validated by: {validated}"
        )

    def context_text(self) -> str:
        parts = [
            f"### {name}\n\n{fence(text, language_of(name))}"
            for name, text in self.options["context_files"]
        ]
        return "\n\n".join(parts)

    # the three modes ---------------------------------------------------------------------

    def readable(self, relative: str) -> tuple[Path, str] | None:
        try:
            path = safe_target(self.ctx.workdir, relative)
        except UnsafePath as exc:
            self.problems.append(str(exc))
            return None
        if not path.is_file():
            return None
        raw = path.read_bytes()
        if len(raw) > self.options["max_answer_bytes"]:
            self.problems.append(f"{relative}: {len(raw)} bytes, over max_answer_bytes; left alone")
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.problems.append(f"{relative}: not UTF-8, left alone")
            return None
        if GENERATED_MARKER in text:
            return None
        return path, text

    def edit_files(self) -> None:
        context = self.context_text()
        for relative in self.ctx.candidates:
            found = self.readable(relative)
            if found is None:
                continue
            path, text = found
            newline = "\r\n" if "\r\n" in text else "\n"
            unit = _Unit(
                path=relative,
                label=relative,
                language=language_of(relative),
                code=text,
                context=context,
                input_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
            )

            def accept(
                code: str,
                relative: str = relative,
                path: Path = path,
                text: str = text,
                newline: str = newline,
            ) -> str | None:
                new = code.replace("\r\n", "\n")
                if text.endswith(("\n", "\r")) and not new.endswith("\n"):
                    new += "\n"
                new = new.replace("\n", newline)
                if new == text:
                    return None
                self.remember(relative, path)
                return self.write_and_validate(relative, path, new, text.encode("utf-8"))

            self.converse(unit, accept)
            if path.read_bytes() != text.encode("utf-8"):
                self.changed.append(relative)
                self.edited += 1
                self.note(relative, "edited", relative)

    def edit_targets(self) -> None:
        spec = TargetSpec.from_options(self.options["target"])
        context = self.context_text()
        for relative in self.ctx.candidates:
            if language_of(relative) != "python":
                self.problems.append(f"{relative}: not a Python file, so no {spec.node} target")
                continue
            found = self.readable(relative)
            if found is None:
                continue
            path, text = found
            try:
                targets = find_targets(text, spec)
            except cst.ParserSyntaxError as exc:
                self.problems.append(
                    f"{relative}: does not parse (line {exc.raw_line}), left alone"
                )
                continue
            current = text
            edited: list[str] = []
            # last first: an edit never moves the targets above it
            for target in reversed(targets):
                label = f"{relative}::{target.qualname}"
                unit = _Unit(
                    path=relative,
                    label=label,
                    language="python",
                    code=target.code,
                    context=context,
                    input_hash=hashlib.sha256(
                        f"{target.qualname}\0{target.code}".encode()
                    ).hexdigest(),
                    target=target,
                )
                box = {"source": current}

                def accept(
                    code: str,
                    target: Target = target,
                    relative: str = relative,
                    path: Path = path,
                    box: dict[str, str] = box,
                ) -> str | None:
                    try:
                        new = splice(box["source"], target, code)
                    except TargetError as exc:
                        return str(exc)
                    if new == box["source"]:
                        return None
                    self.remember(relative, path)
                    error = self.write_and_validate(
                        relative, path, new, box["source"].encode("utf-8")
                    )
                    if error is None:
                        box["source"] = new
                    return error

                before = current
                self.converse(unit, accept)
                current = box["source"]
                if current != before:
                    edited.append(label)
            if edited:
                self.changed.append(relative)
                self.edited += len(edited)
                for label in reversed(edited):
                    self.note(label, "edited", relative)

    def repo_context(self, relative: str, path: Path) -> str:
        budget = 48 * 1024
        parts: list[str] = []
        try:
            listing = git("ls-files", "-z", cwd=self.ctx.workdir).split("\0")
        except GitError:
            listing = []
        files = sorted(f for f in listing if f)
        if not files:
            files = sorted(
                p.relative_to(self.ctx.workdir).as_posix()
                for p in self.ctx.workdir.rglob("*")
                if p.is_file() and ".git" not in p.relative_to(self.ctx.workdir).parts
            )
        shown = files[:400]
        tree = "\n".join(shown) + (f"\n… and {len(files) - 400} more" if len(files) > 400 else "")
        parts.append(f"### File tree ({len(files)} files)\n\n{fence(tree, 'text')}")
        wanted = [
            next((f for f in files if "/" not in f and f.lower().startswith("readme")), None),
            "pyproject.toml",
            next(
                (
                    f
                    for f in (
                        "CODEOWNERS",
                        ".github/CODEOWNERS",
                        ".gitlab/CODEOWNERS",
                        "docs/CODEOWNERS",
                    )
                    if f in files
                ),
                None,
            ),
        ]
        if self.options["overwrite"] and path.is_file():
            wanted.append(relative)
        for name in wanted:
            if not name or (name not in files and name != relative):
                continue
            try:
                file = safe_target(self.ctx.workdir, name)
                text = file.read_bytes()[: 12 * 1024].decode("utf-8", errors="replace")
            except (UnsafePath, OSError):
                continue
            title = f"Current {name}" if name == relative else name
            parts.append(f"### {title}\n\n{fence(text, language_of(name))}")
        out = "\n\n".join(parts)
        extra = self.context_text()
        if extra:
            out += "\n\n" + extra
        encoded = out.encode("utf-8")
        if len(encoded) > budget:
            out = encoded[:budget].decode("utf-8", errors="ignore") + "\n[... context cut]"
        return out

    def create(self) -> str:
        relative: str = self.options["create"]
        try:
            path = safe_target(self.ctx.workdir, relative)
        except UnsafePath as exc:
            raise _Stop("llm-failed", str(exc)) from None
        exists = path.exists()
        if exists and not path.is_file():
            raise _Stop("llm-failed", f"{relative} exists and is not a file")
        if exists and not self.options["overwrite"]:
            return f"{relative} already exists, left as it is"
        context = self.repo_context(relative, path)
        unit = _Unit(
            path=relative,
            label=relative,
            language=language_of(relative),
            code="",
            context=context,
            input_hash=hashlib.sha256(context.encode("utf-8")).hexdigest(),
        )
        before = path.read_bytes() if exists else None

        def accept(code: str) -> str | None:
            text = code if code.endswith("\n") else code + "\n"
            self.remember(relative, path)
            return self.write_and_validate(relative, path, text, before)

        self.converse(unit, accept)
        if before is not None and path.read_bytes() == before:
            return f"{relative} already as the model would write it"
        self.changed.append(relative)
        self.note(relative, "written", relative)
        return f"model {self.model} {'rewrote' if exists else 'wrote'} {relative}"

    def summary(self) -> str:
        files = len(self.changed)
        if self.options["target"] == "file":
            text = f"model {self.model} edited {files} file{'s' if files != 1 else ''}"
        else:
            kind = self.options["target"]["node"]
            plural = "es" if kind == "class" else "s"
            text = (
                f"model {self.model} edited {self.edited} {kind}"
                f"{plural if self.edited != 1 else ''} in {files} file{'s' if files != 1 else ''}"
            )
        return text


def apply(options: Mapping[str, Any], ctx: StepContext) -> StepResult:
    run = _Run(options, ctx)
    try:
        if options.get("create"):
            if not ctx.candidates:
                summary = f"{options['create']} not written: no file matches paths and grep"
            else:
                summary = run.create()
        elif options["target"] == "file":
            run.edit_files()
            summary = run.summary()
        else:
            run.edit_targets()
            summary = run.summary()
    except _Stop as stop:
        run.restore()
        return StepResult(
            summary="",
            problems=run.problems,
            failed=stop.reason,
            failed_state=stop.state,
            usage=run.usage.as_dict(),
        )
    except BaseException:
        run.restore()
        raise
    if run.usage.cached:
        summary += (
            f" ({run.usage.cached} answer{'s' if run.usage.cached != 1 else ''} from the cache)"
        )
    return StepResult(
        summary=summary,
        changed=run.changed,
        problems=run.problems,
        usage=run.usage.as_dict(),
        notes=run.notes,
    )
