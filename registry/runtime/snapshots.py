"""The snapshots answers were lately computed at, kept between requests.

A snapshot (``services.verification.Snapshot``) is a pure function of the
log below its size, so one loaded for a size serves every request made at
that size, and it is never stale: a request reads the log's size first and
asks for exactly that size, so a grown log means another key. A few sizes
are kept (answers at the current size, and those at the newest cosigned
checkpoint, which may lag) so that they do not evict each other.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from ..services.verification import Snapshot


class SnapshotCache:
    def __init__(self, capacity: int = 4):
        self.capacity = capacity
        self._kept: OrderedDict[int, Snapshot] = OrderedDict()
        self._lock = threading.Lock()

    def at(self, size: int, load: Callable[[], Snapshot]) -> Snapshot:
        """The snapshot at ``size``, from memory or ``load``; threads may race to load, each gets a right one."""
        snapshot = self._kept.get(size)
        if snapshot is None:
            snapshot = load()
            with self._lock:
                self._kept[size] = snapshot
                while len(self._kept) > self.capacity:
                    self._kept.popitem(last=False)
        return snapshot
