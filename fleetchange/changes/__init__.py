"""Change kinds: one module each, checked against :class:`ChangeKind` by this registry."""

from __future__ import annotations

from . import command, file, libcst, llm, toml
from .base import ChangeKind

KINDS: dict[str, ChangeKind] = {
    "libcst": libcst,
    "command": command,
    "toml": toml,
    "file": file,
    "llm": llm,
}
