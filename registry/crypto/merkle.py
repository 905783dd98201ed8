"""Merkle tree math of RFC 9162 section 2.1, over hashes of complete subtrees.

The log stores one hash per complete, aligned subtree: level L, index i covers
leaves [i * 2**L, (i + 1) * 2**L). Every range the RFC's proofs need is a
left-aligned range whose hash folds from O(log n) such nodes, so roots and
proofs read O(log n) stored hashes instead of rehashing the tree. This module
only says which nodes are needed and how to combine them; the caller fetches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

Node = tuple[int, int]  # (level, index)


class ProofError(ValueError):
    """A proof does not verify, or its arguments are impossible."""


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def range_nodes(start: int, end: int) -> list[Node]:
    """The complete subtrees that make up leaves [start, end), left to right.

    ``start`` must be aligned to a power of two at least ``end - start`` (true of
    every range RFC 9162 asks for), so the pieces follow the binary digits of
    the range's size from the highest down.
    """
    nodes = []
    position = start
    for level in range((end - start).bit_length() - 1, -1, -1):
        if (end - start) >> level & 1:
            nodes.append((level, position >> level))
            position += 1 << level
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """Hash of a range from its complete subtrees' hashes, as MTH recurses."""
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes form PATH(index, D[0:size]), in proof order."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is not below tree size {size}")
    ranges = []
    offset, n, m = 0, size, index
    while n > 1:
        k = _largest_power_of_two_below(n)
        if m < k:
            ranges.append((offset + k, offset + n))
            n = k
        else:
            ranges.append((offset, offset + k))
            offset, n, m = offset + k, n - k, m - k
    ranges.reverse()
    return ranges


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes form PROOF(first, D[0:second]), in proof order."""
    if not 0 < first <= second:
        raise ProofError(f"no consistency proof from size {first} to size {second}")
    ranges = []
    offset, n, m, whole = 0, second, first, True
    while m != n:
        k = _largest_power_of_two_below(n)
        if m <= k:
            ranges.append((offset + k, offset + n))
            n = k
        else:
            ranges.append((offset, offset + k))
            offset, n, m, whole = offset + k, n - k, m - k, False
    if not whole:
        ranges.append((offset, offset + n))
    ranges.reverse()
    return ranges


def nodes_for(ranges: Iterable[tuple[int, int]]) -> set[Node]:
    needed: set[Node] = set()
    for start, end in ranges:
        needed.update(range_nodes(start, end))
    return needed


def hashes_for(ranges: Iterable[tuple[int, int]], stored: Mapping[Node, bytes]) -> list[bytes]:
    return [fold([stored[node] for node in range_nodes(start, end)]) for start, end in ranges]


def root_from(size: int, stored: Mapping[Node, bytes]) -> bytes:
    if size == 0:
        return EMPTY_ROOT
    return fold([stored[node] for node in range_nodes(0, size)])


class Frontier:
    """The right edge of a tree: what appending needs, and the nodes it completes.

    Holds the complete subtrees of ``range_nodes(0, size)``. Appending a leaf
    yields every node it completes, so a writer stores each exactly once.
    """

    def __init__(self, size: int, edge: Sequence[bytes]):
        self.size = size
        self._stack: list[tuple[int, bytes]] = [
            (level, digest) for (level, _), digest in zip(range_nodes(0, size), edge, strict=True)
        ]

    def append(self, digest: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf hash; returns the (level, index, hash) nodes it completes."""
        index = self.size
        completed = [(0, index, digest)]
        level = 0
        while self._stack and self._stack[-1][0] == level:
            _, left = self._stack.pop()
            digest = node_hash(left, digest)
            level += 1
            completed.append((level, index >> level, digest))
        self._stack.append((level, digest))
        self.size += 1
        return completed

    def edge(self) -> list[bytes]:
        """The hashes of ``range_nodes(0, size)``: enough to resume appending later."""
        return [digest for _, digest in self._stack]

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        return fold([digest for _, digest in self._stack])


def _check_hashes(proof: Sequence[bytes]) -> None:
    for item in proof:
        if len(item) != HASH_SIZE:
            raise ProofError(f"proof hash of {len(item)} bytes, not {HASH_SIZE}")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 2.1.3.2: the root that ``proof`` implies for the leaf hash."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is not below tree size {size}")
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"leaf hash of {len(leaf)} bytes, not {HASH_SIZE}")
    _check_hashes(proof)
    fn, sn, result = index, size - 1, leaf
    for item in proof:
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            result = node_hash(item, result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, item)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    return result


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError("inclusion proof does not lead to the root")


def verify_consistency(
    first: int, second: int, proof: Sequence[bytes], first_root: bytes, second_root: bytes
) -> None:
    """RFC 9162 2.1.4.2. A proof from size 0 is refused: it proves nothing."""
    if first == 0:
        raise ProofError("a consistency proof from an empty tree proves nothing")
    if first > second:
        raise ProofError(f"size {first} is larger than size {second}")
    _check_hashes(proof)
    if first == second:
        if proof:
            raise ProofError("proof between equal sizes must be empty")
        if first_root != second_root:
            raise ProofError("roots differ at the same size")
        return
    if not proof:
        raise ProofError("empty consistency proof between different sizes")
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first_hash = second_hash = path[0]
    for item in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            first_hash = node_hash(item, first_hash)
            second_hash = node_hash(item, second_hash)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            second_hash = node_hash(second_hash, item)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if first_hash != first_root:
        raise ProofError("consistency proof does not lead to the first root")
    if second_hash != second_root:
        raise ProofError("consistency proof does not lead to the second root")
