"""C2SP tlog-tiles: path encoding, tile math, and the log served as tiles.

The tree is rebuilt from tiles here with hashing written in this file
(RFC 9162's MTH over the tiles' hashes), not with registry.crypto.tiles,
so that serving and checking do not share a mistake.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from registry.crypto import merkle, tiles

VECTORS = json.loads((Path(__file__).parent / "vectors" / "c2sp.json").read_text())
PATHS = VECTORS["tessera_paths"]


# --- paths and tile math (pure) ----------------------------------------------------------------


@pytest.mark.parametrize(("index", "path"), [(0, "000"), (5, "005"), (999, "999"), (1000, "x001/000"),
                                              (1234067, "x001/x234/067")])
def test_index_encoding_of_the_spec(index, path):
    assert tiles.encode_index(index) == path


@pytest.mark.parametrize(("level", "index", "size", "path"), PATHS["tiles"])
def test_tile_paths_as_tessera_writes_them(level, index, size, path):
    # Tessera writes a full tile's path where the size reaches none of the tile (level 15 of a uint64 size).
    assert tiles.Tile(level, index, tiles.width_at(level, index, size) or tiles.TILE_WIDTH).path() == path


@pytest.mark.parametrize(("index", "size", "path"), PATHS["entries_by_tile"])
def test_bundle_paths_as_tessera_writes_them(index, size, path):
    assert tiles.Tile(0, index, tiles.width_at(0, index, size)).bundle_path() == path


@pytest.mark.parametrize(("entry", "size", "path"), PATHS["entries"])
def test_the_bundle_holding_an_entry(entry, size, path):
    index = entry // tiles.TILE_WIDTH
    assert tiles.Tile(0, index, tiles.width_at(0, index, size)).bundle_path() == path


@pytest.mark.parametrize(("level", "index", "want_level", "want_index", "want_width"), PATHS["parse_ok"])
def test_paths_tessera_parses(level, index, want_level, want_index, want_width):
    assert tiles.parse_tile(level, index) == tiles.Tile(want_level, want_index, want_width)


@pytest.mark.parametrize(("level", "index"), [*PATHS["parse_error"], ("0", "x000/001"), ("0", "000.p/0"),
                                              ("0", "000.p/007"), ("01", "000"), ("0", "1"), ("0", "000/"),
                                              ("0", "../000")])
def test_paths_that_name_no_tile_or_not_canonically(level, index):
    with pytest.raises(tiles.TileError):
        tiles.parse_tile(level, index)


def test_parsed_paths_round_trip():
    for tile in (tiles.Tile(0, 0, 1), tiles.Tile(3, 1234067), tiles.Tile(1, 1000, 255)):
        assert tiles.parse_tile(str(tile.level), tile.path().split("/", 2)[2]) == tile
        assert tiles.parse_bundle(tile.bundle_path().split("/", 2)[2]) == tiles.Tile(0, tile.index, tile.width)


@pytest.mark.parametrize("size", ["70000", "256"])
def test_the_tiles_of_the_specs_examples(size):
    expected = VECTORS["tlog_tiles_spec"][size]
    found = tiles.tiles_of(int(size))
    assert sum(1 for t in found if t.level == 0 and t.full) == expected["full_level_0"]
    assert [[t.level, t.index, t.width] for t in found if t.level > 0 or not t.full] == expected["other"]
    assert tiles.edge_tiles(int(size)) == [tiles.Tile(*t) for t in expected["other"] if t[2] < 256]


def test_a_tile_holds_the_stored_subtrees_of_its_level():
    assert tiles.Tile(0, 2, 3).nodes() == [(0, 512), (0, 513), (0, 514)]
    assert tiles.Tile(2, 1, 2).nodes() == [(16, 256), (16, 257)]


def test_entry_bundles_round_trip_and_refuse_what_does_not_fit():
    entries = [b"", b"a", bytes(300), bytes(65535)]
    data = tiles.encode_bundle(entries)
    assert data[:5] == b"\x00\x00\x00\x01a" and len(data) == 2 * 4 + 1 + 300 + 65535
    assert tiles.decode_bundle(data, 4) == entries
    with pytest.raises(tiles.TileError):
        tiles.encode_bundle([bytes(65536)])
    for bad, count in ((data[:-1], 4), (data + b"\x00", 4), (data, 3)):
        with pytest.raises(tiles.TileError):
            tiles.decode_bundle(bad, count)


def _mth(hashes: list[bytes]) -> bytes:
    """RFC 9162 2.1.1 over already-hashed leaves, written out here."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(hashes[:k]) + _mth(hashes[k:])).digest()


def _tree(size: int) -> tuple[list[bytes], dict[merkle.Node, bytes]]:
    leaves = [merkle.leaf_hash(str(i).encode()) for i in range(size)]
    stored: dict[merkle.Node, bytes] = {}
    frontier = merkle.Frontier(0, [])
    for digest in leaves:
        stored.update(((level, index), node) for level, index, node in frontier.append(digest))
    return leaves, stored


def test_tiled_tree_checks_every_hash_against_the_root():
    size = 256 * 256 + 300
    leaves, stored = _tree(size)
    fetched = []

    def fetch(tile):
        fetched.append(tile)
        return b"".join(stored[node] for node in tile.nodes())

    tree = tiles.TiledTree(size, _mth(leaves), fetch)
    assert fetched == tiles.edge_tiles(size)  # the root needs the edge alone
    for earlier in (1, 255, 256, 257, 65536, 65537, size):
        assert tree.root_at(earlier) == _mth(leaves[:earlier])
    assert tree.node((0, 70)) == leaves[70]
    assert tiles.Tile(1, 0) in fetched  # level 0 tile 0 was checked against the full level-1 tile


def test_tiled_tree_refuses_a_wrong_root_or_a_wrong_tile():
    size = 600
    leaves, stored = _tree(size)

    def honest(tile):
        return b"".join(stored[node] for node in tile.nodes())

    with pytest.raises(tiles.TileError, match="signed root"):
        tiles.TiledTree(size, _mth([*leaves[:-1], merkle.leaf_hash(b"other")]), honest)

    def forged_full_tile(tile):
        data = honest(tile)
        return data[:32] + bytes(32) + data[64:] if tile == tiles.Tile(0, 1) else data

    tree = tiles.TiledTree(size, _mth(leaves), forged_full_tile)
    with pytest.raises(tiles.TileError, match="level above"):
        tree.node((0, 257))
    with pytest.raises(tiles.TileError):
        tiles.TiledTree(size, _mth(leaves), lambda tile: honest(tile)[:-1])


def test_an_empty_tree_has_no_tiles():
    assert tiles.tiles_of(0) == [] and tiles.edge_tiles(0) == []
    tree = tiles.TiledTree(0, merkle.EMPTY_ROOT, lambda tile: pytest.fail("nothing to fetch"))
    assert tree.root_at(0) == merkle.EMPTY_ROOT


def test_the_tests_own_tree_hash_gives_rfc_6962s_reference_root():
    leaves = [merkle.leaf_hash(bytes.fromhex(h)) for h in
              ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]]
    assert _mth(leaves).hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
