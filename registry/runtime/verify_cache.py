"""What a worker keeps to answer a single verification without asking the database.

A verification reads the token's caller, the log's size and the id's
licence versions (``services.verification.Lookups``); under load those
round trips were the largest part of what a verification cost the machine,
on PostgreSQL above all. So each worker keeps, as of one log size, the
callers of the tokens it has seen and the licence versions of the ids it
was asked about, in a ``HotState``, and ``CachedLookups`` answers a repeated
verification from it: byte for byte what the database would have given at
that size. A reader of the verification can ignore all of this.

That is only safe because the database says when it goes stale. Anything
that could change a verification's answer either grows the log (a licence
version, a party key, an agreement: all logged, with the log's head row
updated in the same transaction) or writes the token table.

- On PostgreSQL (``NotifiedCache``), triggers on both (migration 0006)
  NOTIFY ``CHANNEL`` when such a transaction commits, and a listener thread
  in each worker answers each notification by retiring the state and
  starting an empty one at the log's new size. A revocation (of a licence
  or of a token) made anywhere reaches every worker when PostgreSQL
  delivers the notification, well under a millisecond on one host. The
  listener also reads the log's size every ``interval`` seconds; a state is
  trusted only for two intervals after the last read that answered, so a
  worker whose listener lost its connection asks the database again.
- On SQLite (``PolledCache``), every verification first asks its own
  connection's ``PRAGMA data_version``, which changes whenever another
  connection (any thread or process) has committed: a few microseconds, and
  a revocation counts at once, as it did with a query per verification.

Either way a write made through a worker retires that worker's state at
once (``retire``). Entries are read from the database after the state they
go into was made, and kept only if read at its size, so nothing read before
a change can outlive the state that change retires.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from ..domain.licence import LicenceVersion
from ..services import log
from ..services.tokens import Caller, token_hash
from ..services.verification import Lookups
from ..store.database import Database, make_engine
from ..store.reads import Prepared, Reader

logger = logging.getLogger(__name__)

CHANNEL = "aeo_registry_changes"
# The listener's connections show under this name in pg_stat_activity.
HOT_CACHE_APPLICATION = "aeo-registry-hot-cache"
_DATA_VERSION = Prepared(text("PRAGMA data_version"))


def _drain(driver) -> bool:
    """Whether any notification came (all of them read, none waited for)."""
    return sum(1 for _ in driver.notifies(timeout=0)) > 0


class HotState:
    """Token callers and licence versions, read at one log size; never changed once retired.

    Entries are kept only if read at this state's size (``CachedLookups``).
    Threads add entries without a lock: a dict's item assignment is atomic,
    and a state that is retired meanwhile is simply no longer read.
    """

    __slots__ = ("callers", "size", "versions")

    def __init__(self, size: int):
        self.size = size
        self.callers: dict[str, Any] = {}  # token hash -> what the caller's lookup gave
        self.versions: dict[str, Any] = {}  # identifier -> its versions below ``size``


class HotCache:
    """The current ``HotState`` of this process; a subclass knows when it goes stale."""

    def __init__(self, capacity: int = 20_000):
        self.capacity = capacity
        self._state: HotState | None = None

    @property
    def state(self) -> HotState | None:
        """The state as it is, unchecked (for tests and tools)."""
        return self._state

    def current(self, reader: Reader) -> HotState | None:
        """The state to answer from, or None: ask the database (and ``keep`` what it says)."""
        raise NotImplementedError

    def keep(self, kept: dict[str, Any], key: str, value: Any) -> None:
        """Keep ``value`` in one of a state's tables, the oldest entry making room at capacity."""
        if len(kept) >= self.capacity:
            # The oldest (dicts keep insertion order). Another thread may change
            # it meanwhile; then the next insert tries again.
            with contextlib.suppress(StopIteration, KeyError, RuntimeError):
                del kept[next(iter(kept))]
        kept[key] = value

    def retire(self) -> None:
        """Stop answering from the current state (after a write made in this process)."""
        self._state = None

    def close(self) -> None:
        self._state = None


class PolledCache(HotCache):
    """SQLite: each verification asks its connection whether anyone committed since it last asked."""

    def __init__(self, capacity: int = 20_000):
        super().__init__(capacity)
        # What each connection last said (one reader per server thread, kept for good).
        self._seen: weakref.WeakKeyDictionary[Reader, int] = weakref.WeakKeyDictionary()

    def current(self, reader: Reader) -> HotState | None:
        version = reader.one(_DATA_VERSION)[0]
        if version != self._seen.get(reader) or self._state is None:
            # Something was committed (or this connection never asked): a new,
            # empty state at the size read now, after that commit.
            self._seen[reader] = version
            self._state = HotState(log.tree_size(reader))
        return self._state


class NotifiedCache(HotCache):
    """PostgreSQL: a listener thread per process retires the state on each notification."""

    def __init__(self, engine: Engine, capacity: int = 20_000, interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(capacity)
        self.engine = engine  # AUTOCOMMIT, no pool: the listener's connection is its own
        self.interval = interval
        self.clock = clock
        self._trusted_until = 0.0
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self.rounds = 0  # the listener's completed reads of the log's size (tests wait on it)
        self.round_done = threading.Condition()

    def current(self, reader: Reader | None = None) -> HotState | None:
        if self._pid != os.getpid():
            self._start()
        state = self._state
        if state is None or self.clock() > self._trusted_until:
            return None
        return state

    def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            wake, self._wake = self._wake, None
            self._stop.set()
        if self._pid == os.getpid():
            if wake is not None:
                wake[1].send(b"x")
            if thread is not None:
                thread.join(timeout=10)
            if wake is not None:
                wake[0].close()
                wake[1].close()
        self._state = None
        self.engine.dispose()

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            # A forked copy's listener (if any) was the parent's; this process starts its own.
            self._state, self._pid = None, os.getpid()
            self._stop = threading.Event()
            self._wake = socket.socketpair()
            self._thread = threading.Thread(target=self._listen, args=(self._wake[0],), name="registry-hot-cache",
                                            daemon=True)
            self._thread.start()

    def _listen(self, wake_reader: socket.socket) -> None:
        backoff = 0.2
        try:
            while not self._stop.is_set():
                try:
                    self._serve_connection(wake_reader)
                except Exception as exc:  # any failure of the connection: fall back, reconnect
                    self._state = None
                    if self._stop.is_set():
                        break
                    # The exception's class only: a driver's message may quote the connection string.
                    logger.warning("verification cache: listener lost the database (%s); retrying",
                                   type(exc).__name__)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 10.0)
                else:
                    backoff = 0.2
        finally:
            self._state = None

    def _serve_connection(self, wake_reader: socket.socket) -> None:
        with self.engine.connect() as connection:
            driver = connection.connection.dbapi_connection
            connection.exec_driver_sql(f"LISTEN {CHANNEL}")
            reader = Reader(driver, connection.dialect)
            # Listening before the first read: no commit can fall between the two unseen.
            self._round(reader, notified=True)
            with selectors.DefaultSelector() as selector:
                selector.register(driver.fileno(), selectors.EVENT_READ)
                selector.register(wake_reader, selectors.EVENT_READ)
                while not self._stop.is_set():
                    # Notifications that came with the last round's reply are already read
                    # off the socket, so the socket is asked only when there are none.
                    notified = _drain(driver)
                    if not notified:
                        selector.select(self.interval)
                        if self._stop.is_set():
                            return
                        notified = _drain(driver)
                    self._round(reader, notified)

    def _round(self, reader: Reader, notified: bool) -> None:
        """Read the log's size; a new state if anything was committed (or the size moved)."""
        asked = self.clock()
        size = log.tree_size(reader)
        state = self._state
        if notified or state is None or state.size != size:
            self._state = HotState(size)
        self._trusted_until = asked + 2 * self.interval
        with self.round_done:
            self.rounds += 1
            self.round_done.notify_all()


def make_cache(database: Database) -> HotCache | None:
    """The verification cache that suits the database: notified on PostgreSQL, polled on SQLite."""
    if database.is_sqlite:
        return PolledCache()
    if database.engine.dialect.name == "postgresql":
        return NotifiedCache(make_engine(database.url, isolation_level="AUTOCOMMIT", poolclass=NullPool,
                                         pool_pre_ping=False, connect_args={"application_name": HOT_CACHE_APPLICATION}))
    return None


class CachedLookups(Lookups):
    """``verification.Lookups`` that answers from this process's ``HotState`` where it can.

    The state is taken once per request, so that the token, the log's size
    and the versions of one answer all come from one moment. Batches read
    the database: thousands of ids asked once would push out the ones single
    verifications keep asking about.
    """

    def __init__(self, cache: HotCache, reader: Reader):
        super().__init__(reader)
        self.cache = cache
        self.state = cache.current(reader)

    def caller(self, token: str) -> Caller | None:
        state = self.state
        if state is None:
            return super().caller(token)
        key = token_hash(token)
        caller = state.callers.get(key)
        if caller is None:
            caller = super().caller(token)
            if self._size != state.size:
                # The database has moved on since the state was made: answer from it, not from memory.
                self.state = None
            elif caller is not None:
                self.cache.keep(state.callers, key, caller)
        return caller

    def log_size(self) -> int:
        return self.state.size if self.state is not None else super().log_size()

    def versions(self, wanted: Iterable[str], size: int, statements: bool = False) -> dict[str, list[LicenceVersion]]:
        wanted = list(wanted)
        state = self.state
        if state is None or size != state.size or not statements or len(set(wanted)) != 1:
            return super().versions(wanted, size, statements)
        identifier = wanted[0]
        found = state.versions.get(identifier)
        if found is None:
            found = super().versions(wanted, size, statements)[identifier]
            self.cache.keep(state.versions, identifier, found)
        return {identifier: found}
