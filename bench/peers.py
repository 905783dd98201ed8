"""Peers measured in the same run (bench/README.md): Ed25519 signing and pymerkle's SqliteTree."""

from __future__ import annotations

import os
import random
import statistics
import time
import timeit
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def ed25519_sign() -> dict:
    """``cryptography``'s Ed25519 sign of a 300-byte message: the ceiling for one-at-a-time signing."""
    key = Ed25519PrivateKey.generate()
    message = os.urandom(300)
    number = 5000
    best = min(timeit.repeat(lambda: key.sign(message), number=number, repeat=5)) / number
    return {"sign_us": round(best * 1e6, 2), "signs_per_second": round(1 / best)}


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


def pymerkle_tree(leaves: Iterable[bytes], size: int, folder: Path, rng: random.Random) -> dict:
    """Append the same leaves to pymerkle's SqliteTree (default settings) and time it at the full size.

    pymerkle's indices are 1-based and its inclusion path starts with the leaf
    hash; roots are compared, consistency proof bytes are not (not RFC 9162 form).
    """
    from pymerkle import SqliteTree

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pymerkle.sqlite3"
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    tree = SqliteTree(str(path))
    try:
        start = time.perf_counter()
        tree.append_entries(leaves)
        append_seconds = time.perf_counter() - start
        if tree.get_size() != size:
            raise RuntimeError(f"pymerkle holds {tree.get_size()} leaves, not {size}")
        tree.cache_clear()
        start = time.perf_counter()
        root = tree.get_root(size)
        root_ms = _ms(start)
        inclusion, consistency = [], []
        for _ in range(3):
            index = rng.randrange(size)
            tree.cache_clear()
            start = time.perf_counter()
            tree.prove_inclusion(index + 1, size)
            inclusion.append(_ms(start))
            first = rng.randrange(1, size) if size > 1 else 1
            tree.cache_clear()
            start = time.perf_counter()
            tree.prove_consistency(first, size)
            consistency.append(_ms(start))
        one_by_one = _one_by_one(folder)
    finally:
        tree.close()
        path.unlink(missing_ok=True)
    return {
        "leaves": size,
        "bulk_append_leaves_per_second": round(size / append_seconds),
        "one_by_one_append_leaves_per_second": one_by_one,
        "cold_root_ms": root_ms,
        "cold_inclusion_proof_ms": statistics.median(inclusion),
        "cold_consistency_proof_ms": statistics.median(consistency),
        "root_hex": root.hex(),
    }


def _one_by_one(folder: Path, count: int = 2000) -> int:
    from pymerkle import SqliteTree

    path = folder / "pymerkle-single.sqlite3"
    path.unlink(missing_ok=True)
    tree = SqliteTree(str(path))
    try:
        start = time.perf_counter()
        for i in range(count):
            tree.append_entry(f"leaf {i}".encode())
        return round(count / (time.perf_counter() - start))
    finally:
        tree.close()
        path.unlink(missing_ok=True)
