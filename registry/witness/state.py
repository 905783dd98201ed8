"""The witness's memory: for each log it witnesses, its keys and the newest checkpoint it cosigned.

One SQLite file, written only inside ``State.locked``: BEGIN IMMEDIATE takes
SQLite's write lock before the current state is read, so two add-checkpoint
requests (threads or processes) check and advance one after the other and
never both from the same size; the UPDATE also names the size and root it
replaces, so a write that somehow raced would change nothing and fail. WAL
with synchronous=FULL makes a commit durable before it returns, and a crash
before the commit leaves the old state whole: SQLite rolls it back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..crypto import merkle

SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    origin TEXT PRIMARY KEY,
    tree_size INTEGER NOT NULL CHECK (tree_size >= 0),
    root_hash BLOB NOT NULL CHECK (length(root_hash) = 32),
    cosigned_at INTEGER NOT NULL DEFAULT 0  -- POSIX time of its newest cosignature, 0 before the first
) STRICT;
CREATE TABLE IF NOT EXISTS log_key (
    origin TEXT NOT NULL REFERENCES log (origin),
    vkey TEXT NOT NULL,  -- a C2SP signed-note verifier key of the log
    PRIMARY KEY (origin, vkey)
) STRICT;
"""
BUSY_TIMEOUT = 30  # seconds a request waits for another's write lock


class StateError(Exception):
    """The state cannot do what was asked (an unknown log, a lost update)."""


@dataclass(frozen=True)
class LogState:
    origin: str
    keys: tuple[str, ...]
    tree_size: int
    root_hash: bytes
    cosigned_at: int


class Update:
    """What ``State.locked`` holds while the caller decides: the log as stored, and its new tree head."""

    def __init__(self, current: LogState):
        self.current = current
        self.new: tuple[int, bytes, int] | None = None

    def record(self, tree_size: int, root_hash: bytes, cosigned_at: int) -> None:
        self.new = (tree_size, root_hash, cosigned_at)


class State:
    """The state file. ``pause`` (tests only) is called at "before-commit" and "after-commit"."""

    def __init__(self, path: Path, pause: Callable[[str], None] | None = None):
        self.path = Path(path)
        self.pause = pause
        with closing(self._connect()) as connection:
            # WAL is a property of the file, kept once set.
            connection.execute("PRAGMA journal_mode = WAL")
            connection.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        # One connection per use: the server's threads share nothing but the file.
        connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("PRAGMA foreign_keys = ON")
        return connection

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that holds SQLite's write lock from its first read."""
        with closing(self._connect()) as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise

    def add_log(self, origin: str, vkeys: list[str], tree_size: int = 0,
                root_hash: bytes = merkle.EMPTY_ROOT) -> None:
        """Witness a new log from (size, root), or trust more keys of a known one."""
        with self._transaction() as connection:
            known = connection.execute("SELECT 1 FROM log WHERE origin = ?", (origin,)).fetchone()
            if known is None:
                connection.execute("INSERT INTO log (origin, tree_size, root_hash) VALUES (?, ?, ?)",
                                   (origin, tree_size, root_hash))
            elif (tree_size, root_hash) != (0, merkle.EMPTY_ROOT):
                raise StateError(f"{origin} is already witnessed; its tree head is not set by hand")
            connection.executemany("INSERT OR IGNORE INTO log_key (origin, vkey) VALUES (?, ?)",
                                   [(origin, vkey) for vkey in vkeys])

    def logs(self) -> list[LogState]:
        with closing(self._connect()) as connection:
            return [self._read(connection, origin)
                    for (origin,) in connection.execute("SELECT origin FROM log ORDER BY origin").fetchall()]

    def log(self, origin: str) -> LogState | None:
        with closing(self._connect()) as connection:
            return self._read(connection, origin)

    @staticmethod
    def _read(connection: sqlite3.Connection, origin: str) -> LogState | None:
        row = connection.execute("SELECT tree_size, root_hash, cosigned_at FROM log WHERE origin = ?",
                                 (origin,)).fetchone()
        if row is None:
            return None
        keys = connection.execute("SELECT vkey FROM log_key WHERE origin = ? ORDER BY vkey", (origin,)).fetchall()
        return LogState(origin, tuple(key for (key,) in keys), row[0], bytes(row[1]), row[2])

    @contextmanager
    def locked(self, origin: str) -> Iterator[Update]:
        """The log as stored, under the write lock; what the caller records is committed on leaving.

        An exception rolls back and the state stays as it was. On return the
        new state is on disk, so a cosignature made after it can never be
        for a state the witness forgets in a crash.
        """
        with self._transaction() as connection:
            current = self._read(connection, origin)
            if current is None:
                raise StateError(f"{origin} is not a log this witness knows")
            update = Update(current)
            yield update
            if update.new is not None:
                changed = connection.execute(
                    "UPDATE log SET tree_size = ?, root_hash = ?, cosigned_at = ?"
                    " WHERE origin = ? AND tree_size = ? AND root_hash = ?",
                    (*update.new, origin, current.tree_size, current.root_hash)).rowcount
                if changed != 1:
                    raise StateError(f"the state of {origin} changed under the lock")
                self._pause("before-commit")
        if update.new is not None:
            self._pause("after-commit")

    def _pause(self, stage: str) -> None:
        if self.pause is not None:
            self.pause(stage)

