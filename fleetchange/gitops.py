"""Git, run as a subprocess with an environment fleetchange controls.

Every call gets ``cwd`` explicitly (never ``chdir``), no terminal prompts, no
system or global config (so a user's hooks, aliases or credential helpers never
run inside campaign workspaces) and a fixed identity.  Output that could carry a
credential is passed through :func:`redact` before it reaches an error message.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")
_SECRETS: set[str] = set()


def register_secret(value: str) -> None:
    """Remember a token so :func:`redact` removes it from anything we print or store."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str) -> str:
    text = _URL_CREDENTIALS.sub("***@", text)
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return text


class GitError(Exception):
    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        self.returncode = returncode
        self.stderr = redact(stderr.strip())
        super().__init__(f"git {args[0] if args else ''} exited {returncode}: {self.summary()}")

    def summary(self) -> str:
        """What the server said (``remote:`` lines) and git's verdict, on one line."""
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        remote = [line for line in lines if line.startswith("remote:") and len(line) > 8][:3]
        verdict = [line for line in lines if not line.startswith(("remote:", "hint:"))][-2:]
        return " / ".join(remote + verdict) or "(no output)"


BASE_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_ASKPASS": "",
    "SSH_ASKPASS": "",
    "LC_ALL": "C",
    "GIT_AUTHOR_NAME": "fleetchange",
    "GIT_AUTHOR_EMAIL": "fleetchange@localhost",
    "GIT_COMMITTER_NAME": "fleetchange",
    "GIT_COMMITTER_EMAIL": "fleetchange@localhost",
}
# hooks and fsmonitor are the two ways a repo's or user's config runs code on git commands
SAFE_CONFIG = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "protocol.file.allow=always",
)


def git(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
    timeout: float | None = 600,
) -> str:
    """Run ``git args`` in ``cwd`` and return stdout (stripped of the final newline)."""
    full_env = {**os.environ, **BASE_ENV, **(env or {})}
    try:
        done = subprocess.run(
            ["git", *SAFE_CONFIG, *args],
            cwd=cwd,
            env=full_env,
            input=input,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise GitError(args, -1, f"timed out after {timeout}s") from None
    if check and done.returncode != 0:
        raise GitError(args, done.returncode, done.stderr.decode("utf-8", "replace"))
    return done.stdout.decode("utf-8", "replace").removesuffix("\n")


def ls_remote(
    url: str, *refs: str, cwd: Path, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``{ref: sha}`` for the given refs (all heads and HEAD when none given)."""
    out = git("ls-remote", "--symref", url, *refs, cwd=cwd, env=env, timeout=120)
    result: dict[str, str] = {}
    for line in out.splitlines():
        if line.startswith("ref: "):
            target, _, name = line[5:].partition("\t")
            result[f"symref:{name}"] = target
            continue
        sha, _, name = line.partition("\t")
        result[name] = sha
    return result


def read_ref(gitdir: Path, ref: str) -> str | None:
    """The sha ``ref`` points at in a local repository, read from its files (no subprocess).

    Used on the hot path right after a clone; anything unusual (a symbolic ref)
    falls back to ``git rev-parse``.
    """
    try:
        loose = (gitdir / ref).read_text().strip()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        loose = ""
    if loose and not loose.startswith("ref:"):
        return loose
    if not loose:
        try:
            for line in (gitdir / "packed-refs").read_text().splitlines():
                sha, _, name = line.partition(" ")
                if name == ref and not line.startswith(("#", "^")):
                    return sha
        except FileNotFoundError:
            pass
        return None
    try:
        return git("rev-parse", "--verify", "-q", ref, cwd=gitdir)
    except GitError:
        return None
