"""Rate limits kept in process memory, and the key a client is counted under.

Each gunicorn worker counts on its own, so the effective limit is the setting
times the number of workers; that is enough to stop enumeration and token
guessing from one network, and needs no shared store. The interface is two
calls, ``hit`` and ``retry_after``, so that a shared store (Redis, through
the ``limits`` library) can take this class's place.

Memory is bounded: at ``max_keys`` keys, the least recently active key that
is not over its limit makes room. Filling the table with fresh addresses
therefore pushes out other fresh addresses, never a client that is being
refused right now (the old limiter emptied the whole table instead, which
reset every limit for whoever cycled through 100,000 addresses).
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict

# How many of the least recently active keys are looked at for one to evict;
# if all of them are over their limit, the least recent goes anyway.
_EVICTION_SCAN = 64


def client_key(address: str | None) -> str:
    """The client a request is counted as: an IPv4 address, or an IPv6 /64 (one subscriber's LAN)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class RateLimiter:
    """At most ``limit`` events per key in any ``window_seconds`` (a sliding log of event times)."""

    def __init__(self, limit: int, window_seconds: int, clock=time.monotonic, max_keys: int = 100_000):
        self.limit = limit
        self.window = window_seconds
        self.clock = clock
        self.max_keys = max_keys
        # key -> times of its recent events, oldest first; the keys least recently active first.
        self._hits: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, hits: list[float], now: float) -> list[float]:
        expired = 0
        while expired < len(hits) and hits[expired] <= now - self.window:
            expired += 1
        if expired:
            del hits[:expired]
        return hits

    def _wait(self, hits: list[float], now: float) -> int | None:
        if len(hits) < self.limit:
            return None
        return max(1, math.ceil(hits[-self.limit] + self.window - now))

    def _make_room(self, now: float) -> None:
        victim = None
        for scanned, (key, hits) in enumerate(self._hits.items()):
            if scanned >= _EVICTION_SCAN:
                break
            if self._wait(self._recent(hits, now), now) is None:
                victim = key
                break
        del self._hits[next(iter(self._hits)) if victim is None else victim]

    def __len__(self) -> int:
        """How many keys it tracks now: never more than ``max_keys``."""
        return len(self._hits)

    def retry_after(self, key: str) -> int | None:
        """Seconds to wait if ``key`` is over its limit now, else None; counts nothing."""
        with self._lock:
            now = self.clock()
            hits = self._hits.get(key)
            return None if hits is None else self._wait(self._recent(hits, now), now)

    def hit(self, key: str) -> int | None:
        """Count one event; if ``key`` was already at its limit, count nothing and return seconds to wait."""
        with self._lock:
            now = self.clock()
            hits = self._hits.get(key)
            if hits is None:
                if len(self._hits) >= self.max_keys:
                    self._make_room(now)
                hits = self._hits[key] = []
            else:
                self._hits.move_to_end(key)
            wait = self._wait(self._recent(hits, now), now)
            if wait is None:
                hits.append(now)
                if len(hits) > self.limit:  # never more than needed to decide
                    del hits[0]
            return wait
