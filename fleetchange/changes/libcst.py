"""``kind = "libcst"``: run any ``libcst.codemod.Codemod`` subclass over candidate files.

The codemod is named ``file.py:Class`` (relative to the campaign file; its source
is read at load time so remote workers need not see it) or by dotted path
(``libcst.codemod.commands.convert_format_to_fstring.ConvertFormatStringCommand``).
Each file goes through ``libcst.codemod.transform_module`` on its own, so one file
that does not parse is reported and the others still change; files whose code did
not change are never rewritten.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import libcst as cst
from libcst.codemod import Codemod, CodemodContext, SkipFile

from .. import cpu
from ..schema import Key
from .base import LoadContext, StepContext, StepResult, UnsafePath, safe_target, write_if_changed

KEYS: Mapping[str, Key] = {
    "codemod": Key("str", required=True, doc="file.py:Class or a dotted path to a Codemod class"),
    "args": Key("table", default={}, doc="keyword arguments for the codemod's constructor"),
}
USES_CANDIDATES: bool = True
DEFAULT_PATHS: tuple[str, ...] = ("**/*.py",)
GENERATED_MARKER = "@" + "generated"
POOL_THRESHOLD = 16 * 1024  # smaller files parse faster than a round trip to the pool


def _inline(fn: Any, *args: Any) -> Any:
    return fn(*args)


_loaded: dict[str, type[Codemod]] = {}


def _load_from_source(source: str, filename: str, class_name: str) -> type[Codemod]:
    key = hashlib.sha256(f"{filename}\0{class_name}\0{source}".encode()).hexdigest()
    if key not in _loaded:
        module = types.ModuleType(f"fleetchange_codemod_{key[:12]}")
        module.__file__ = filename
        # dataclasses and typing look a class's module up in sys.modules
        sys.modules[module.__name__] = module
        exec(compile(source, filename, "exec"), module.__dict__)
        _loaded[key] = getattr(module, class_name)
    return _loaded[key]


def _load_dotted(dotted: str) -> type[Codemod]:
    module_name, _, class_name = dotted.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)  # type: ignore[no-any-return]


def codemod_class(options: Mapping[str, Any]) -> type[Codemod]:
    if options.get("source") is not None:
        return _load_from_source(options["source"], options["filename"], options["class_name"])
    return _load_dotted(options["codemod"])


def prepare(options: dict[str, Any], ctx: LoadContext) -> dict[str, Any]:
    spec: str = options["codemod"]
    error = ctx.table.error
    if ":" in spec:
        file_part, _, class_name = spec.rpartition(":")
        path = (ctx.base_dir / file_part).resolve()
        if not path.is_file():
            raise error(f"codemod file {file_part} not found (looked at {path})", "codemod")
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise error(f"cannot read codemod file {file_part}: {exc}", "codemod") from None
        options.update(source=source, filename=str(path), class_name=class_name)
    elif "." not in spec:
        raise error("expected file.py:Class or a dotted path such as pkg.module.Class", "codemod")
    else:
        options.update(source=None, filename=None, class_name=spec.rpartition(".")[2])
    try:
        cls = codemod_class(options)
    except AttributeError:
        raise error(
            f"no class {options['class_name']!r} in {spec.rpartition(':')[0] or spec.rpartition('.')[0]}",
            "codemod",
        ) from None
    except SyntaxError as exc:
        raise error(
            f"codemod file does not compile: line {exc.lineno}: {exc.msg}", "codemod"
        ) from None
    except ImportError as exc:
        raise error(f"cannot import {spec}: {exc}", "codemod") from None
    except Exception as exc:  # the codemod module's own import-time code failed
        raise error(f"loading {spec} failed: {type(exc).__name__}: {exc}", "codemod") from None
    if not (inspect.isclass(cls) and issubclass(cls, Codemod)):
        raise error(f"{spec} is not a libcst.codemod.Codemod subclass", "codemod")
    try:
        cls(CodemodContext(), **options["args"])
    except TypeError as exc:
        raise error(
            f"{options['class_name']} does not accept these arguments: {exc}", "args"
        ) from None
    if options["source"] is not None:
        options["version"] = hashlib.sha256(options["source"].encode()).hexdigest()[:12]
    else:
        try:
            options["version"] = hashlib.sha256(
                Path(inspect.getfile(cls)).read_bytes()
            ).hexdigest()[:12]
        except (OSError, TypeError):
            options["version"] = "unknown"
    return options


def describe(options: Mapping[str, Any]) -> str:
    return f"libcst codemod {options['class_name']}"


# (new code or None when unchanged) | ("parse", line) | ("failed", "Type: message"), all picklable
Transformed = str | None | tuple[str, str]


def transform_source(options: Mapping[str, Any], path: str, code: str) -> Transformed:
    """Run the step's codemod over one file's code (in this process or a pool worker).

    This is what ``libcst.codemod.transform_module`` does, plus one check between the
    parse and the transform: libcst must print the untouched tree back byte for byte.
    It does not always (``except (A, B) :`` loses its space, upstream LibCST#1457), and
    then every such line would change in the MR along with the real edit.
    """
    try:
        tree = cst.parse_module(code)
    except cst.ParserSyntaxError as error:
        return ("parse", str(error.raw_line))
    if tree.code != code:
        return ("roundtrip", "libcst cannot print this file back byte for byte")
    module_name = path[:-3].replace("/", ".") if path.endswith(".py") else None
    context = CodemodContext(filename=path, full_module_name=module_name)
    try:
        new = cls_instance(options, context).transform_module(tree)
    except SkipFile:
        return None
    except Exception as error:  # a codemod's bug is this file's problem, not the run's
        return ("failed", f"{type(error).__name__}: {error}")
    return new.code if new.code != code else None


def cls_instance(options: Mapping[str, Any], context: CodemodContext) -> Codemod:
    return codemod_class(options)(context, **options["args"])


def apply(options: Mapping[str, Any], ctx: StepContext) -> StepResult:
    name = options["class_name"]
    result = StepResult(summary="")
    for relative in ctx.candidates:
        try:
            target = safe_target(ctx.workdir, relative)
        except UnsafePath as exc:
            result.problems.append(str(exc))
            continue
        if not target.is_file():
            continue
        raw = target.read_bytes()
        try:
            code = raw.decode("utf-8")
        except UnicodeDecodeError:
            result.problems.append(f"{relative}: not UTF-8, left alone")
            continue
        if GENERATED_MARKER in code:
            continue
        big = len(raw) >= POOL_THRESHOLD and cpu.enabled()
        outcome = (cpu.run if big else _inline)(transform_source, options, relative, code)
        if isinstance(outcome, tuple) and outcome[0] == "parse":
            result.problems.append(f"{relative}: does not parse (line {outcome[1]}), left alone")
        elif isinstance(outcome, tuple) and outcome[0] == "roundtrip":
            result.problems.append(
                f"{relative}: {outcome[1]} (LibCST#1457), left alone to keep the diff exact"
            )
        elif isinstance(outcome, tuple):
            result.problems.append(f"{relative}: {name} failed: {outcome[1]}")
        elif outcome is not None and write_if_changed(target, outcome.encode("utf-8")):
            result.changed.append(relative)
    count = len(result.changed)
    result.summary = f"changed {count} file{'s' if count != 1 else ''}"
    return result
