"""Where a Merkle subtree's stored hash sits in the ``log_node`` table.

Ordered by level and index, the nodes of one proof lie one per level far
apart: at a million leaves a proof read some twenty pages, most of them not
in memory. Keyed by band of six levels, then by the first leaf the node
covers, then by level, the nodes a proof needs from levels 0-5 lie within
126 neighbours, those of levels 6-11 likewise, and so on: a few pages a
proof (migration 0005).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from sqlalchemy import bindparam, select

from ..crypto.merkle import Node
from .models import LogNode
from .reads import Prepared, Reader

BAND_LEVELS = 6
_LEVEL_BITS = 6
_LEAF_BITS = 44  # 17.6 trillion leaves; with the band on top a key stays below 2**63
MAX_LEAVES = 1 << _LEAF_BITS


def node_key(node: Node) -> int:
    """The storage key of a node: (level // 6, first leaf covered, level) packed in one integer."""
    level, index = node
    first = index << level
    if not 0 <= level < 1 << _LEVEL_BITS or not 0 <= first < MAX_LEAVES:
        raise ValueError(f"node {node} is outside the keyed range")
    return band_start(level // BAND_LEVELS) | first << _LEVEL_BITS | level


def band_start(band: int) -> int:
    """The lowest key of band ``band`` (levels ``band * 6`` and up): every key from here on is of that band or above."""
    return band << (_LEAF_BITS + _LEVEL_BITS)


def key_ranges(nodes: Iterable[Node]) -> list[tuple[int, int]]:
    """For each band, the (lowest, highest) key of ``nodes`` in it: ranges that read them in key order."""
    bounds: dict[int, tuple[int, int]] = {}
    for node in nodes:
        key, band = node_key(node), node[0] // BAND_LEVELS
        low, high = bounds.get(band, (key, key))
        bounds[band] = (min(low, key), max(high, key))
    return sorted(bounds.values())


@functools.lru_cache(maxsize=64)
def _by_keys(count: int) -> Prepared:
    """Stored hashes of ``count`` node keys, built once per count."""
    return Prepared(select(LogNode.node_key, LogNode.hash)
                    .where(LogNode.node_key.in_([bindparam(f"k{i}") for i in range(count)])))


_FROM_KEY = Prepared(select(LogNode.node_key, LogNode.hash).where(LogNode.node_key >= bindparam("low")))
# Keys per query: well under SQLite's limit on bound parameters.
_CHUNK = 500


def stored(reader: Reader, keys: Iterable[int]) -> dict[int, bytes]:
    """The stored hashes of those of ``keys`` that are stored, by key."""
    keys = sorted(keys)
    found: dict[int, bytes] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start:start + _CHUNK]
        rows = reader.all(_by_keys(len(chunk)), **{f"k{i}": key for i, key in enumerate(chunk)})
        found.update((key, bytes(digest)) for key, digest in rows)
    return found


def stored_from(reader: Reader, low: int) -> dict[int, bytes]:
    """Every stored hash from key ``low`` on (one range scan: a band and those above it)."""
    return {key: bytes(digest) for key, digest in reader.all(_FROM_KEY, low=low)}
