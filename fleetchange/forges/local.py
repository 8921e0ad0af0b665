"""The embedded local forge: a folder of bare repositories plus a small MR database.

``<root>/<group>/<name>.git`` are the repositories; ``<root>/.forge.sqlite3`` holds
merge requests and notes.  Git traffic goes through ``file://`` URLs, i.e. git's
real pack transport, so the pipeline does exactly what it does against a remote
forge.  Archived repos and topics come from the bare repo's own config
(``[fleetchange] archived = true``, ``topics = a,b``).
"""

from __future__ import annotations

import configparser
import contextlib
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from .. import killpoints
from ..gitops import GitError, git, read_ref
from .base import ForgeError, MergeRequest, MRSpec, RepoRef

SCHEMA = """
CREATE TABLE IF NOT EXISTS merge_requests (
    repo TEXT NOT NULL,
    number INTEGER NOT NULL,
    state TEXT NOT NULL,
    source_branch TEXT NOT NULL,
    target_branch TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    labels TEXT NOT NULL,
    draft INTEGER NOT NULL,
    assignees TEXT NOT NULL DEFAULT '[]',
    reviewers TEXT NOT NULL DEFAULT '[]',
    pipeline TEXT,
    approved INTEGER NOT NULL DEFAULT 0,
    merged_sha TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (repo, number)
);
CREATE UNIQUE INDEX IF NOT EXISTS one_open_mr_per_branch
    ON merge_requests (repo, source_branch) WHERE state = 'open';
CREATE TABLE IF NOT EXISTS notes (
    repo TEXT NOT NULL, number INTEGER NOT NULL, body TEXT NOT NULL, created_at REAL NOT NULL
);
"""


class LocalForge:
    """A :class:`~fleetchange.forges.base.Forge` over a folder of bare repositories."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.key = "local-" + hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        self.db_path = self.root / ".forge.sqlite3"
        with self._db() as db:
            db.executescript(SCHEMA)

    # -- plumbing ----------------------------------------------------------------

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.db_path, timeout=60, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    def repo_path(self, name: str) -> Path:
        return self.root / f"{name}.git"

    def _bare(self, repo: RepoRef) -> Path:
        path = self.repo_path(repo.name)
        if not path.is_dir():
            raise ForgeError(f"{repo.name}: repository no longer exists on the local forge")
        return path

    # -- listing -----------------------------------------------------------------

    def list_repos(self) -> Iterator[RepoRef]:
        for dirpath, dirnames, _ in os.walk(self.root):
            dirnames.sort()
            bare = [d for d in dirnames if d.endswith(".git")]
            dirnames[:] = [d for d in dirnames if not d.endswith(".git") and not d.startswith(".")]
            for entry in bare:
                path = Path(dirpath) / entry
                if (path / "HEAD").is_file():
                    yield self._repo_ref(path)

    def _repo_ref(self, path: Path) -> RepoRef:
        name = path.relative_to(self.root).as_posix().removesuffix(".git")
        head = (path / "HEAD").read_text().strip()
        default = (
            head.removeprefix("ref: refs/heads/") if head.startswith("ref: refs/heads/") else None
        )
        config = configparser.ConfigParser(strict=False, interpolation=None)
        with contextlib.suppress(configparser.Error, OSError):
            config.read(path / "config")
        section = config["fleetchange"] if config.has_section("fleetchange") else {}
        topics = tuple(t.strip() for t in section.get("topics", "").split(",") if t.strip())
        return RepoRef(
            name=name,
            clone_url=path.as_uri(),
            default_branch=default,
            web_url=path.as_uri(),
            archived=section.get("archived", "false").lower() == "true",
            fork=section.get("fork", "false").lower() == "true",
            topics=topics,
        )

    def git_env(self) -> dict[str, str]:
        return {}

    # -- merge requests ------------------------------------------------------------

    def _row_to_mr(self, repo: RepoRef, row: sqlite3.Row) -> MergeRequest:
        head_sha = row["merged_sha"]
        if row["state"] == "open":
            head_sha = self._branch_sha(repo, row["source_branch"])
        return MergeRequest(
            number=row["number"],
            url=f"local:{repo.name}!{row['number']}",
            state=row["state"],
            source_branch=row["source_branch"],
            target_branch=row["target_branch"],
            title=row["title"],
            body=row["body"],
            head_sha=head_sha,
            draft=bool(row["draft"]),
            labels=tuple(json.loads(row["labels"])),
            pipeline=row["pipeline"],
            approved=bool(row["approved"]),
            mergeable=row["state"] == "open" and head_sha is not None,
        )

    def _branch_sha(self, repo: RepoRef, branch: str) -> str | None:
        return read_ref(self._bare(repo), f"refs/heads/{branch}")

    def _fetch_row(self, repo: RepoRef, number: int) -> sqlite3.Row:
        with self._db() as db:
            row = db.execute(
                "SELECT * FROM merge_requests WHERE repo = ? AND number = ?", (repo.name, number)
            ).fetchone()
        if row is None:
            raise ForgeError(f"{repo.name}: no merge request !{number}")
        return row  # type: ignore[no-any-return]

    def find_mr(self, repo: RepoRef, source_branch: str) -> MergeRequest | None:
        with self._db() as db:
            row = db.execute(
                "SELECT * FROM merge_requests WHERE repo = ? AND source_branch = ?"
                " ORDER BY state = 'open' DESC, number DESC LIMIT 1",
                (repo.name, source_branch),
            ).fetchone()
        return self._row_to_mr(repo, row) if row else None

    def create_mr(self, repo: RepoRef, spec: MRSpec) -> MergeRequest:
        if self._branch_sha(repo, spec.source_branch) is None:
            raise ForgeError(f"{repo.name}: source branch {spec.source_branch} does not exist")
        now = time.time()
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            existing = db.execute(
                "SELECT number FROM merge_requests WHERE repo = ? AND source_branch = ? AND state = 'open'",
                (repo.name, spec.source_branch),
            ).fetchone()
            if existing:  # like GitLab's 409: there already is one, hand it back
                db.execute("COMMIT")
                return self.get_mr(repo, existing["number"])
            number = db.execute(
                "SELECT COALESCE(MAX(number), 0) + 1 FROM merge_requests WHERE repo = ?",
                (repo.name,),
            ).fetchone()[0]
            db.execute(
                "INSERT INTO merge_requests (repo, number, state, source_branch, target_branch, title,"
                " body, labels, draft, assignees, reviewers, created_at, updated_at)"
                " VALUES (?, ?, 'open', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    repo.name,
                    number,
                    spec.source_branch,
                    spec.target_branch,
                    spec.title,
                    spec.body,
                    json.dumps(list(spec.labels)),
                    int(spec.draft),
                    json.dumps(list(spec.assignees)),
                    json.dumps(list(spec.reviewers)),
                    now,
                    now,
                ),
            )
            db.execute("COMMIT")
        killpoints.reached("mr-created")  # the forge has it; fleetchange has not recorded it
        return self.get_mr(repo, number)

    def update_mr(self, repo: RepoRef, mr: MergeRequest, spec: MRSpec) -> MergeRequest:
        with self._db() as db:
            db.execute(
                "UPDATE merge_requests SET title = ?, body = ?, labels = ?, draft = ?, updated_at = ?"
                " WHERE repo = ? AND number = ?",
                (
                    spec.title,
                    spec.body,
                    json.dumps(list(spec.labels)),
                    int(spec.draft),
                    time.time(),
                    repo.name,
                    mr.number,
                ),
            )
        return self.get_mr(repo, mr.number)

    def get_mr(self, repo: RepoRef, number: int) -> MergeRequest:
        return self._row_to_mr(repo, self._fetch_row(repo, number))

    def comment_mr(self, repo: RepoRef, mr: MergeRequest, comment: str) -> None:
        with self._db() as db:
            db.execute(
                "INSERT INTO notes (repo, number, body, created_at) VALUES (?, ?, ?, ?)",
                (repo.name, mr.number, comment, time.time()),
            )

    def notes(self, repo_name: str, number: int) -> list[str]:
        with self._db() as db:
            rows = db.execute(
                "SELECT body FROM notes WHERE repo = ? AND number = ? ORDER BY rowid",
                (repo_name, number),
            ).fetchall()
        return [r["body"] for r in rows]

    def _set_state(
        self, repo: RepoRef, number: int, state: str, merged_sha: str | None = None
    ) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE merge_requests SET state = ?, merged_sha = COALESCE(?, merged_sha), updated_at = ?"
                " WHERE repo = ? AND number = ?",
                (state, merged_sha, time.time(), repo.name, number),
            )

    def close_mr(self, repo: RepoRef, mr: MergeRequest, comment: str) -> MergeRequest:
        if comment:
            self.comment_mr(repo, mr, comment)
        self._set_state(repo, mr.number, "closed")
        return self.get_mr(repo, mr.number)

    def merge_mr(
        self, repo: RepoRef, mr: MergeRequest, *, sha: str, auto: bool = False
    ) -> MergeRequest:
        current = self.get_mr(repo, mr.number)
        if current.state != "open":
            raise ForgeError(f"{repo.name}!{mr.number} is {current.state}, not open")
        if current.head_sha != sha:
            raise ForgeError(
                f"{repo.name}!{mr.number}: head moved to {current.head_sha}, expected {sha}"
            )
        bare = self._bare(repo)
        target_ref = f"refs/heads/{current.target_branch}"
        target = git("rev-parse", target_ref, cwd=bare)
        if self._is_ancestor(bare, target, sha):
            new = sha
        else:
            try:
                tree = git("merge-tree", "--write-tree", target, sha, cwd=bare).splitlines()[0]
            except GitError:
                raise ForgeError(
                    f"{repo.name}!{mr.number} has conflicts with {current.target_branch}"
                ) from None
            new = git(
                "commit-tree",
                tree,
                "-p",
                target,
                "-p",
                sha,
                "-m",
                f"Merge branch '{current.source_branch}' into '{current.target_branch}'\n\n{current.title}",
                cwd=bare,
            )
        git("update-ref", target_ref, new, target, cwd=bare)  # compare-and-swap on the old tip
        self._set_state(repo, mr.number, "merged", merged_sha=sha)
        return self.get_mr(repo, mr.number)

    @staticmethod
    def _is_ancestor(bare: Path, ancestor: str, descendant: str) -> bool:
        try:
            git("merge-base", "--is-ancestor", ancestor, descendant, cwd=bare)
            return True
        except GitError:
            return False

    def delete_branch(self, repo: RepoRef, branch: str) -> None:
        git("update-ref", "-d", f"refs/heads/{branch}", cwd=self._bare(repo), check=False)

    # -- for tests and demos: what reviewers and CI would do ---------------------------

    def approve(self, repo_name: str, number: int, pipeline: str | None = "success") -> None:
        with self._db() as db:
            db.execute(
                "UPDATE merge_requests SET approved = 1, pipeline = ? WHERE repo = ? AND number = ?",
                (pipeline, repo_name, number),
            )

    def all_mrs(self) -> list[MergeRequest]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM merge_requests ORDER BY repo, number").fetchall()
        return [self._row_to_mr(self._repo_ref(self.repo_path(row["repo"])), row) for row in rows]
