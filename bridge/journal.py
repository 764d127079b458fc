"""The job journal: one SQLite table in WAL mode, written before a request is acknowledged.

A job's row survives any crash: with ``synchronous=FULL`` a commit is on disk when ``insert``
returns, so an acknowledged request is never lost, even to a power cut. Progress is not journaled
(it changes every step and means nothing after a restart); state changes and files are.

Every statement goes through one place (``_execute``), which turns what SQLite and the disk raise
into ``DiskFull`` ("disk full: <path>") or ``JournalError``: a full disk under the journal is a
reason a person can act on, not a traceback in the render thread.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .errors import BridgeError, DiskFull

SCHEMA_VERSION = 1
QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINAL_STATES = (DONE, FAILED, CANCELLED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,  -- submission order
    id          TEXT NOT NULL UNIQUE,
    source      TEXT NOT NULL,                      -- osc | drop | gui | cli | api
    fingerprint TEXT NOT NULL,                      -- same id + same request = a duplicate, not a new job
    spec        TEXT NOT NULL,                      -- JobSpec.to_json()
    reply_to    TEXT,                               -- "host:port" for OSC jobs
    state       TEXT NOT NULL,
    created     REAL NOT NULL,
    started     REAL,
    finished    REAL,
    attempts    INTEGER NOT NULL DEFAULT 0,         -- renders started (a crash loop stops after a few)
    planned     TEXT NOT NULL DEFAULT '[]',         -- output paths reserved before writing
    files       TEXT NOT NULL DEFAULT '[]',         -- [{variation, path, seconds, seed}] once written
    error_code  INTEGER,
    error       TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
"""
_JSON_COLUMNS = ("spec", "planned", "files")
_COLUMNS = (
    "id",
    "source",
    "fingerprint",
    "spec",
    "reply_to",
    "state",
    "created",
    "started",
    "finished",
    "attempts",
    "planned",
    "files",
    "error_code",
    "error",
)


class JournalError(BridgeError):
    """The journal file cannot be opened or belongs to another version of Longplay."""


class Journal:
    """Thread-safe access to the jobs table. Rows come back as plain dicts with JSON decoded."""

    def __init__(self, path: str | os.PathLike[str], synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise JournalError(
                    f"{path} is a version {version} job journal; this Longplay reads version {SCHEMA_VERSION}"
                )
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except (sqlite3.Error, OSError) as err:
            if _is_full(err):
                raise DiskFull(f"disk full: {self.path}") from err
            raise JournalError(f"cannot open the job journal {path}: {getattr(err, 'strerror', None) or err}") from err

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def insert(
        self, id: str, *, source: str, fingerprint: str, spec: dict[str, Any], reply_to: str | None = None
    ) -> dict[str, Any]:
        """Journal a new queued job; raises ``sqlite3.IntegrityError`` if the id exists."""
        row: dict[str, Any] = {
            "id": id,
            "source": source,
            "fingerprint": fingerprint,
            "spec": spec,
            "reply_to": reply_to,
            "state": QUEUED,
            "created": time.time(),
            "started": None,
            "finished": None,
            "attempts": 0,
            "planned": [],
            "files": [],
            "error_code": None,
            "error": None,
        }
        self._execute(
            f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
            [_encode(k, row[k]) for k in _COLUMNS],
        )
        return row

    def update(self, id: str, **fields: Any) -> None:
        unknown = set(fields) - set(_COLUMNS)
        if unknown:
            raise KeyError(f"unknown journal columns {sorted(unknown)}")
        sets = ", ".join(f"{k} = ?" for k in fields)
        self._execute(f"UPDATE jobs SET {sets} WHERE id = ?", [_encode(k, v) for k, v in fields.items()] + [id])

    def delete(self, id: str) -> bool:
        """Remove a finished job's row (the history's delete); queued or running rows stay."""
        marks = ", ".join("?" * len(FINAL_STATES))
        return self._execute(f"DELETE FROM jobs WHERE id = ? AND state IN ({marks})", (id, *FINAL_STATES)) > 0

    def get(self, id: str) -> dict[str, Any] | None:
        rows = self._select("SELECT * FROM jobs WHERE id = ?", (id,))
        return _decode(rows[0]) if rows else None

    def unfinished(self) -> list[dict[str, Any]]:
        """Jobs queued or running when the last process ended, in submission order."""
        rows = self._select("SELECT * FROM jobs WHERE state IN (?, ?) ORDER BY seq", (QUEUED, RUNNING))
        return [_decode(r) for r in rows]

    def recent(self, limit: int = 100, states: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The newest jobs first (the GUI's history view)."""
        query, args = "SELECT * FROM jobs", []
        if states is not None:
            states = list(states)
            query += f" WHERE state IN ({', '.join('?' * len(states))})"
            args += states
        rows = self._select(query + " ORDER BY seq DESC LIMIT ?", [*args, int(limit)])
        return [_decode(r) for r in rows]

    def _execute(self, sql: str, args: Sequence[Any]) -> int:
        """Run a write; -> rows changed. ``sqlite3.IntegrityError`` passes (a taken id is the
        caller's answer); a full disk is ``DiskFull``, anything else ``JournalError``."""
        try:
            with self._lock:
                return int(self._db.execute(sql, args).rowcount)
        except sqlite3.IntegrityError:
            raise
        except (sqlite3.Error, OSError) as err:
            raise self._error(err) from err

    def _select(self, sql: str, args: Sequence[Any]) -> list[sqlite3.Row]:
        try:
            with self._lock:
                return list(self._db.execute(sql, args).fetchall())
        except (sqlite3.Error, OSError) as err:
            raise self._error(err) from err

    def _error(self, err: BaseException) -> BridgeError:
        if _is_full(err):
            return DiskFull(f"disk full: {self.path}")
        return JournalError(f"the job journal {self.path} failed: {getattr(err, 'strerror', None) or err}")


def _is_full(err: BaseException) -> bool:
    """A full disk (or quota) as the OS says it, or as SQLite does (SQLITE_FULL)."""
    if isinstance(err, OSError):
        return err.errno in (errno.ENOSPC, errno.EDQUOT)
    return getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL


def _encode(key: str, value: Any) -> Any:
    return json.dumps(value) if key in _JSON_COLUMNS else value


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    d = {k: row[k] for k in row.keys() if k != "seq"}
    for k in _JSON_COLUMNS:
        d[k] = json.loads(d[k])
    return d
