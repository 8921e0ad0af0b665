"""The state database: one row per (campaign, repo) plus an append-only event history.

SQLite in WAL mode under ``$FLEETCHANGE_HOME``.  Only the coordinator writes;
each repo result is one transaction (row update + its events), so a crash leaves
either the old row or the new one, never half of each.  The schema version lives
in ``PRAGMA user_version`` and migrations run in order inside one transaction.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from . import killpoints
from .errors import UsageError

MIGRATIONS: Sequence[str] = (
    """
    CREATE TABLE campaigns (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        file TEXT NOT NULL,
        version TEXT NOT NULL,
        forge TEXT NOT NULL,
        branch TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE repos (
        campaign TEXT NOT NULL,
        repo TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        version TEXT NOT NULL DEFAULT '',
        base_sha TEXT NOT NULL DEFAULT '',
        head_sha TEXT NOT NULL DEFAULT '',
        default_branch TEXT NOT NULL DEFAULT '',
        mr_number INTEGER,
        mr_url TEXT NOT NULL DEFAULT '',
        mr_state TEXT NOT NULL DEFAULT '',
        pipeline TEXT NOT NULL DEFAULT '',
        approved INTEGER,
        files TEXT NOT NULL DEFAULT '[]',
        test_log TEXT NOT NULL DEFAULT '',
        updated_at REAL NOT NULL,
        PRIMARY KEY (campaign, repo)
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        campaign TEXT NOT NULL,
        repo TEXT NOT NULL,
        at REAL NOT NULL,
        state TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX events_by_campaign ON events (campaign, at);
    """,
    """
    ALTER TABLE repos ADD COLUMN prompt_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE repos ADD COLUMN completion_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE repos ADD COLUMN model_calls INTEGER NOT NULL DEFAULT 0;
    """,
    """
    ALTER TABLE repos ADD COLUMN branch TEXT NOT NULL DEFAULT '';
    """,
    """
    ALTER TABLE campaigns ADD COLUMN wave INTEGER NOT NULL DEFAULT 0;
    """,
)

# States a repo can end a run in; "finished" ones are not redone while base and version hold.
FINISHED = frozenset(
    {
        "no-match",
        "no-change",
        "test-failed",
        "llm-failed",
        "mr-open",
        "merged",
        "closed",
        "skipped",
        "diverged",
    }
)
FAILED = frozenset({"error", "test-failed", "llm-failed"})


@dataclass
class RepoRecord:
    campaign: str
    repo: str
    state: str
    reason: str = ""
    version: str = ""
    base_sha: str = ""
    head_sha: str = ""
    default_branch: str = ""
    mr_number: int | None = None
    mr_url: str = ""
    mr_state: str = ""
    pipeline: str = ""
    approved: int | None = None
    files: list[str] = field(default_factory=list)
    test_log: str = ""
    updated_at: float = 0.0
    prompt_tokens: int = 0  # model tokens spent on this repo, all runs together
    completion_tokens: int = 0
    model_calls: int = 0
    branch: str = ""  # the MR's source branch when it is not the campaign's (adopted MRs)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RepoRecord:
        values = dict(row)
        values["files"] = json.loads(values["files"])
        return cls(**values)


@dataclass(frozen=True)
class Event:
    campaign: str
    repo: str
    at: float
    state: str
    detail: str


@dataclass(frozen=True)
class CampaignRecord:
    id: str
    title: str
    file: str
    version: str
    forge: str
    branch: str
    created_at: float
    updated_at: float
    wave: int = 0


_RECORD_FIELDS = [f.name for f in fields(RepoRecord)]


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except (sqlite3.Error, OSError) as exc:
            raise UsageError(f"cannot open the state database {path}: {exc}") from None

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        current = self.db.execute("PRAGMA user_version").fetchone()[0]
        if current > len(MIGRATIONS):
            raise UsageError(
                f"{self.path} was written by a newer fleetchange (schema {current}); upgrade fleetchange"
            )
        if current == len(MIGRATIONS):
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            current = self.db.execute("PRAGMA user_version").fetchone()[0]
            for version in range(current, len(MIGRATIONS)):
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        self.db.execute(statement)
            self.db.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    # -- campaigns -----------------------------------------------------------------

    def upsert_campaign(
        self, *, id: str, title: str, file: str, version: str, forge: str, branch: str
    ) -> None:
        now = time.time()
        self.db.execute(
            "INSERT INTO campaigns (id, title, file, version, forge, branch, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET title = excluded.title, file = excluded.file,"
            " version = excluded.version, forge = excluded.forge, branch = excluded.branch,"
            " updated_at = excluded.updated_at",
            (id, title, file, version, forge, branch, now, now),
        )

    def campaign(self, id: str) -> CampaignRecord | None:
        row = self.db.execute("SELECT * FROM campaigns WHERE id = ?", (id,)).fetchone()
        return CampaignRecord(**dict(row)) if row else None

    def campaign_wave(self, id: str) -> int:
        row = self.db.execute("SELECT wave FROM campaigns WHERE id = ?", (id,)).fetchone()
        return int(row[0]) if row else 0

    def set_campaign_wave(self, id: str, wave: int) -> None:
        self.db.execute("UPDATE campaigns SET wave = ? WHERE id = ?", (wave, id))

    def campaigns(self) -> list[CampaignRecord]:
        rows = self.db.execute("SELECT * FROM campaigns ORDER BY id").fetchall()
        return [CampaignRecord(**dict(r)) for r in rows]

    # -- repos -----------------------------------------------------------------------

    def repo(self, campaign: str, repo: str) -> RepoRecord | None:
        row = self.db.execute(
            "SELECT * FROM repos WHERE campaign = ? AND repo = ?", (campaign, repo)
        ).fetchone()
        return RepoRecord.from_row(row) if row else None

    def repos(
        self, campaign: str, *, order: Sequence[str] = (), limit: int | None = None
    ) -> list[RepoRecord]:
        """The campaign's repos by name, or first by the position of their state in ``order``."""
        ranking = " ".join(f"WHEN ? THEN {i}" for i in range(len(order)))
        by_state = f"CASE state {ranking} ELSE {len(order)} END, " if order else ""
        rows = self.db.execute(
            f"SELECT * FROM repos WHERE campaign = ? ORDER BY {by_state}repo"
            + (" LIMIT ?" if limit is not None else ""),
            (campaign, *order, *([limit] if limit is not None else [])),
        ).fetchall()
        return [RepoRecord.from_row(r) for r in rows]

    def counts(self, campaign: str) -> dict[str, int]:
        rows = self.db.execute(
            "SELECT state, COUNT(*) FROM repos WHERE campaign = ? GROUP BY state ORDER BY state",
            (campaign,),
        ).fetchall()
        return {state: n for state, n in rows}

    def tokens(self, campaign: str) -> dict[str, int]:
        row = self.db.execute(
            "SELECT COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0),"
            " COALESCE(SUM(model_calls), 0) FROM repos WHERE campaign = ?",
            (campaign,),
        ).fetchone()
        return {"prompt": row[0], "completion": row[1], "calls": row[2]}

    def record(self, record: RepoRecord, events: Iterable[tuple[str, str]] = ()) -> None:
        """Write one repo's new row and its events in a single transaction."""
        record.updated_at = time.time()
        values: dict[str, Any] = {name: getattr(record, name) for name in _RECORD_FIELDS}
        values["files"] = json.dumps(values["files"])
        columns = ", ".join(_RECORD_FIELDS)
        marks = ", ".join("?" for _ in _RECORD_FIELDS)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute(
                f"INSERT OR REPLACE INTO repos ({columns}) VALUES ({marks})",
                [values[name] for name in _RECORD_FIELDS],
            )
            self.db.executemany(
                "INSERT INTO events (campaign, repo, at, state, detail) VALUES (?, ?, ?, ?, ?)",
                [(record.campaign, record.repo, record.updated_at, s, d) for s, d in events],
            )
            killpoints.reached("state-write")  # inside the transaction: must roll back cleanly
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def events(self, campaign: str, repo: str | None = None) -> Iterator[Event]:
        query = "SELECT campaign, repo, at, state, detail FROM events WHERE campaign = ?"
        params: list[Any] = [campaign]
        if repo is not None:
            query += " AND repo = ?"
            params.append(repo)
        for row in self.db.execute(query + " ORDER BY id", params):
            yield Event(*row)
