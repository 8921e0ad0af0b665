"""Reviewers from a repo's CODEOWNERS file, for the files a change touched.

GitHub and GitLab read ``CODEOWNERS``, ``.github/CODEOWNERS``, ``.gitlab/CODEOWNERS``
or ``docs/CODEOWNERS``; the last rule matching a path wins.  GitLab's ``[Section]``
headers are read as plain rules.  Owners that are teams or groups
(``@org/team``) or e-mail addresses cannot be requested as user reviewers and
are left out.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

LOCATIONS = ("CODEOWNERS", ".github/CODEOWNERS", ".gitlab/CODEOWNERS", "docs/CODEOWNERS")


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    anchored = pattern.startswith("/")
    pattern = pattern.lstrip("/")
    directory = pattern.endswith("/")
    pattern = pattern.rstrip("/")
    body = fnmatch.translate(pattern).removesuffix(r"\Z").replace(".*", "[^/]*")
    body = body.replace("[^/]*[^/]*", ".*")  # ** crosses folders
    # a bare name matches at any depth; a path with a slash is relative to the root
    prefix = r"(?:.*/)?" if "/" not in pattern and not anchored else ""
    suffix = r"/.*" if directory else r"(?:/.*)?"
    return re.compile(f"{prefix}{body}{suffix}\\Z")


def parse(text: str) -> list[tuple[re.Pattern[str], list[str]]]:
    rules = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith(("[", "^[")):
            continue
        pattern, *owners = line.split()
        rules.append((_pattern_regex(pattern), owners))
    return rules


def reviewers(text: str, files: Iterable[str], *, limit: int = 5) -> list[str]:
    """Usernames owning ``files`` (without ``@``), most files owned first, at most ``limit``."""
    rules = parse(text)
    counts: dict[str, int] = {}
    for path in files:
        owners: list[str] = []
        for regex, rule_owners in rules:
            if regex.match(path):
                owners = rule_owners
        for owner in owners:
            if owner.startswith("@") and "/" not in owner:
                counts[owner[1:]] = counts.get(owner[1:], 0) + 1
    return sorted(counts, key=lambda o: (-counts[o], o))[:limit]
