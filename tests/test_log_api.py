"""The public log endpoints, checked as a stranger would: from the API alone."""

import base64
import hashlib
import json

import pytest

from registry.crypto import merkle, note
from registry.runtime import Runtime
from registry.store import nodes

from .helpers import licence_fields


@pytest.fixture
def grown(registry):
    """A log of several sizes, each with a signed checkpoint."""
    registry.add_party("MK")
    for n in range(1, 12):
        registry.put(f"MKAEOF{n:06d}", licence_fields(serial=n))
    registry.batch([{"certificate": f"MKAEOS{n:06d}", **licence_fields(serial=n, type="AEOS")} for n in range(9)])
    return registry


def _b64(value):
    return base64.b64decode(value)


def _verifier(client):
    return note.Verifier.from_vkey(client.get("/api/v1/log").get_json()["verifier_key"])


def _all_leaves(client):
    items, start = [], 0
    while True:
        page = client.get(f"/api/v1/log/entries?start={start}&limit=7").get_json()["items"]
        if not page:
            return items
        items += page
        start = page[-1]["index"] + 1


def test_checkpoint_is_signed_and_matches_the_entries(grown, client):
    response = client.get("/api/v1/log/checkpoint")
    assert response.mimetype == "text/plain"
    checkpoint = note.open_checkpoint(response.text, _verifier(client), "aeo-registry.test/log")
    leaves = _all_leaves(client)
    assert checkpoint.tree_size == len(leaves) == 21
    frontier = merkle.Frontier(0, [])
    for item in leaves:
        digest = merkle.leaf_hash(item["leaf"].encode())
        assert _b64(item["leaf_hash"]) == digest
        frontier.append(digest)
    assert frontier.root() == checkpoint.root_hash


def test_verifier_key_is_published_with_the_log_key(client, registry):
    info = client.get("/api/v1/log").get_json()
    jwks = client.get("/.well-known/jwks.json").get_json()["keys"]
    log_jwk = next(k for k in jwks if k["aeo_use"] == "log")
    assert info["log_key"]["x"] == log_jwk["x"]
    raw = base64.b64decode(info["verifier_key"].split("+", 2)[2])[1:]
    assert base64.urlsafe_b64encode(raw).decode().rstrip("=") == log_jwk["x"]


def test_leaves_hold_no_operator_data(grown, client):
    for item in _all_leaves(client):
        leaf = json.loads(item["leaf"])
        assert set(leaf) == {"kind", "party", "subject", "version", "kid", "statement_sha256", "logged_at"}
        assert "Operator" not in item["leaf"] and "Skopje" not in item["leaf"]


def test_every_inclusion_proof_verifies_at_every_signed_size(grown, client):
    verifier = _verifier(client)
    leaves = _all_leaves(client)
    signed_sizes = [size for size in range(1, len(leaves) + 1)
                    if client.get(f"/api/v1/log/checkpoints?tree_size={size}").status_code == 200]
    assert len(signed_sizes) >= 10
    for size in signed_sizes:
        checkpoint = note.open_checkpoint(client.get(f"/api/v1/log/checkpoints?tree_size={size}").text, verifier)
        assert checkpoint.tree_size == size
        for index in range(size):
            proof = client.get(f"/api/v1/log/proof/inclusion?index={index}&tree_size={size}").get_json()
            leaf_hash = _b64(proof["leaf_hash"])
            assert leaf_hash == merkle.leaf_hash(leaves[index]["leaf"].encode())
            merkle.verify_inclusion(index, size, leaf_hash, [_b64(h) for h in proof["hashes"]], checkpoint.root_hash)


def test_consistency_between_all_signed_checkpoints(grown, client):
    verifier = _verifier(client)
    notes = {}
    for size in range(1, 22):
        response = client.get(f"/api/v1/log/checkpoints?tree_size={size}")
        if response.status_code == 200:
            notes[size] = note.open_checkpoint(response.text, verifier)
    sizes = sorted(notes)
    # The enrolment of MK's key, each of the eleven publishes and the batch signed one.
    assert sizes == [*range(1, 13), 21], sizes
    checked = 0
    for first in sizes:
        for second in sizes:
            if first <= second:
                proof = client.get(f"/api/v1/log/proof/consistency?first={first}&second={second}").get_json()
                merkle.verify_consistency(first, second, [_b64(h) for h in proof["hashes"]],
                                          notes[first].root_hash, notes[second].root_hash)
                checked += 1
    assert checked == len(sizes) * (len(sizes) + 1) // 2


@pytest.mark.parametrize(("query", "field"), [
    ("index=21&tree_size=21", "index"),
    ("index=3&tree_size=22", "tree_size"),
    ("index=-1&tree_size=5", "index"),
    ("index=x&tree_size=5", "index"),
    ("tree_size=5", "index"),
])
def test_bad_inclusion_queries_are_400(grown, client, query, field):
    response = client.get(f"/api/v1/log/proof/inclusion?{query}")
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"
    assert field in response.get_json()["errors"]


@pytest.mark.parametrize(("query", "field"), [
    ("first=5&second=3", "first"),
    ("first=0&second=3", "first"),
    ("first=3&second=99", "second"),
])
def test_bad_consistency_queries_are_400(grown, client, query, field):
    response = client.get(f"/api/v1/log/proof/consistency?{query}")
    assert response.status_code == 400
    assert field in response.get_json()["errors"]


def test_unsigned_size_has_no_checkpoint(grown, client):
    # The batch of nine was signed once, at its end: sizes inside it were never signed.
    assert client.get("/api/v1/log/checkpoints?tree_size=15").status_code == 404
    assert client.get("/api/v1/log/checkpoints?tree_size=21").status_code == 200


def test_empty_log_has_a_signed_empty_checkpoint(client, registry):
    checkpoint = note.open_checkpoint(client.get("/api/v1/log/checkpoint").text, _verifier(client))
    assert checkpoint.tree_size == 0
    assert checkpoint.root_hash == hashlib.sha256(b"").digest()


def test_entries_paging_limits(grown, client):
    assert client.get("/api/v1/log/entries?limit=0").status_code == 400
    assert client.get("/api/v1/log/entries?limit=1001").status_code == 400
    assert client.get("/api/v1/log/entries?start=500").get_json() == {"items": []}


def _upper_nodes_of(size, lowest_level):
    """Every complete subtree of a tree of ``size`` leaves from ``lowest_level`` up."""
    return {(level, index) for level in range(lowest_level, size.bit_length())
            for index in range(size >> level)}


def _checked_proofs(client, size, sizes_before):
    """Every inclusion proof at ``size``, and consistency from each earlier signed size, verified."""
    verifier = _verifier(client)
    checkpoint = note.open_checkpoint(client.get("/api/v1/log/checkpoint").text, verifier)
    assert checkpoint.tree_size == size
    leaves = _all_leaves(client)
    for index in range(size):
        proof = client.get(f"/api/v1/log/proof/inclusion?index={index}&tree_size={size}").get_json()
        merkle.verify_inclusion(index, size, merkle.leaf_hash(leaves[index]["leaf"].encode()),
                                [_b64(h) for h in proof["hashes"]], checkpoint.root_hash)
    for first in sizes_before:
        earlier = note.open_checkpoint(client.get(f"/api/v1/log/checkpoints?tree_size={first}").text, verifier)
        proof = client.get(f"/api/v1/log/proof/consistency?first={first}&second={size}").get_json()
        merkle.verify_consistency(first, size, [_b64(h) for h in proof["hashes"]],
                                  earlier.root_hash, checkpoint.root_hash)


def _publish(registry, start, count):
    response = registry.batch([{"certificate": f"MKAEOF{n:06d}", **licence_fields(serial=n)}
                               for n in range(start, start + count)])
    assert response.status_code == 200, response.get_json()
    return registry.log_size()


@pytest.fixture
def node_reads(monkeypatch):
    """What the kept upper nodes read from the database: each keyed read's keys, and each range scan's start."""
    from registry.runtime import proof_nodes

    reads = {"keys": [], "from": []}
    stored, stored_from = proof_nodes.stored, proof_nodes.stored_from
    monkeypatch.setattr(proof_nodes, "stored", lambda reader, keys: reads["keys"].extend(keys) or stored(reader, keys))
    monkeypatch.setattr(proof_nodes, "stored_from",
                        lambda reader, low: reads["from"].append(low) or stored_from(reader, low))
    return reads


def test_proofs_read_the_upper_nodes_once_and_top_them_up_as_the_log_grows(registry, client, node_reads):
    registry.add_party("MK")
    first = _publish(registry, 0, 150)
    _checked_proofs(client, first, [])
    # Band 1 is levels 6 and up: read in one range scan, then never asked for by key.
    assert node_reads["from"] == [nodes.band_start(1)]
    assert all(key < nodes.band_start(1) for key in node_reads["keys"])
    node_reads["keys"].clear()
    second = _publish(registry, 150, 200)
    _checked_proofs(client, second, [first])
    # The upper nodes the log grew are read by key once, then kept like the others.
    grown = {nodes.node_key(node) for node in _upper_nodes_of(second, 6)} - {
        nodes.node_key(node) for node in _upper_nodes_of(first, 6)}
    assert grown and {key for key in node_reads["keys"] if key >= nodes.band_start(1)} == grown
    node_reads["keys"].clear()
    _checked_proofs(client, second, [first])
    assert node_reads["keys"], "the lower nodes still come from the database"
    assert all(key < nodes.band_start(1) for key in node_reads["keys"])
    assert node_reads["from"] == [nodes.band_start(1)]


def test_the_kept_band_rises_with_the_log_to_stay_within_its_limit(registry, client, app, node_reads):
    from registry.runtime.proof_nodes import UpperNodes

    kept = Runtime.of(app).proof_nodes = UpperNodes(limit=4)
    registry.add_party("MK")
    assert kept.band_for(128) == 1 and kept.band_for(160) == 2
    first = _publish(registry, 0, 100)
    _checked_proofs(client, first, [])
    assert kept.band == 1 and node_reads["from"] == [nodes.band_start(1)]
    size = _publish(registry, 100, 100)
    _checked_proofs(client, size, [first])
    assert kept.band == 2 and node_reads["from"] == [nodes.band_start(1), nodes.band_start(2)]
