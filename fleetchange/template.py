"""Fill ``{name}`` placeholders from a fixed set of values, and nothing else.

``str.format`` would let a template reach attributes (``{repo.__class__}``) and
raise on stray braces; this filler knows only plain names, keeps unknown text
as written when asked to, and treats ``{{`` / ``}}`` as literal braces.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def placeholders(template: str) -> set[str]:
    return {m.group(1) for m in _TOKEN.finditer(template) if m.group(1)}


def unknown_placeholders(template: str, known: Iterable[str]) -> list[str]:
    return sorted(placeholders(template) - set(known))


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace every ``{name}`` in ``values``; other text, unknown names included, stays."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = match.group(1)
        return values.get(name, token)

    return _TOKEN.sub(replace, template)
