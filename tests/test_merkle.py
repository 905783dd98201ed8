"""The Merkle code against transparency-dev/merkle's published RFC 9162 vectors."""

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.crypto import merkle

VECTORS = Path(__file__).parent / "testdata" / "merkle"
RFC6962_LEAVES = [bytes.fromhex(h) for h in
                  ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                   "606162636465666768696a6b6c6d6e6f"]]
RFC6962_ROOT8 = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")


def _cases(kind):
    files = sorted((VECTORS / kind).rglob("*.json"))
    assert len(files) > 50, f"{kind} vectors missing"
    return [pytest.param(json.loads(f.read_text()), id=str(f.relative_to(VECTORS))) for f in files]


def _b64(value):
    return base64.b64decode(value) if value else b""


@pytest.mark.parametrize("case", _cases("inclusion"))
def test_inclusion_vectors(case):
    def check():
        merkle.verify_inclusion(case["leafIdx"], case["treeSize"], _b64(case["leafHash"]),
                                [_b64(p) for p in case["proof"] or []], _b64(case["root"]))
    if case["wantErr"]:
        with pytest.raises(merkle.ProofError):
            check()
    else:
        check()


@pytest.mark.parametrize("case", _cases("consistency"))
def test_consistency_vectors(case):
    def check():
        merkle.verify_consistency(case["size1"], case["size2"], [_b64(p) for p in case["proof"] or []],
                                  _b64(case["root1"]), _b64(case["root2"]))
    if case["wantErr"]:
        with pytest.raises(merkle.ProofError):
            check()
    else:
        check()


def _tree(leaves):
    """A whole tree's node store built by appending, as the log does."""
    frontier = merkle.Frontier(0, [])
    stored = {}
    for leaf in leaves:
        for level, index, digest in frontier.append(merkle.leaf_hash(leaf)):
            assert (level, index) not in stored
            stored[(level, index)] = digest
    return frontier, stored


def _reference_root(leaves):
    """MTH straight from RFC 9162's recursive definition."""
    if not leaves:
        return merkle.EMPTY_ROOT
    if len(leaves) == 1:
        return merkle.leaf_hash(leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return merkle.node_hash(_reference_root(leaves[:k]), _reference_root(leaves[k:]))


def test_rfc6962_reference_root():
    frontier, stored = _tree(RFC6962_LEAVES)
    assert frontier.root() == RFC6962_ROOT8
    assert merkle.root_from(8, stored) == RFC6962_ROOT8


def test_generated_proofs_match_vectors():
    _, stored = _tree(RFC6962_LEAVES)
    for path in (VECTORS / "inclusion").glob("*/happy-path.json"):
        case = json.loads(path.read_text())
        proof = merkle.hashes_for(merkle.inclusion_ranges(case["leafIdx"], case["treeSize"]), stored)
        assert proof == [_b64(p) for p in case["proof"] or []]
    for path in (VECTORS / "consistency").glob("*/happy-path.json"):
        case = json.loads(path.read_text())
        proof = merkle.hashes_for(merkle.consistency_ranges(case["size1"], case["size2"]), stored)
        assert proof == [_b64(p) for p in case["proof"] or []]


@given(st.lists(st.binary(max_size=8), min_size=1, max_size=70), st.data())
def test_stored_nodes_give_roots_and_proofs_that_verify(leaves, data):
    frontier, stored = _tree(leaves)
    size = len(leaves)
    assert frontier.root() == merkle.root_from(size, stored) == _reference_root(leaves)
    index = data.draw(st.integers(0, size - 1))
    at_size = data.draw(st.integers(index + 1, size))
    proof = merkle.hashes_for(merkle.inclusion_ranges(index, at_size), stored)
    root = _reference_root(leaves[:at_size])
    merkle.verify_inclusion(index, at_size, merkle.leaf_hash(leaves[index]), proof, root)
    first = data.draw(st.integers(1, size))
    proof = merkle.hashes_for(merkle.consistency_ranges(first, size), stored)
    merkle.verify_consistency(first, size, proof, _reference_root(leaves[:first]), root_full := frontier.root())
    if first < size and proof:
        tampered = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(first, size, tampered, _reference_root(leaves[:first]), root_full)


def test_frontier_resumes_from_stored_edge():
    leaves = [bytes([i]) for i in range(37)]
    whole, stored = _tree(leaves)
    edge = [stored[node] for node in merkle.range_nodes(0, 20)]
    resumed = merkle.Frontier(20, edge)
    for leaf in leaves[20:]:
        for level, index, digest in resumed.append(merkle.leaf_hash(leaf)):
            assert stored[(level, index)] == digest
    assert resumed.root() == whole.root()


def test_proof_arguments_out_of_range():
    with pytest.raises(merkle.ProofError):
        merkle.inclusion_ranges(5, 5)
    with pytest.raises(merkle.ProofError):
        merkle.consistency_ranges(0, 5)
    with pytest.raises(merkle.ProofError):
        merkle.consistency_ranges(6, 5)
