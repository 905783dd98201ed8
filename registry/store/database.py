"""Engines and sessions: how the registry connects to SQLite or PostgreSQL.

Two ways in, each for its job: an ORM ``Session`` for everything done in a
transaction (publishing, the CLI, the pages' reads), and a ``reads.Reader``
per server thread for the hot reads of verification and proofs
(``Database.reader``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from .reads import Reader

SQLITE_BUSY_TIMEOUT_SECONDS = 30
# Page cache of each kept read connection (one per server thread): above
# SQLite's default of 2 MiB, so that a batch on a large registry whose file
# the kernel has dropped from its cache waits on fewer disk reads, and small
# enough that four threads' caches stay a small part of a worker's memory.
SQLITE_READ_CACHE_KIB = 8 * 1024


def _on_sqlite_connect(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets verifications read while a publish writes; FULL syncs each
    # commit so that an acknowledged licence survives a power cut too.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _on_sqlite_read_connect(dbapi_connection, _record) -> None:
    dbapi_connection.execute(f"PRAGMA cache_size=-{SQLITE_READ_CACHE_KIB}")


PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def _create_private(database: str) -> None:
    """The database file (and its folder, if new) created private before SQLite first opens it.

    The file holds licences whose holders did not consent to their sharing;
    SQLite would create it (and its -wal and -shm files, which take the main
    file's mode) with the process's umask, often world-readable. Created at
    the first connection, not with the engine, so that a command refused
    before it touches the database (demo in production) writes nothing.
    """
    path = Path(database)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    with contextlib.suppress(FileExistsError):  # another process made it first, the same way
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))


def make_engine(url: str, **kwargs) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            **kwargs,
        )
        event.listen(engine, "connect", _on_sqlite_connect)
        if parsed.database and parsed.database != ":memory:" and not parsed.query.get("uri"):
            event.listen(engine, "do_connect", lambda *_: _create_private(parsed.database))
        return engine
    return create_engine(url, **{"pool_pre_ping": True, **kwargs})


class Database:
    """The registry's database: a session factory for transactions, and a kept reader per thread."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        # Reads of the hot path: no transaction to begin or roll back, and no
        # ping per checkout (a dead connection is replaced on first failure).
        self.read_engine = make_engine(url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None,
                                       pool_pre_ping=False)
        if self.is_sqlite:
            event.listen(self.read_engine, "connect", _on_sqlite_read_connect)
        self._readers = threading.local()
        self._reader_connections: list[Any] = []
        self._readers_lock = threading.Lock()

    def reader(self) -> Reader:
        """This thread's reader. Each server thread keeps one read connection for good,
        which spares every request a pool checkout and return."""
        current = getattr(self._readers, "reader", None)
        if current is None:
            current = Reader(self.read_engine.raw_connection(), self.read_engine.dialect, self.read_engine)
            self._readers.reader = current
            with self._readers_lock:
                self._reader_connections.append(current)
        return current

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def session(self) -> Session:
        return self.sessionmaker()

    def dispose(self) -> None:
        with self._readers_lock:
            for kept in self._reader_connections:
                kept.connection.close()
            self._reader_connections.clear()
        self._readers = threading.local()
        self.engine.dispose()
        self.read_engine.dispose()
