"""Engines, sessions, and the per-request session and reader of the Flask app."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app, g
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Dialect, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import Executable

if TYPE_CHECKING:
    from .hot import HotCache


SQLITE_BUSY_TIMEOUT_SECONDS = 30
# Page cache of each kept read connection (one per server thread). With
# SQLite's default of 2 MiB, a 5,000-id batch on a million-licence registry
# whose file the kernel no longer caches took 1.2 to 2.5 times as long as
# with 8 MiB; 16 MiB gained a little more but put four threads' caches at a
# quarter of a worker's memory budget. Once the kernel caches the file the
# size makes no measurable difference. (A memory map was no faster either,
# and counts the whole file in each worker's resident set.)
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


class Prepared:
    """A Core statement compiled once per dialect and run on the driver directly.

    The SQL still comes from the models; what is skipped is SQLAlchemy's work
    per execution (about 100 µs a query here, against some 10 µs for the
    driver), which was most of the cost of a verification. Result values come
    back as the driver gives them (see ``utc``).
    """

    def __init__(self, statement: Executable):
        self.statement = statement
        self._compiled: dict[str, tuple[str, tuple[str, ...] | None, dict[str, Any]]] = {}

    def sql(self, dialect: Dialect) -> tuple[str, tuple[str, ...] | None, dict[str, Any]]:
        """The SQL, the parameter names in order (positional drivers), and the values the statement fixes."""
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            form = self.statement.compile(dialect=dialect)
            names = tuple(form.positiontup) if form.positional else None
            fixed = {name: value for name, value in form.params.items() if value is not None}
            compiled = self._compiled[dialect.name] = (form.string, names, fixed)
        return compiled


class Reader:
    """Read-only queries on one driver connection, outside any transaction.

    Each statement sees what is committed when it runs; the hot paths stay
    consistent by bounding what they read with the log size they read first.
    """

    def __init__(self, connection: Any, dialect: Dialect, engine: Engine | None = None,
                 fan_out: FanOut | None = None):
        self.connection = connection
        self.dialect = dialect
        self.engine = engine  # where to get a fresh connection if this one died
        self.fan_out = fan_out  # where ``each`` may run its runs at once
        self.data_version: int | None = None  # SQLite's, as this connection last gave it (hot.PolledCache)

    def _bound(self, query: Prepared, params: dict[str, Any]) -> tuple[str, Any]:
        """The SQL for this dialect and the arguments in the form its driver takes."""
        sql, names, fixed = query.sql(self.dialect)
        params = {**fixed, **params}
        return sql, tuple(params[n] for n in names) if names is not None else params

    def all(self, query: Prepared, **params: Any) -> list[Sequence[Any]]:
        sql, arguments = self._bound(query, params)
        try:
            return self._run(sql, arguments)
        except self.dialect.loaded_dbapi.Error as exc:
            # Without a ping per checkout, a connection the database dropped
            # (a restart, a failover) shows up here: replace it, try once more.
            if self.engine is None or not self.dialect.is_disconnect(exc, self.connection, None):
                raise
            self.connection.invalidate()
            self.connection = self.engine.raw_connection()
            return self._run(sql, arguments)

    def _run(self, sql: str, arguments: Any) -> list[Sequence[Any]]:
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, arguments)
            return cursor.fetchall()
        finally:
            cursor.close()

    def each(self, query: Prepared, runs: Sequence[dict[str, Any]]) -> Iterator[list[Sequence[Any]]]:
        """The rows of ``query`` run with each of ``runs``, one list per run, in order.

        With a ``fan_out`` they run at once on its connections (see FanOut).
        Without, on PostgreSQL the runs go to the server together (psycopg's
        pipeline mode): it works through the later ones while the caller is
        still busy with the first; elsewhere they run one after the other.
        """
        if len(runs) >= 2 and self.fan_out is not None:
            yield from self.fan_out.each(query, runs)
            return
        if self.dialect.name != "postgresql" or len(runs) < 2:
            for params in runs:
                yield self.all(query, **params)
            return
        connection = self.connection.dbapi_connection
        with connection.pipeline():
            cursors = []
            for params in runs:
                cursor = connection.cursor()
                cursor.execute(*self._bound(query, params))
                cursors.append(cursor)
            for cursor in cursors:
                yield cursor.fetchall()
                cursor.close()

    def one(self, query: Prepared, **params: Any) -> Sequence[Any] | None:
        rows = self.all(query, **params)
        return rows[0] if rows else None

    @classmethod
    def of(cls, session: Session) -> Reader:
        """A reader on a session's connection, inside its transaction (services, tests, the CLI)."""
        connection = session.connection()
        return cls(connection.connection.dbapi_connection, connection.dialect)


class FanOut:
    """A few threads, each with a read connection of its own, that run the queries of one batch at once.

    A connection reads one page at a time (on PostgreSQL, its backend
    does). A 5,000-id batch on a million-licence registry reads thousands
    of random pages, and once the kernel has dropped them from its cache
    each is a wait on the disk. In one process with the file dropped from
    the cache, such a batch took 1.2-1.6 s on one SQLite connection and
    0.45-0.6 s on eight; on PostgreSQL 0.9-1.2 s in one pipeline and
    0.55-0.8 s on eight connections: the disk serves several reads
    together. The drivers let go of the GIL while they wait, so the
    threads wait together while the caller parses the chunks already read.

    The threads start on first use, in the process that uses them: a
    gunicorn worker forked from a master that had made the app gets its own.
    Results are the same as one connection's: every query bounds its rows
    by a log size read before it, and rows below that size never change.
    """

    def __init__(self, engine: Engine, threads: int):
        self.engine = engine
        self.threads = threads
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._pid: int | None = None
        self._local = threading.local()
        self._readers: list[Reader] = []

    def each(self, query: Prepared, runs: Sequence[dict[str, Any]]) -> Iterator[list[Sequence[Any]]]:
        """As ``Reader.each``: the rows of each run, in order; all runs are under way at once."""
        pool = self._pool()
        futures = [pool.submit(self._run, query, params) for params in runs]
        try:
            for future in futures:
                yield future.result()
        finally:
            # A failed run or a caller that stopped reading: nothing left queued.
            for future in futures:
                future.cancel()

    def _run(self, query: Prepared, params: dict[str, Any]) -> list[Sequence[Any]]:
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = Reader(self.engine.raw_connection(), self.engine.dialect, self.engine)
            self._local.reader = reader
            with self._lock:
                self._readers.append(reader)
        return reader.all(query, **params)

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None or self._pid != os.getpid():
                # Threads do not survive a fork: a forked child starts its own.
                self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="registry-read")
                self._pid = os.getpid()
                self._local = threading.local()
                self._readers = []
            return self._executor

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
            readers, self._readers = self._readers, []
        if self._pid not in (None, os.getpid()):
            return  # a forked copy: the threads and connections are the parent's to close
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        for reader in readers:
            reader.connection.close()
        self.engine.dispose()


class Database:
    def __init__(self, url: str, read_fan_out: int, verify_cache: bool = False):
        self.url = url
        self.engine = make_engine(url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        # Single verifications answered from memory (registry/hot.py), on
        # PostgreSQL kept fresh by its notifications, on SQLite by asking the
        # connection whether anyone has committed.
        self.hot = self._hot_cache(url) if verify_cache else None
        if self.hot is not None:
            # A write made here shows in this process's next answer, without
            # waiting for its notification to come back.
            event.listen(self.sessionmaker, "after_commit", lambda _session: self.hot.retire())
        # Reads of the hot path: no transaction to begin or roll back, and no
        # ping per checkout (a dead connection is replaced on first failure).
        self.read_engine = make_engine(url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None,
                                       pool_pre_ping=False)
        if self.is_sqlite:
            event.listen(self.read_engine, "connect", _on_sqlite_read_connect)
        self._readers = threading.local()
        self._reader_connections: list[Any] = []
        self._readers_lock = threading.Lock()
        # The connections of the fan-out are its threads' for good, outside
        # the pool that the server threads draw on. Each reads a tenth of a
        # batch, so on SQLite it keeps the default page cache (2 MB, enough
        # for the upper levels of the trees it walks): eight of 8 MiB would
        # take a quarter of a worker's memory budget. (An in-memory SQLite
        # database is one per connection: it has no fan-out.)
        in_memory = self.is_sqlite and (make_url(url).database in (None, "", ":memory:") or "mode=memory" in url)
        self.fan_out = (FanOut(make_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool,
                                           pool_pre_ping=False), read_fan_out)
                        if read_fan_out > 1 and not in_memory else None)

    def _hot_cache(self, url: str) -> HotCache | None:
        from . import hot

        if self.is_sqlite:
            return hot.PolledCache()
        if self.engine.dialect.name == "postgresql":
            return hot.NotifiedCache(make_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool,
                                                 pool_pre_ping=False,
                                                 connect_args={"application_name": hot.HOT_CACHE_APPLICATION}))
        return None

    def reader(self) -> Reader:
        """This thread's reader. Each server thread keeps one read connection for good,
        which spares every request a pool checkout and return."""
        current = getattr(self._readers, "reader", None)
        if current is None:
            current = Reader(self.read_engine.raw_connection(), self.read_engine.dialect, self.read_engine,
                             self.fan_out)
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
        if self.fan_out is not None:
            self.fan_out.close()
        if self.hot is not None:
            self.hot.close()
        self.engine.dispose()
        self.read_engine.dispose()


def init_app(app: Flask, database: Database) -> None:
    app.extensions["registry.db"] = database
    app.teardown_appcontext(_close_session)


def database() -> Database:
    return current_app.extensions["registry.db"]


def session() -> Session:
    """The request's session, opened on first use and closed when the request ends."""
    if "db_session" not in g:
        g.db_session = database().session()
    return g.db_session


def _close_session(_exc) -> None:
    db_session = g.pop("db_session", None)
    if db_session is not None:
        # Whatever a failed request left unflushed or uncommitted is dropped here.
        db_session.close()


def reader() -> Reader:
    """The reader of this server thread (see ``Database.reader``)."""
    return database().reader()
