"""A process's copy of the log's upper nodes, which every proof shares.

A proof at a million leaves needs some twenty stored hashes from four bands
of levels (``store.nodes``). Those of the upper bands are few and shared by
many proofs, yet on a host that reclaims idle page cache every proof read
their pages from disk again. A committed node never changes, so a process may
keep them: every node from band ``band`` up, read with one range scan on
first use and topped up as the log grows. The lowest band kept rises with the
log so that at most ``limit`` hashes (a few MB) are kept: band 1 (levels 6
and up) to 2,097,152 leaves. ``services.log.fetch_nodes`` uses it when the
proof views pass it; proofs are the same without it.
"""

from __future__ import annotations

import threading
from collections.abc import Collection

from ..store.nodes import BAND_LEVELS, band_start, stored, stored_from
from ..store.reads import Reader


class UpperNodes:
    LIMIT = 1 << 16

    def __init__(self, limit: int = LIMIT):
        self.limit = limit
        self.band = 0  # nothing read yet
        self._hashes: dict[int, bytes] = {}
        self._loading = threading.Lock()

    def band_for(self, size: int) -> int:
        band = 1
        # A tree of n leaves has fewer than 2n / 2**level nodes from ``level`` up.
        while (2 * size) >> (band * BAND_LEVELS) > self.limit:
            band += 1
        return band

    def fetch(self, reader: Reader, keys: Collection[int], size: int) -> dict[int, bytes]:
        """The hashes of those of ``keys`` that are stored (``services.log.NodeCache``)."""
        band = self.band_for(size)
        if band > self.band:  # the log never shrinks, so neither does the band
            self._load(reader, band)
        hashes = self._hashes
        found = {key: hashes[key] for key in keys if key in hashes}
        missing = [key for key in keys if key not in found]
        if missing:
            fresh = stored(reader, missing)
            low = band_start(self.band)
            hashes.update((key, digest) for key, digest in fresh.items() if key >= low)
            found.update(fresh)
        return found

    def _load(self, reader: Reader, band: int) -> None:
        with self._loading:
            if band <= self.band:
                return  # another thread did it
            self._hashes = stored_from(reader, band_start(band))
            self.band = band
