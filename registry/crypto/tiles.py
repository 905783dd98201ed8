"""C2SP tlog-tiles: the log as static tiles of hashes and bundles of entries.

A tile at level L, index N holds the hashes of the tree's complete subtrees
of 256**L leaves (tree level 8L), numbers N*256 to N*256+255: exactly the
stored hashes ``(8L, i)`` (``store.nodes``), so a tile is read, never
computed. The rightmost tile of a level is partial (``.p/W``, W of 1-255
hashes) until it fills. A tile's content at a given width never changes,
which is what lets mirrors and CDNs cache it.

This module says which hashes a tile holds, encodes and decodes paths,
tiles and entry bundles, and checks a tree read from tiles against a signed
root (``TiledTree``); the caller fetches. Spec: https://c2sp.org/tlog-tiles.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import merkle

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_LEVEL = 63
MAX_ENTRY_SIZE = 0xFFFF  # an entry bundle prefixes each entry with its length as a big-endian uint16
_MAX_INDEX = 1 << 64  # paths name uint64 indices, as Go's and tessera's parsers read them

# Path elements as regular expressions that Python and OpenAPI (ECMA) read alike.
LEVEL_PATTERN = r"[0-9]|[1-5][0-9]|6[0-3]"
# Groups of three digits, all but the last prefixed with x; then an optional
# partial width of 1-255 without leading zeros.
INDEX_PATTERN = r"((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([1-9][0-9]?|1[0-9]{2}|2[0-4][0-9]|25[0-5]))?"
_LEVEL = re.compile(LEVEL_PATTERN)
_INDEX = re.compile(INDEX_PATTERN)


class TileError(ValueError):
    """A tile path that names no tile, or tile data that does not fit the tree it claims to be of."""


@dataclass(frozen=True)
class Tile:
    """Tile ``index`` of ``level`` at ``width`` hashes (256: full); for an entry bundle, level is 0."""

    level: int
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self):
        if not 0 <= self.level <= MAX_LEVEL or not 0 <= self.index < _MAX_INDEX \
                or not 1 <= self.width <= TILE_WIDTH:
            raise TileError(f"no tile at level {self.level}, index {self.index}, width {self.width}")

    @property
    def full(self) -> bool:
        return self.width == TILE_WIDTH

    @property
    def first(self) -> int:
        """The index, at tree level 8L, of the first hash in the tile (for level 0: its first entry)."""
        return self.index * TILE_WIDTH

    def nodes(self) -> list[merkle.Node]:
        """The stored complete subtrees whose hashes the tile holds, in order."""
        return [(TILE_HEIGHT * self.level, self.first + i) for i in range(self.width)]

    def suffix(self) -> str:
        return encode_index(self.index) + ("" if self.full else f".p/{self.width}")

    def path(self) -> str:
        return f"tile/{self.level}/{self.suffix()}"

    def bundle_path(self) -> str:
        return f"tile/entries/{self.suffix()}"


def encode_index(index: int) -> str:
    """``1234067`` as ``x001/x234/067``: three-digit groups, all but the last prefixed with x."""
    digits = str(index)
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i:i + 3] for i in range(0, len(digits), 3)]
    return "/".join([*(f"x{group}" for group in groups[:-1]), groups[-1]])


def parse_tile(level: str, index: str) -> Tile:
    """The tile a path names: ``level`` as in ``tile/<L>/``, ``index`` as ``<N>[.p/<W>]``.

    Only the one canonical spelling of each tile is accepted (no leading
    zero groups, no width 256 as a partial), so that a cache never holds
    one tile under two names.
    """
    if not _LEVEL.fullmatch(level):
        raise TileError(f"tile level {level!r} is not 0-63 without leading zeros")
    return _parse(int(level), index)


def parse_bundle(index: str) -> Tile:
    """The entry bundle that ``tile/entries/<N>[.p/<W>]`` names."""
    return _parse(0, index)


def _parse(level: int, index: str) -> Tile:
    match = _INDEX.fullmatch(index)
    if match is None:
        raise TileError(f"tile index {index!r} is not of the form x001/x234/067[.p/W]")
    number = int(match.group(1).replace("x", "").replace("/", ""))
    if encode_index(number) != match.group(1):
        raise TileError(f"tile index {index!r} is not written in its one canonical form")
    return Tile(level, number, int(match.group(2)) if match.group(2) else TILE_WIDTH)


def width_at(level: int, index: int, size: int) -> int:
    """How many hashes tile ``index`` of ``level`` holds in a tree of ``size`` leaves (0: none yet)."""
    return max(0, min(TILE_WIDTH, (size >> (TILE_HEIGHT * level)) - index * TILE_WIDTH))


def edge_tiles(size: int) -> list[Tile]:
    """The partial tiles of a tree of ``size``, lowest level first: all a root needs."""
    found = []
    level = 0
    while size >> (TILE_HEIGHT * level):
        count = size >> (TILE_HEIGHT * level)
        if count % TILE_WIDTH:
            found.append(Tile(level, count // TILE_WIDTH, count % TILE_WIDTH))
        level += 1
    return found


def tiles_of(size: int) -> list[Tile]:
    """Every tile of a tree of ``size``, full and partial, level by level."""
    found = []
    level = 0
    while size >> (TILE_HEIGHT * level):
        count = size >> (TILE_HEIGHT * level)
        found += [Tile(level, n) for n in range(count // TILE_WIDTH)]
        if count % TILE_WIDTH:
            found.append(Tile(level, count // TILE_WIDTH, count % TILE_WIDTH))
        level += 1
    return found


def decode_hashes(data: bytes, width: int) -> list[bytes]:
    if len(data) != width * merkle.HASH_SIZE:
        raise TileError(f"a tile of {width} hashes has {width * merkle.HASH_SIZE} bytes, not {len(data)}")
    return [data[i:i + merkle.HASH_SIZE] for i in range(0, len(data), merkle.HASH_SIZE)]


def encode_bundle(entries: Sequence[bytes]) -> bytes:
    """Entries, each after its length as a big-endian uint16."""
    parts = []
    for entry in entries:
        if len(entry) > MAX_ENTRY_SIZE:
            raise TileError(f"an entry of {len(entry)} bytes does not fit a bundle's uint16 length")
        parts += [len(entry).to_bytes(2, "big"), entry]
    return b"".join(parts)


def decode_bundle(data: bytes, count: int) -> list[bytes]:
    """The ``count`` entries of a bundle; anything short, long or truncated is an error."""
    entries, offset = [], 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise TileError("entry bundle ends inside a length prefix")
        length = int.from_bytes(data[offset:offset + 2], "big")
        offset += 2
        if offset + length > len(data):
            raise TileError("entry bundle ends inside an entry")
        entries.append(data[offset:offset + length])
        offset += length
    if len(entries) != count:
        raise TileError(f"entry bundle holds {len(entries)} entries, not {count}")
    return entries


def subtree_hash(hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash over ``hashes`` taken as the leaves' hashes (a tile's hash, for a full tile)."""
    tree = merkle.Frontier(0, [])
    for digest in hashes:
        tree.append(digest)
    return tree.root()


class TiledTree:
    """A tree of ``size`` leaves read from tiles, every hash checked against the signed ``root``.

    The partial tiles of the right edge are checked at once: the root folds
    from them alone. A full tile is checked when first needed, against its
    hash in the tile above, which is checked the same way up to the edge.
    So every hash ``node`` answers is bound to the root, and ``root_at`` of
    an earlier size proves that earlier tree a prefix of this one (what a
    consistency proof shows). ``fetch`` gets a tile's bytes; tiles are kept.
    """

    def __init__(self, size: int, root: bytes, fetch: Callable[[Tile], bytes]):
        self.size = size
        self._fetch = fetch
        self._tiles: dict[tuple[int, int], list[bytes]] = {}
        for tile in edge_tiles(size):
            self._tiles[(tile.level, tile.index)] = decode_hashes(fetch(tile), tile.width)
        if self.root_at(size) != root:
            raise TileError(f"the tiles of size {size} do not add up to the signed root")

    def root_at(self, size: int) -> bytes:
        if not 0 <= size <= self.size:
            raise TileError(f"size {size} is beyond the tree's {self.size}")
        if size == 0:
            return merkle.EMPTY_ROOT
        return merkle.fold([self.node(node) for node in merkle.range_nodes(0, size)])

    def node(self, node: merkle.Node) -> bytes:
        """The hash of a complete subtree below the tree's size: (level, index) as in ``merkle``."""
        height, index = node
        level, below = divmod(height, TILE_HEIGHT)
        first = index << below  # its first hash at tree level 8L
        hashes = self._tile(level, first // TILE_WIDTH)
        start = first % TILE_WIDTH
        if start + (1 << below) > len(hashes):
            raise TileError(f"node {node} is not complete in a tree of size {self.size}")
        return subtree_hash(hashes[start:start + (1 << below)])

    def _tile(self, level: int, index: int) -> list[bytes]:
        kept = self._tiles.get((level, index))
        if kept is not None:
            return kept
        width = width_at(level, index, self.size)
        if width < TILE_WIDTH:  # every partial tile is on the edge, read at the start
            raise TileError(f"tile {index} of level {level} is not in a tree of size {self.size}")
        tile = Tile(level, index)
        hashes = decode_hashes(self._fetch(tile), TILE_WIDTH)
        if subtree_hash(hashes) != self.node((TILE_HEIGHT * (level + 1), index)):
            raise TileError(f"{tile.path()} does not hash to its entry in the level above")
        self._tiles[(level, index)] = hashes
        return hashes
