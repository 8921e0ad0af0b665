"""Build real local-forge fleets (bare repositories) for tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

from fleetchange.forges.local import LocalForge


def run_git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


class LocalFleet:
    """A local forge folder whose repos are made from ``{path: content}`` dicts."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.scratch = root.parent / "scratch"

    def bare(self, name: str) -> Path:
        return self.root / f"{name}.git"

    def add(self, name: str, files: dict[str, str | bytes], *, branch: str = "main") -> Path:
        bare = self.bare(name)
        bare.parent.mkdir(parents=True, exist_ok=True)
        run_git("init", "-q", "--bare", "-b", branch, str(bare), cwd=self.root)
        if files:
            self.commit(name, files, message="initial", branch=branch)
        return bare

    def commit(
        self,
        name: str,
        files: dict[str, str | bytes],
        *,
        message: str = "change",
        branch: str = "main",
        delete: tuple[str, ...] = (),
    ) -> str:
        """Commit ``files`` on top of ``branch`` (or as its first commit) and push it."""
        work = self.scratch / name.replace("/", "__")
        if not work.exists():
            self.scratch.mkdir(parents=True, exist_ok=True)
            run_git("clone", "-q", str(self.bare(name)), str(work), cwd=self.scratch)
        run_git("fetch", "-q", "origin", cwd=work)
        if self.sha(name, f"refs/heads/{branch}"):
            run_git("checkout", "-q", "-B", branch, f"origin/{branch}", cwd=work)
        else:
            run_git("checkout", "-q", "--orphan", branch, cwd=work)
            run_git("rm", "-rqf", "--cached", "--ignore-unmatch", ".", cwd=work)
        for relative in delete:
            (work / relative).unlink()
        for relative, content in files.items():
            target = work / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
        run_git("add", "-A", cwd=work)
        run_git("commit", "-q", "--allow-empty", "-m", message, cwd=work)
        run_git("push", "-q", "-f", "origin", f"HEAD:refs/heads/{branch}", cwd=work)
        return run_git("rev-parse", "HEAD", cwd=work)

    def show(self, name: str, ref: str, path: str) -> str:
        return run_git("show", f"{ref}:{path}", cwd=self.bare(name))

    def sha(self, name: str, ref: str) -> str | None:
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "-q", ref],
            cwd=self.bare(name),
            capture_output=True,
            text=True,
        )
        return done.stdout.strip() or None

    def forge(self) -> LocalForge:
        return LocalForge(self.root)


def campaign_toml(
    root: Path,
    *,
    id: str = "logging-warn",
    extra: str = "",
    test: str | None = None,
    changes: str | None = None,
) -> str:
    """A small valid campaign over ``root`` (the logging.warn codemod by default)."""
    changes = (
        changes
        if changes is not None
        else (
            '[[change]]\nkind = "libcst"\ncodemod = "codemods.logging_warn.ReplaceLoggingWarn"\n'
            "grep = '\\.warn\\('\n"
        )
    )
    test_table = f'[test]\ncommand = "{test}"\ntimeout = 30\n' if test else ""
    return (
        f'[campaign]\nid = "{id}"\ntitle = "Replace logging.warn"\n'
        'description = "logging.warn is deprecated."\n\n'
        f'[targets]\nforge = "local"\nroot = "{root}"\n{extra}\n'
        f"{changes}\n{test_table}"
    )
