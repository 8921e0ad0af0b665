"""Bare repositories on disk for the forge test servers, driven by the ``git`` CLI.

Commits are written with ``git fast-import`` (one process, no work tree) under a
pinned identity and date, so the same files give the same SHAs in every run.
Merges use ``git merge-tree --write-tree`` (git >= 2.38) + ``git commit-tree`` +
``git update-ref <new> <old>``, the old value acting as a compare-and-swap guard
against a concurrent push.  Every git subprocess runs with :func:`git_env`, which
pins the identity and keeps the developer's system and global config out.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

GIT = shutil.which("git") or "git"
FIXED_DATE = "1700000000 +0000"
IDENTITY: Mapping[str, str] = {
    "GIT_AUTHOR_NAME": "Fleet Test",
    "GIT_AUTHOR_EMAIL": "fleet-test@example.invalid",
    "GIT_COMMITTER_NAME": "Fleet Test",
    "GIT_COMMITTER_EMAIL": "fleet-test@example.invalid",
    "GIT_AUTHOR_DATE": FIXED_DATE,
    "GIT_COMMITTER_DATE": FIXED_DATE,
}

#: file content for :meth:`BareRepo.commit`; None deletes the file
FileContent = str | bytes | None
MergeMethod = Literal["merge", "squash", "rebase"]

_HOOK = """#!/bin/sh
# Written by tests/servers/gitrepo.py: refuse pushes to the branches listed in
# ./protected-branches (one name per line) with the forge's own message.
fmt={fmt}
while read -r old new ref; do
    branch=${{ref#refs/heads/}}
    if [ "$branch" != "$ref" ] && grep -qxF -e "$branch" protected-branches 2>/dev/null; then
        printf "$fmt\\n" "$ref" >&2
        exit 1
    fi
done
exit 0
"""


def git_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for git subprocesses: pinned identity, ``HOME`` = ``home``, no system
    or global config, never prompting on a terminal."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
        **IDENTITY,
    }
    if extra:
        env.update(extra)
    return env


class GitError(RuntimeError):
    """A git command failed."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(f"git {' '.join(args)} exited {returncode}: {stderr.strip()}")
        self.returncode = returncode
        self.stderr = stderr


class MergeConflictError(Exception):
    """The source cannot be merged into the target without conflicts."""


def _quote_path(name: str) -> str:
    if name.startswith('"') or any(c in name for c in '\n\\"'):
        escaped = name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    return name


class BareRepo:
    """A bare repository at ``path``; write operations are serialised by a lock."""

    def __init__(self, path: Path, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = dict(env)
        self._lock = threading.RLock()
        self._conflicts: dict[tuple[str, str], bool] = {}

    @classmethod
    def init(
        cls,
        path: Path,
        env: Mapping[str, str],
        *,
        default_branch: str = "main",
        files: Mapping[str, FileContent] | None = None,
        message: str = "Initial commit",
    ) -> BareRepo:
        """Create the repository; with ``files``, commit them on ``default_branch``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [GIT, "init", "--bare", "--quiet", f"--initial-branch={default_branch}", str(path)]
        proc = subprocess.run(cmd, env=env, capture_output=True, check=False)
        if proc.returncode:
            raise GitError(cmd[1:], proc.returncode, proc.stderr.decode(errors="replace"))
        repo = cls(path, env)
        if files:
            repo.commit(default_branch, files, message)
        return repo

    @classmethod
    def clone_from(cls, source: BareRepo, path: Path) -> BareRepo:
        """A bare clone (a fork sharing ``source``'s history)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [GIT, "clone", "--bare", "--quiet", str(source.path), str(path)]
        proc = subprocess.run(cmd, env=source.env, capture_output=True, check=False)
        if proc.returncode:
            raise GitError(cmd[1:], proc.returncode, proc.stderr.decode(errors="replace"))
        return cls(path, source.env)

    # -- plumbing -------------------------------------------------------------------
    def run(
        self, *args: str, input: bytes | None = None, ok: Sequence[int] = (0,)
    ) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(
            [GIT, f"--git-dir={self.path}", *args],
            input=input,
            env=self.env,
            capture_output=True,
            check=False,
            timeout=120,
        )
        if proc.returncode not in ok:
            raise GitError(args, proc.returncode, proc.stderr.decode(errors="replace"))
        return proc

    def _out(self, *args: str) -> str:
        return self.run(*args).stdout.decode().strip()

    # -- reading --------------------------------------------------------------------
    def rev_parse(self, rev: str) -> str | None:
        """The commit ``rev`` names (branch, ref or SHA), or None."""
        proc = self.run("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", ok=(0, 1, 128))
        if proc.returncode != 0:
            return None
        return proc.stdout.decode().strip() or None

    def branch_sha(self, branch: str) -> str | None:
        return self.rev_parse(f"refs/heads/{branch}")

    def branches(self) -> dict[str, str]:
        """Every branch name mapped to its tip SHA."""
        out = self._out("for-each-ref", "--format=%(objectname) %(refname)", "refs/heads/")
        result: dict[str, str] = {}
        for line in out.splitlines():
            sha, ref = line.split(" ", 1)
            result[ref.removeprefix("refs/heads/")] = sha
        return result

    def has_branches(self) -> bool:
        """Whether any branch exists (file reads only, no subprocess)."""
        heads = self.path / "refs" / "heads"
        if any(p.is_file() for p in heads.rglob("*")):
            return True
        packed = self.path / "packed-refs"
        return packed.exists() and " refs/heads/" in packed.read_text()

    def head_branch(self) -> str | None:
        proc = self.run("symbolic-ref", "--quiet", "HEAD", ok=(0, 1))
        ref = proc.stdout.decode().strip()
        return ref.removeprefix("refs/heads/") if ref else None

    def set_head(self, branch: str) -> None:
        self.run("symbolic-ref", "HEAD", f"refs/heads/{branch}")

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        proc = self.run("merge-base", "--is-ancestor", ancestor, descendant, ok=(0, 1))
        return proc.returncode == 0

    def commit_info(self, sha: str) -> dict[str, str | list[str]]:
        fmt = "%H%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%s%x00%B"
        fields = self.run("log", "-1", f"--format={fmt}", sha).stdout.decode().split("\0")
        keys = ["id", "parent_ids", "author_name", "author_email", "authored_date"]
        keys += ["committer_name", "committer_email", "committed_date", "title", "message"]
        info: dict[str, str | list[str]] = dict(zip(keys, fields, strict=False))
        info["parent_ids"] = fields[1].split()
        return info

    def changed_files(self, base: str, head: str) -> list[str]:
        """Paths that differ between the merge base of ``base``/``head`` and ``head``."""
        out = self._out("diff", "--name-only", f"{base}...{head}")
        return out.splitlines()

    def merge_tree(self, ours: str, theirs: str) -> str | None:
        """The merged tree of two commits, or None when they conflict."""
        proc = self.run("merge-tree", "--write-tree", ours, theirs, ok=(0, 1))
        return None if proc.returncode == 1 else proc.stdout.decode().split("\n", 1)[0].strip()

    def has_conflicts(self, target_sha: str, source_sha: str) -> bool:
        key = (target_sha, source_sha)
        if key not in self._conflicts:
            self._conflicts[key] = self.merge_tree(target_sha, source_sha) is None
        return self._conflicts[key]

    # -- writing --------------------------------------------------------------------
    def commit(
        self,
        branch: str,
        files: Mapping[str, FileContent],
        message: str = "Update files",
        *,
        start_point: str | None = None,
    ) -> str:
        """Commit ``files`` on top of ``branch`` (created from ``start_point`` if missing)."""
        with self._lock:
            parent = self.branch_sha(branch)
            if parent is None and start_point is not None:
                parent = self.rev_parse(start_point)
                if parent is None:
                    raise GitError(["commit"], 1, f"unknown start point {start_point!r}")
            ident = f"{IDENTITY['GIT_COMMITTER_NAME']} <{IDENTITY['GIT_COMMITTER_EMAIL']}>"
            msg = message.encode()
            stream = bytearray(f"commit refs/heads/{branch}\n".encode())
            stream += f"author {ident} {FIXED_DATE}\ncommitter {ident} {FIXED_DATE}\n".encode()
            stream += f"data {len(msg)}\n".encode() + msg + b"\n"
            if parent:
                stream += f"from {parent}\n".encode()
            for name, content in files.items():
                if content is None:
                    stream += f"D {_quote_path(name)}\n".encode()
                    continue
                data = content.encode() if isinstance(content, str) else content
                stream += f"M 100644 inline {_quote_path(name)}\ndata {len(data)}\n".encode()
                stream += data + b"\n"
            # unpackLimit=0 keeps the tiny pack instead of spawning unpack-objects (2x faster)
            proc = self.run(
                "-c",
                "fastimport.unpackLimit=0",
                "fast-import",
                "--quiet",
                "--date-format=raw",
                input=bytes(stream),
            )
            sha = self.branch_sha(branch)
            if sha is None or b"Not updating" in proc.stderr:  # the branch moved meanwhile
                raise GitError(["fast-import"], 1, proc.stderr.decode(errors="replace"))
            return sha

    def create_branch(self, branch: str, start_point: str) -> str:
        """Create ``branch`` at ``start_point``; GitError if it exists or the start is unknown."""
        with self._lock:
            sha = self.rev_parse(start_point)
            if sha is None:
                raise GitError(["branch"], 1, f"unknown start point {start_point!r}")
            self.run("update-ref", f"refs/heads/{branch}", sha, "")
            return sha

    def delete_branch(self, branch: str) -> bool:
        with self._lock:
            sha = self.branch_sha(branch)
            if sha is None:
                return False
            self.run("update-ref", "-d", f"refs/heads/{branch}", sha)
            return True

    def merge(
        self, target_branch: str, source_sha: str, message: str, method: MergeMethod = "merge"
    ) -> tuple[str, str]:
        """Land ``source_sha`` on ``target_branch``.

        ``merge`` fast-forwards when it can and writes a two-parent merge commit
        otherwise; ``squash`` (and ``rebase``, approximated) writes one single-parent
        commit with the merged tree.  Returns ``(new tip, how)`` where ``how`` is
        ``"fast-forward"``, ``"merge"``, ``"squash"`` or ``"up-to-date"``.  Raises
        MergeConflictError on conflicts and GitError if the target moved meanwhile.
        """
        with self._lock:
            target_sha = self.branch_sha(target_branch)
            if target_sha is None:
                raise GitError(["merge"], 1, f"target branch {target_branch!r} does not exist")
            if self.is_ancestor(source_sha, target_sha):
                return target_sha, "up-to-date"
            if method == "merge" and self.is_ancestor(target_sha, source_sha):
                new, how = source_sha, "fast-forward"
            else:
                tree = self.merge_tree(target_sha, source_sha)
                if tree is None:
                    raise MergeConflictError(f"{source_sha} conflicts with {target_branch}")
                parents = [target_sha] if method != "merge" else [target_sha, source_sha]
                args = ["commit-tree", tree]
                for parent in parents:
                    args += ["-p", parent]
                new = self.run(*args, "-F", "-", input=message.encode()).stdout.decode().strip()
                how = "merge" if method == "merge" else "squash"
            self.run("update-ref", f"refs/heads/{target_branch}", new, target_sha)
            return new, how

    def set_protected(self, branches: Iterable[str], message: str) -> None:
        """Make pushes to ``branches`` fail with ``message`` (``%s`` = the ref) via a
        pre-receive hook; the servers' own merges bypass it, like the real forges."""
        names = sorted(set(branches))
        (self.path / "protected-branches").write_text("".join(f"{b}\n" for b in names))
        hook = self.path / "hooks" / "pre-receive"
        hook.parent.mkdir(exist_ok=True)
        hook.write_text(_HOOK.format(fmt=shlex.quote(message)))
        hook.chmod(0o755)
