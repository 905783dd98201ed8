"""A process beside each server worker that answers half of every large verify batch.

A 5,000-id batch costs tens of microseconds of Python per id (reading the
versions, recognition, rendering), and one process runs Python on one core
at a time. Its results are a pure function of each id, the checkpoint and
``at`` (``verification.part_json``), so a second process can answer half of
them on the machine's other core while the worker answers the rest: the
answer is byte for byte the one the worker alone would give.

The helper holds its own database connection and snapshot cache and nothing
secret: it never signs. It is started by the gunicorn hook (``start``), a
fresh interpreter that inherits no socket or lock of the worker, and ends
when the worker does (its pipe closes). If it is busy with another request,
has died or does not answer in time, the worker answers the whole batch
itself; a dead helper is started again for the next one.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

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
    collections per batch, about a third of its time: a helper, which only
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
    frees (werkzeug's URL matcher makes a function that refers to itself,
    eight objects a request), so that at 50,000 a worker serving single
    verifications stopped every couple of seconds for a young collection
    of some 50,000 objects, 40-100 ms (``gc.callbacks``), and the requests
    in flight waited: verify p99 12-29 ms against 12-15 at the default 700,
    in alternating 15 s rounds on a kept 300,000-licence registry. A batch
    request is wrapped whole (``@BATCH_GC()`` on its view): with the answer's making alone
    wrapped, reading the 5,000 ids at 700 took a batch from 83 to 138 ms.
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

    def __init__(self, database_url: str, split_min: int, read_fan_out: int):
        self.database_url = database_url
        self.split_min = split_min
        self.read_fan_out = read_fan_out
        self._lock = threading.Lock()  # held from a part's submission until its reply is read
        self._wanted = False
        self._process: subprocess.Popen | None = None
        self.parts_answered = 0

    def start(self) -> None:
        """Starts the helper, and keeps one running from now on."""
        with self._lock:
            self._wanted = True
            self._spawn()

    def stop(self) -> None:
        with self._lock:
            self._wanted = False
            self._discard()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def submit(self, part: bytes) -> Callable[[], bytes | None] | None:
        if not self._wanted or not self._lock.acquire(blocking=False):
            return None
        try:
            if self._process is not None and self._process.poll() is None:
                _send(self._process.stdin, part)
                return self._reply  # which releases the lock
            self._spawn()  # for the next batch: a new helper takes a second or two to start
        except Exception:  # this batch is answered without the helper either way
            log.warning("the batch helper could not take a part; starting another", exc_info=True)
            self._discard()
        self._lock.release()
        return None

    def _reply(self) -> bytes | None:
        try:
            out = self._process.stdout
            if not select.select([out], [], [], REPLY_TIMEOUT_SECONDS)[0]:
                log.warning("the batch helper did not answer in %s s; the next batch starts another",
                            REPLY_TIMEOUT_SECONDS)
                self._discard()
                return None
            reply = _receive(out)
        except (EOFError, OSError):
            log.warning("the batch helper is gone; the next batch starts another")
            self._discard()
            return None
        finally:
            self._lock.release()
        if not reply.startswith(b"["):
            log.warning("the batch helper could not answer: %s", reply[1:].decode("utf-8", "replace"))
            return None
        self.parts_answered += 1
        return reply

    def _spawn(self) -> None:
        self._discard()
        # A fresh interpreter, not a fork: it inherits none of the worker's
        # sockets, threads or locks. The database URL, which may hold a
        # password, goes down the pipe rather than on the command line.
        self._process = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, bufsize=0)
        _send(self._process.stdin, json.dumps({"url": self.database_url,
                                                "read_fan_out": self.read_fan_out}).encode())

    def _discard(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        for stream in (process.stdin, process.stdout):
            stream.close()
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()


def _send(stream: Any, data: bytes) -> None:
    stream.write(len(data).to_bytes(4, "big") + data)


def _receive(stream: Any) -> bytes:
    size = int.from_bytes(_read(stream, 4), "big")
    return _read(stream, size)


def _read(stream: Any, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("the pipe closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def serve(requests: Any, replies: Any) -> None:
    """The helper's loop: a part request in, its results' JSON out, until the worker's end closes."""
    from ..db import Database
    from . import verification

    database = Database(**json.loads(_receive(requests)))
    snapshots = verification.SnapshotCache()
    tune_gc(BATCH_YOUNG_THRESHOLD)
    while True:
        try:
            request = _receive(requests)
        except EOFError:
            break
        try:
            with database.session() as session:
                reply = verification.part_json(database.reader(), snapshots, lambda: session, request)
        except Exception as exc:  # the worker answers this part itself; its log says why
            reply = b"!" + f"{type(exc).__name__}: {exc}".encode()
        try:
            _send(replies, reply)
        except OSError:
            break
    database.dispose()


def start_for(app: Any) -> None:
    """Starts the batch helper of a Flask app, if its settings ask for one (the gunicorn hook)."""
    helper = getattr(app, "extensions", {}).get("registry.batch_helper")
    if helper is not None:
        helper.start()


if __name__ == "__main__":
    # Interrupts and stops go to the server; this process ends when its pipe does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Replies go down a copy of stdout; stdout itself goes to stderr, so
    # that nothing else printed here can break into them.
    replies = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    serve(os.fdopen(0, "rb", buffering=0), replies)
