"""C2SP tlog-tiles: path encoding, tile math, and the log served as tiles.

The tree is rebuilt from tiles here with hashing written in this file
(RFC 9162's MTH over the tiles' hashes), not with registry.crypto.tiles,
so that serving and checking do not share a mistake.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
from pathlib import Path

import pytest
from sqlalchemy import text

from registry import monitor
from registry.crypto import merkle, note, tiles
from registry.runtime import Runtime
from registry.services import log

from .helpers import licence_fields, operator_id

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


# --- the log served as tiles ----------------------------------------------------------------------

LOG = "/api/v1/log"
IMMUTABLE = "public, max-age=31536000, immutable"


def _index(n: int) -> str:
    assert n < 1000  # the spec's encoding, written out for the sizes these tests reach
    return f"{n:03d}"


def _get(client, path: str):
    response = client.get(LOG + path)
    assert response.status_code == 200, (path, response.get_data(as_text=True))
    assert response.mimetype == "application/octet-stream"
    return response


def _signed(client, app) -> note.Checkpoint:
    return note.open_checkpoint(client.get(f"{LOG}/checkpoint").get_data(as_text=True),
                                Runtime.of(app).keyring.log_verifier)


def _bundle_entries(data: bytes) -> list[bytes]:
    entries = []
    while data:
        length = int.from_bytes(data[:2], "big")
        entries.append(data[2:2 + length])
        data = data[2 + length:]
    return entries


def _rebuild(client, size: int) -> bytes:
    """Every tile and bundle of the tree of ``size``, each level checked against the one below; the root."""
    levels, count, level = [], size, 0
    while count:
        hashes = []
        for n in range((count + 255) // 256):
            width = min(256, count - 256 * n)
            data = _get(client, f"/tile/{level}/{_index(n)}" + ("" if width == 256 else f".p/{width}")).data
            assert len(data) == 32 * width
            hashes += [data[i:i + 32] for i in range(0, len(data), 32)]
        levels.append(hashes)
        count //= 256
        level += 1
    for below, above in itertools.pairwise(levels):
        assert above == [_mth(below[256 * i:256 * (i + 1)]) for i in range(len(below) // 256)]
    leaves = []
    for n in range((size + 255) // 256):
        width = min(256, size - 256 * n)
        leaves += _bundle_entries(_get(client, f"/tile/entries/{_index(n)}"
                                           + ("" if width == 256 else f".p/{width}")).data)
    assert len(leaves) == size
    assert [hashlib.sha256(b"\x00" + leaf).digest() for leaf in leaves] == levels[0]
    return _mth(levels[0])


@pytest.fixture
def published(registry):
    """A log of 601 entries: MK's key and 600 licences, in two signed checkpoints."""
    registry.add_party("MK")
    items = [{"certificate": f"MKAEOF{n:06d}", **licence_fields(serial=n, operator={
        "id": operator_id("MK", n), "name": f"Operator {n}", "aliases": [], "address": None})}
        for n in range(1, 601)]
    assert registry.batch(items).status_code == 200
    assert registry.log_size() == 601
    return registry


def test_the_whole_tree_rebuilt_from_tiles_is_the_signed_one(published, client, app):
    checkpoint = _signed(client, app)
    assert checkpoint.tree_size == 601
    assert _rebuild(client, checkpoint.tree_size) == checkpoint.root_hash
    with published.session() as session:
        assert _bundle_entries(_get(client, "/tile/entries/002.p/89").data)[-1] \
            == log.entries(session, 600, 1)[0].leaf.encode()


def test_full_tiles_are_immutable_and_partial_ones_short_lived(published, client):
    for path in ("/tile/0/000", "/tile/0/001", "/tile/entries/001"):
        assert _get(client, path).headers["Cache-Control"] == IMMUTABLE
    for path in ("/tile/0/002.p/89", "/tile/1/000.p/2", "/tile/entries/002.p/89"):
        cache = _get(client, path).headers["Cache-Control"]
        assert cache.startswith("public, max-age=") and "immutable" not in cache
        assert int(cache.rsplit("=", 1)[1]) <= 300


def test_partial_tiles_are_prefixes_of_the_wider_ones(published, client):
    full = _get(client, "/tile/0/000").data
    for width in (1, 7, 255):
        assert _get(client, f"/tile/0/000.p/{width}").data == full[:32 * width]
    bundle = _bundle_entries(_get(client, "/tile/entries/000").data)
    assert _bundle_entries(_get(client, "/tile/entries/000.p/3").data) == bundle[:3]


NO_TILES = [
    "/tile/0/002",  # the partial tile is not full yet
    "/tile/0/002.p/90",  # one hash more than the log has
    "/tile/0/003.p/1", "/tile/1/000", "/tile/2/000.p/1", "/tile/entries/002", "/tile/entries/003.p/1",
    "/tile/0/x001/000", "/tile/63/x999/x999/x999/x999/x999/999.p/255",
    # not tile paths at all
    "/tile/0/2", "/tile/00/000", "/tile/64/000", "/tile/0/000.p/256", "/tile/0/000.p/0", "/tile/0/x000/000",
    "/tile/entries/000.p/", "/tile/entries/x001", "/tile/zero/000",
]


def test_no_tile_beyond_the_log_nor_at_a_malformed_path(published, client):
    for path in NO_TILES:
        response = client.get(LOG + path)
        assert response.status_code == 404, path
        assert response.mimetype == "application/problem+json", path
        assert response.headers["Cache-Control"] == "no-store", path  # it may exist later: no cache may keep it


def test_tiles_stop_at_the_newest_signed_checkpoint(published, client, app):
    # As if entries were committed without their checkpoint: tiles must not show them.
    with Runtime.of(app).database.engine.begin() as connection:
        connection.execute(text("DELETE FROM checkpoint WHERE tree_size > 1"))
    assert published.log_size() == 601
    assert client.get(f"{LOG}/tile/0/000.p/1").status_code == 200
    for path in ("/tile/0/000.p/2", "/tile/0/000", "/tile/entries/000.p/2"):
        assert client.get(LOG + path).status_code == 404, path


def test_entry_bundles_are_gzipped_for_clients_that_accept_it(published, client):
    plain = _get(client, "/tile/entries/000")
    assert "Accept-Encoding" in plain.headers["Vary"] and "Content-Encoding" not in plain.headers
    zipped = client.get(f"{LOG}/tile/entries/000", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.data) == plain.data and len(zipped.data) < len(plain.data) / 3


def _tiles_fetch(client):
    def fetch(path):
        response = client.get(LOG + path)
        return response.status_code, response.data

    return fetch


def _monitor_tiles(client, state, key):
    lines = []
    code = monitor.run_and_report(_tiles_fetch(client), state, key, lines.append, tiles=True)
    return code, lines


def test_the_monitor_reads_the_log_through_tiles_only(registry, client, app, tmp_path):
    key = Runtime.of(app).keyring.log_verifier.vkey()
    requested = []
    fetch = _tiles_fetch(client)

    def recording(path):
        requested.append(path)
        return fetch(path)

    state = tmp_path / "monitor.json"
    registry.add_party("MK")
    assert monitor.run_and_report(recording, state, key, lambda line: None, tiles=True) == 0
    for first, last in ((1, 200), (200, 300), (300, 301), (301, 560)):
        items = [{"certificate": f"MKAEOF{n:06d}", **licence_fields(serial=n, operator={
            "id": operator_id("MK", n), "name": f"Operator {n}", "aliases": [], "address": None})}
            for n in range(first, last)]
        assert registry.batch(items).status_code == 200
        assert monitor.run_and_report(recording, state, None, lambda line: None, tiles=True) == 0
    assert json.loads(state.read_text())["tree_size"] == registry.log_size() == 560
    assert all(path == "/checkpoint" or path.startswith("/tile/") for path in requested), requested
    assert "/tile/entries/001" in requested and "/tile/0/001" in requested
    # Its state is the monitor's usual one: the JSON API mode carries on from it.
    from .test_partner_tools import _monitor
    assert _monitor(client, state) == 0


def test_the_monitor_in_tiles_mode_needs_the_key_first_and_spots_a_fork(registry, client, app, tmp_path):
    state = tmp_path / "monitor.json"
    registry.add_party("MK")
    assert _monitor_tiles(client, state, None)[0] == 2  # no key to trust: nothing concluded
    key = Runtime.of(app).keyring.log_verifier.vkey()
    registry.put("MKAEOF000001", licence_fields())
    code, lines = _monitor_tiles(client, state, key)
    assert code == 0 and lines[0].startswith("checkpoint aeo-registry.test/log size 2 verifies")
    saved = json.loads(state.read_text())
    saved["root_hash"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="  # as if it had seen another history
    state.write_text(json.dumps(saved))
    registry.put("MKAEOF000002", licence_fields(serial=2))
    assert _monitor_tiles(client, state, None)[0] == 1


def test_the_monitor_refuses_a_tile_that_is_not_the_signed_one(registry, client, app, tmp_path):
    registry.add_party("MK")
    for n in range(1, 4):
        registry.put(f"MKAEOF{n:06d}", licence_fields(serial=n))
    key = Runtime.of(app).keyring.log_verifier.vkey()
    honest = _tiles_fetch(client)

    def lying(path):
        status, body = honest(path)
        return (status, body[:-1] + bytes([body[-1] ^ 1])) if path.startswith("/tile/0/") else (status, body)

    code = monitor.run_and_report(lying, tmp_path / "m.json", key, lambda line: None, tiles=True)
    assert code == 1


def test_a_full_level_one_tile_and_a_level_two_tile(registry, client, app):
    """65,836 entries: a full tile at level 1, read from stored hashes of tree level 8, and level 2 above it."""
    registry.add_party("MK")
    size = 256 * 256 + 300
    with registry.session() as session, log.writing(session, registry.keyring.log_signer, registry.now()) as writer:
        # Straight into the log: what the entries say is no matter to the tiles.
        writer.append([log.NewEntry("licence", "MK", f"MKAEOS{n:06d}", 1, "kid", f"statement {n}")
                       for n in range(size - 1)])
    checkpoint = _signed(client, app)
    assert checkpoint.tree_size == size
    assert _get(client, "/tile/1/000").headers["Cache-Control"] == IMMUTABLE
    assert len(_get(client, "/tile/2/000.p/1").data) == 32
    assert _rebuild(client, size) == checkpoint.root_hash
