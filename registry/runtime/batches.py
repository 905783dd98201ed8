"""A process beside each server worker that answers half of every large verify batch.

A 5,000-id batch costs tens of microseconds of Python per id (reading the
versions, recognition, rendering), and one process runs Python on one core
at a time. Its results are a pure function of each id, the checkpoint and
``at`` (``verification.part_json``), so a second process can answer half of
them on the machine's other core while the worker answers the rest: the
answer is byte for byte the one the worker alone would give.

The helper is the standard library's process pool with one process, started
fresh (``spawn``: it inherits no socket, thread or lock of the worker) by the
server's worker hook. It holds its own database connection and snapshot
cache and nothing secret: it never signs. If it is busy with another
request, has died or does not answer in time, the worker answers the whole
batch itself, and a new pool is started for the next one.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from multiprocessing import get_context
from typing import Any

from ..services import verification
from ..store.database import Database
from .snapshots import SnapshotCache

log = logging.getLogger(__name__)

# Longer than any batch takes; a helper that is slower than this is stuck.
REPLY_TIMEOUT_SECONDS = 30.0


# Young collections in a batch: every 50,000 allocations rather than CPython's 700.
BATCH_YOUNG_THRESHOLD = 50_000


def tune_gc(young: int | None = None) -> None:
    """The garbage collector of a worker (``young`` None) or of a batch helper.

    The long-lived objects loaded so far (modules, routes, schemas) are
    frozen, so that full collections skip them. A batch allocates a few
    hundred thousand short-lived objects; with CPython's default threshold
    (700) that set off hundreds of young-generation and several full
    collections per batch, a large share of its time: a helper, which only
    answers batches, collects every ``young`` allocations (the older
    generations keep their default ratios), and a worker does so for the
    length of each batch request, verify or publish (``BATCH_GC``).
    """
    gc.freeze()
    if young is not None:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(young, older, oldest)


class RoomyCollections:
    """While any batch runs in this process, young collections every ``BATCH_YOUNG_THRESHOLD`` allocations.

    Only then: each request leaves a few objects that only the collector
    frees (werkzeug's URL matcher makes a function that refers to itself),
    so that at the batch threshold a worker serving single verifications
    stopped now and then for one long young collection, and the requests in
    flight waited: the verify tail grew (bench/README.md has the figures). A
    batch request is wrapped whole (``@BATCH_GC()`` on its view), the reading
    of its ids and the writing of its answer included: wrapping the answer's
    making alone left most of the batch's collections in place.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._usual: tuple[int, int, int] = gc.get_threshold()

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if not self._running:
                self._usual = gc.get_threshold()
                gc.set_threshold(max(BATCH_YOUNG_THRESHOLD, self._usual[0]), *self._usual[1:])
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                if not self._running:
                    gc.set_threshold(*self._usual)


BATCH_GC = RoomyCollections()


class BatchHelper:
    """One helper process, used by one request at a time (``verification.BatchParts``)."""

    def __init__(self, database_url: str, split_min: int):
        self.database_url = database_url
        self.split_min = split_min
        self._busy = threading.Lock()  # held from a part's submission until its reply is read
        self._pool: ProcessPoolExecutor | None = None
        self._wanted = False
        self.parts_answered = 0

    def start(self) -> None:
        """Starts the helper process, and keeps one running from now on."""
        self._wanted = True
        self._restart()

    def stop(self) -> None:
        self._wanted = False
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, part: bytes) -> Callable[[], bytes | None] | None:
        """Hands ``part`` to the helper; a call that waits for its results' JSON (None if they did not come),
        or None if the helper is busy or not running."""
        pool = self._pool
        if pool is None or not self._busy.acquire(blocking=False):
            return None
        try:
            future = pool.submit(_answer, part)
        except RuntimeError:  # the pool broke since: answered here, and a new one for the next batch
            self._busy.release()
            self._restart()
            return None

        def reply() -> bytes | None:
            try:
                answered = future.result(timeout=REPLY_TIMEOUT_SECONDS)
                self.parts_answered += 1
                return answered
            except (FutureTimeout, BrokenProcessPool) as exc:
                log.warning("the batch helper is stuck or gone (%s); starting another", type(exc).__name__)
                self._restart()
            except Exception:  # the part failed there: this worker answers it
                log.warning("the batch helper could not answer a part; this worker answers it", exc_info=True)
            finally:
                self._busy.release()
            return None

        return reply

    def process_id(self) -> int | None:
        """The helper process's id, as it says itself; None if none is running or it does not answer."""
        pool = self._pool
        if pool is None:
            return None
        try:
            return pool.submit(os.getpid).result(timeout=REPLY_TIMEOUT_SECONDS)
        except (FutureTimeout, BrokenProcessPool, RuntimeError):
            return None

    def _restart(self) -> None:
        if not self._wanted:
            return
        old, self._pool = self._pool, ProcessPoolExecutor(
            1, mp_context=get_context("spawn"), initializer=_start_helper, initargs=(self.database_url,))
        self._pool.submit(int)  # start the process now, not with the first batch
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)


# --- in the helper process --------------------------------------------------------------------

_helper: dict[str, Any] = {}


def _start_helper(database_url: str) -> None:
    # Interrupts and stops go to the server; the helper ends with its pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tune_gc(BATCH_YOUNG_THRESHOLD)
    _helper["database"] = Database(database_url)
    _helper["snapshots"] = SnapshotCache()


def _answer(part: bytes) -> bytes:
    database, snapshots = _helper["database"], _helper["snapshots"]
    with database.session() as session:
        def snapshot_at(size: int) -> verification.Snapshot:
            return snapshots.at(size, lambda: verification.load_snapshot(session, size))

        return verification.part_json(verification.Lookups(database.reader()), snapshot_at, part)
