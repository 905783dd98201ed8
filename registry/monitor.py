"""A log monitor: how a partner notices a rewritten or forked history.

It reads a running registry through its public API only. Each run checks the
newest checkpoint's signature, proves it consistent with the last one seen
(kept in a state file, with the log key pinned on first use), replays every
new leaf onto the tree's right edge to recompute the root, spot-checks an
inclusion proof, and checks that the registry still serves the checkpoint it
signed before. Any disagreement is an inconsistency and exits non-zero.

    python -m registry.monitor https://registry.example --state monitor.json
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .crypto import merkle, note
from .domain.timefmt import format_time, now_utc

PAGE = 1000
Fetch = Callable[[str], tuple[int, str]]


class Inconsistency(Exception):  # noqa: N818 - what it reports is an inconsistency, not a program error
    """The registry's log disagrees with itself or with what was seen before."""


class Unreachable(Exception):  # noqa: N818
    """The registry could not be read; nothing is concluded."""


@dataclass
class State:
    origin: str
    verifier_key: str
    tree_size: int = 0
    root_hash: str = base64.b64encode(merkle.EMPTY_ROOT).decode()
    frontier: list[str] = field(default_factory=list)
    checked_at: str | None = None

    @classmethod
    def load(cls, path: Path) -> State | None:
        if not path.exists():
            return None
        try:
            return cls(**json.loads(path.read_text()))
        except (ValueError, TypeError) as exc:
            raise Unreachable(f"state file {path} is unreadable: {exc}") from exc

    def save(self, path: Path) -> None:
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2))
        os.replace(temporary, path)


def http_fetcher(base_url: str, timeout: float = 30) -> Fetch:
    base = base_url.rstrip("/")

    def fetch(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(base + path, timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")
        except (urllib.error.URLError, OSError) as exc:
            raise Unreachable(f"cannot reach {base}: {exc}") from exc

    return fetch


def _get(fetch: Fetch, path: str) -> str:
    status, body = fetch(path)
    if status != 200:
        raise Unreachable(f"GET {path} answered {status}")
    return body


def _get_json(fetch: Fetch, path: str) -> Any:
    try:
        return json.loads(_get(fetch, path))
    except ValueError as exc:
        raise Inconsistency(f"GET {path} did not answer JSON") from exc


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def run(fetch: Fetch, state_path: Path, pinned_key: str | None = None) -> list[str]:
    """One monitoring pass; returns what was checked, raises on an inconsistency."""
    state = State.load(state_path)
    info = _get_json(fetch, "/api/v1/log")
    verifier_key = info["verifier_key"]
    expected_key = pinned_key or (state.verifier_key if state else None)
    if expected_key is not None and verifier_key != expected_key:
        raise Inconsistency(f"the log key changed: {verifier_key} is not the pinned {expected_key}")
    verifier = note.Verifier.from_vkey(verifier_key)
    try:
        checkpoint = note.open_checkpoint(_get(fetch, "/api/v1/log/checkpoint"), verifier)
    except note.NoteError as exc:
        raise Inconsistency(f"the newest checkpoint does not verify: {exc}") from exc
    if state is None:
        state = State(origin=checkpoint.origin, verifier_key=verifier_key)
    elif checkpoint.origin != state.origin:
        raise Inconsistency(f"origin {checkpoint.origin!r} is not {state.origin!r}")
    report = [f"checkpoint {checkpoint.origin} size {checkpoint.tree_size} verifies"]
    old_size, old_root = state.tree_size, _b64(state.root_hash)
    if checkpoint.tree_size < old_size:
        raise Inconsistency(f"the log shrank from {old_size} to {checkpoint.tree_size} entries")
    if checkpoint.tree_size == old_size and checkpoint.root_hash != old_root:
        raise Inconsistency(f"two different roots at size {old_size}: the log forked")
    if 0 < old_size < checkpoint.tree_size:
        proof = _get_json(fetch, f"/api/v1/log/proof/consistency?first={old_size}&second={checkpoint.tree_size}")
        try:
            merkle.verify_consistency(old_size, checkpoint.tree_size, [_b64(h) for h in proof["hashes"]],
                                      old_root, checkpoint.root_hash)
        except merkle.ProofError as exc:
            raise Inconsistency(f"size {checkpoint.tree_size} is not consistent with size {old_size}: {exc}") from exc
        report.append(f"consistent with the last seen size {old_size}")
    if old_size > 0:
        _check_old_checkpoint(fetch, verifier, old_size, old_root)
        report.append(f"the checkpoint signed at size {old_size} is still served unchanged")
    frontier = _replay(fetch, state, checkpoint)
    if checkpoint.tree_size > old_size:
        report.append(f"{checkpoint.tree_size - old_size} new entries replayed onto the tree: root matches")
        _spot_check(fetch, checkpoint, checkpoint.tree_size - 1)
        report.append(f"inclusion proof of entry {checkpoint.tree_size - 1} verifies")
    state.tree_size = checkpoint.tree_size
    state.root_hash = base64.b64encode(checkpoint.root_hash).decode()
    state.frontier = [base64.b64encode(h).decode() for h in frontier]
    state.checked_at = format_time(now_utc())
    state.save(state_path)
    return report


def _check_old_checkpoint(fetch: Fetch, verifier: note.Verifier, size: int, root: bytes) -> None:
    status, body = fetch(f"/api/v1/log/checkpoints?tree_size={size}")
    if status != 200:
        raise Inconsistency(f"the registry no longer serves the checkpoint it signed at size {size}")
    try:
        old = note.open_checkpoint(body, verifier)
    except note.NoteError as exc:
        raise Inconsistency(f"the checkpoint at size {size} no longer verifies: {exc}") from exc
    if old.root_hash != root:
        raise Inconsistency(f"the registry now shows another root at size {size}: two inconsistent checkpoints")


def _replay(fetch: Fetch, state: State, checkpoint: note.Checkpoint) -> list[bytes]:
    """Append every new leaf to the saved right edge; the root must come out as signed."""
    edge = [_b64(h) for h in state.frontier]
    tree = merkle.Frontier(state.tree_size, edge)
    while tree.size < checkpoint.tree_size:
        page = _get_json(fetch, f"/api/v1/log/entries?start={tree.size}&limit={PAGE}")["items"]
        if not page:
            raise Inconsistency(f"entries stop at {tree.size}, below the checkpoint's {checkpoint.tree_size}")
        for item in page:
            if item["index"] != tree.size:
                raise Inconsistency(f"entry {item['index']} where {tree.size} was expected: a gap")
            if tree.size >= checkpoint.tree_size:
                break
            digest = merkle.leaf_hash(item["leaf"].encode())
            if _b64(item["leaf_hash"]) != digest:
                raise Inconsistency(f"entry {item['index']}: leaf_hash is not the hash of its leaf")
            tree.append(digest)
    if tree.root() != checkpoint.root_hash:
        raise Inconsistency(f"the entries do not add up to the checkpoint's root at size {checkpoint.tree_size}")
    return tree.edge()


def _spot_check(fetch: Fetch, checkpoint: note.Checkpoint, index: int) -> None:
    proof = _get_json(fetch, f"/api/v1/log/proof/inclusion?index={index}&tree_size={checkpoint.tree_size}")
    try:
        merkle.verify_inclusion(index, checkpoint.tree_size, _b64(proof["leaf_hash"]),
                                [_b64(h) for h in proof["hashes"]], checkpoint.root_hash)
    except merkle.ProofError as exc:
        raise Inconsistency(f"inclusion proof of entry {index}: {exc}") from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m registry.monitor", description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the registry's base URL, e.g. https://registry.example")
    parser.add_argument("--state", required=True, help="file that keeps the last checkpoint seen")
    parser.add_argument("--log-key", help="the log's verifier key, pinned (default: trust on first use)")
    args = parser.parse_args(argv)
    return run_and_report(http_fetcher(args.url), Path(args.state), args.log_key, print)


def run_and_report(fetch: Fetch, state_path: Path, pinned_key: str | None, echo) -> int:
    try:
        for line in run(fetch, state_path, pinned_key):
            echo(line)
    except Inconsistency as exc:
        print(f"INCONSISTENT: {exc}", file=sys.stderr)
        return 1
    except Unreachable as exc:
        print(f"monitor could not check: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
