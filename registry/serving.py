"""The gunicorn worker the registry runs in production (gunicorn.conf.py).

gunicorn's threaded worker (gthread), except for how it takes connections.
This module is imported by gunicorn's master before it starts the workers,
which is what lets them share ``BOARD``.
"""

from __future__ import annotations

import errno
import mmap
import os
import queue
import socket
import struct
import threading
import time

from gunicorn.workers.gthread import TConn, ThreadWorker

# How often a thread waiting in accept() looks up to see whether its worker is
# stopping, and how long it waits after accept() failed for another reason.
ACCEPT_WAKE_SECONDS = 0.5
ACCEPT_RETRY_SECONDS = 0.1
# How long a worker holding more connections than a sibling leaves new ones
# to it at most (a bound for a sibling that stopped accepting without
# stopping), and how often meanwhile it looks again: soon at first, since in
# a burst of connections the sibling catches up in a few milliseconds, then
# more rarely, since an uneven count that lasts means no connection is coming.
YIELD_SECONDS = 0.5
YIELD_FIRST_LOOK_SECONDS = 0.001
YIELD_LAST_LOOK_SECONDS = 0.016
# A worker's main loop wakes at least once a second (gthread); one silent for
# longer than this is stopping, hung or gone, and holds no turn.
SILENT_SECONDS = 3.0

_NO_TIMEOUT = struct.pack("ll", 0, 0)


class ConnectionBoard:
    """How many connections each worker holds, in memory the workers share.

    One slot per worker: its pid, its count, and when its main loop last ran
    (CLOCK_MONOTONIC, in ms, the same in every process). The slot is the
    worker's age (gunicorn numbers the workers it starts) modulo ``SLOTS``:
    two live workers share one only if 64 others were started between them,
    and then they merely stop waiting for each other. Aligned 8-byte stores
    are atomic, and a count a moment stale costs at most one connection
    placed unevenly.
    """

    SLOTS = 64
    _FIELDS = 3  # pid, connections, last seen

    def __init__(self) -> None:
        # Anonymous and shared (mmap's default): made in the master, inherited by every worker.
        self._memory = mmap.mmap(-1, self.SLOTS * self._FIELDS * 8)
        self._slots = memoryview(self._memory).cast("q")

    def claim(self, age: int) -> int:
        slot = age % self.SLOTS
        base = slot * self._FIELDS
        self._slots[base + 1] = 0
        self._slots[base + 2] = _now_ms()
        self._slots[base] = os.getpid()
        return slot

    def publish(self, slot: int, connections: int) -> None:
        self._slots[slot * self._FIELDS + 1] = connections

    def seen(self, slot: int) -> None:
        self._slots[slot * self._FIELDS + 2] = _now_ms()

    def release(self, slot: int) -> None:
        self._slots[slot * self._FIELDS] = 0

    def fewest_elsewhere(self, slot: int) -> int | None:
        """The fewest connections another live worker holds, or None if there is no other."""
        fewest = None
        oldest = _now_ms() - SILENT_SECONDS * 1000
        for other in range(self.SLOTS):
            base = other * self._FIELDS
            if other == slot or self._slots[base] == 0 or self._slots[base + 2] < oldest:
                continue
            count = self._slots[base + 1]
            fewest = count if fewest is None else min(fewest, count)
        return fewest


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


BOARD = ConnectionBoard()


class FairThreadWorker(ThreadWorker):
    """A gthread worker that takes a new connection only when no sibling holds fewer.

    Each kept-alive connection stays with the worker that accepted it, and
    each worker answers on about one core, so a worker holding more of them
    answers each more slowly: its connections set the p99. gthread polls a
    shared socket and whichever worker wakes first takes what is there; per
    worker sockets (SO_REUSEPORT) spread by a hash of the ports. Either left
    one of two workers 10 to 16 of 16 long-lived connections (a load test's,
    a partner's pool) about half the time (bench/README.md).

    Here the workers share one socket, and each waits for a connection in a
    blocking accept() on a thread of its own, which Linux serves in turn; a
    worker holding more connections than a sibling stays out of accept()
    until the sibling has caught up (``BOARD``), for ``YIELD_SECONDS`` at
    most.
    """

    def __init__(self, *args, **kwargs):
        self._connections = 0
        self._slot: int | None = None
        self._open = threading.Event()  # set while this worker takes connections
        self._accepted: queue.SimpleQueue = queue.SimpleQueue()
        self._acceptors: list[threading.Thread] = []
        super().__init__(*args, **kwargs)  # in the master, before the fork

    # gthread counts open connections in ``nr_conns``; each change is published.
    @property
    def nr_conns(self) -> int:
        return self._connections

    @nr_conns.setter
    def nr_conns(self, value: int) -> None:
        self._connections = value
        self._publish()

    def _held(self) -> int:
        """Connections open, and those the accept threads took that the main thread has yet to count."""
        return self._connections + self._accepted.qsize()

    def _publish(self) -> None:
        if self._slot is not None:
            BOARD.publish(self._slot, self._held())

    def notify(self) -> None:
        super().notify()  # once a loop of the main thread
        if self._slot is not None:
            BOARD.seen(self._slot)

    def init_process(self) -> None:
        # In the worker: the slot carries its pid. With reuse_port each worker
        # has a socket of its own, whose connections no sibling can take.
        if not self.cfg.reuse_port:
            self._slot = BOARD.claim(self.age)
        try:
            super().init_process()  # runs the worker until it stops
        finally:
            if self._slot is not None:
                BOARD.release(self._slot)

    def set_accept_enabled(self, enabled: bool) -> None:
        if enabled == self._accepting:
            return
        self._accepting = enabled
        if enabled:
            self._open.set()
            if not self._acceptors:
                self._start_acceptors()
            return
        self._open.clear()
        if not self.alive:
            # Stopping: siblings no longer wait for this worker to take a turn.
            # Once no thread can take another connection, serve what they
            # took; the graceful loop that follows waits for those too.
            if self._slot is not None:
                BOARD.release(self._slot)
            for thread in self._acceptors:
                thread.join(ACCEPT_WAKE_SECONDS * 2)
            self._take_accepted()

    def _start_acceptors(self) -> None:
        wake = struct.pack("ll", int(ACCEPT_WAKE_SECONDS), int(ACCEPT_WAKE_SECONDS % 1 * 1e6))
        for listener in self.sockets:
            # Blocking, so that accept() waits in the kernel's queue; SO_RCVTIMEO
            # bounds the wait, so that the thread notices a stop. Both are set
            # on the shared socket, alike by every worker.
            listener.setblocking(True)
            listener.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, wake)
            thread = threading.Thread(target=self._accept_in_turn, args=(listener,), daemon=True,
                                      name=f"accept {listener}")
            thread.start()
            self._acceptors.append(thread)

    def _accept_in_turn(self, listener) -> None:
        while self.alive:
            if not self._open.wait(ACCEPT_WAKE_SECONDS):
                continue
            self._wait_for_siblings()
            try:
                client, address = listener.accept()
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED, errno.EINTR) \
                        and self.alive:
                    # Out of file descriptors, say: wait for some to be freed rather than spin.
                    self.log.exception("accept failed")
                    time.sleep(ACCEPT_RETRY_SECONDS)
                continue
            # An accepted socket inherits the listener's options: it must not time out reading.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _NO_TIMEOUT)
            self._accepted.put((listener, client, address))
            self._publish()
            self.method_queue.defer(self._take_accepted)

    def _wait_for_siblings(self) -> None:
        if self._slot is None:
            return
        deadline = time.monotonic() + YIELD_SECONDS
        look = YIELD_FIRST_LOOK_SECONDS
        while self.alive and time.monotonic() < deadline:
            fewest = BOARD.fewest_elsewhere(self._slot)
            if fewest is None or self._held() <= fewest:
                return
            time.sleep(look)
            look = min(look * 2, YIELD_LAST_LOOK_SECONDS)

    def _take_accepted(self) -> None:
        """On the main thread: what the accept threads took, into the thread pool as gthread does."""
        while True:
            try:
                listener, client, address = self._accepted.get_nowait()
            except queue.Empty:
                return
            client.setblocking(True)
            self.nr_conns += 1
            self.enqueue_req(TConn(self.cfg, client, address, listener.getsockname()))
