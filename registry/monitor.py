"""A log monitor: how a partner notices a rewritten or forked history.

It reads a running registry through its public API only. Each run checks the
newest checkpoint's signature, proves it consistent with the last one seen
(kept in a state file, with the log key pinned on first use), replays every
new leaf onto the tree's right edge to recompute the root, spot-checks an
inclusion proof, and checks that the registry still serves the checkpoint it
signed before. Any disagreement is an inconsistency and exits non-zero.

    python -m registry.monitor https://registry.example --state monitor.json

With ``--tiles`` it reads nothing but the checkpoint and the C2SP tlog-tiles
(``<prefix>/checkpoint``, ``<prefix>/tile/...``), as it would from a mirror
or a CDN: it checks every tile it reads against the signed root, recomputes
the root of the last size seen from those tiles (the tiles' consistency
proof), and replays the new entries from the entry bundles.

    python -m registry.monitor https://registry.example/api/v1/log --tiles \
        --log-key 'aeo-registry.example/log+1a2b3c4d+AQ...' --state monitor.json

With a witness policy (``--witness VKEY``, repeatable, and ``--quorum K``) it
checks the newest checkpoint that the registry says K witnesses cosigned
(``checkpoint?cosigned=K``), and moves on only if K of the policy's own
witnesses did: a history that no independent witness saw is not taken as
seen, and the run exits 3 naming who signed.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .crypto import merkle, note, tiles
from .domain.timefmt import format_time, now_utc
from .offline import OfflineError, WitnessPolicy, add_policy_arguments

PAGE = 1000
Fetch = Callable[[str], tuple[int, str]]
BytesFetch = Callable[[str], tuple[int, bytes]]
Body = TypeVar("Body", str, bytes)


class Inconsistency(Exception):  # noqa: N818 - what it reports is an inconsistency, not a program error
    """The registry's log disagrees with itself or with what was seen before."""


class Unreachable(Exception):  # noqa: N818
    """The registry could not be read; nothing is concluded."""


class Unwitnessed(Exception):  # noqa: N818
    """The checkpoint lacks the policy's quorum of cosignatures; nothing is taken as seen."""


def _checkpoint(fetch: Callable[[str], tuple[int, Body]], path: str, policy: WitnessPolicy | None) -> Body:
    """The newest checkpoint; with a policy, the newest the registry says its quorum of witnesses cosigned."""
    if policy is None:
        return _get(fetch, path)
    status, body = fetch(f"{path}?cosigned={policy.quorum}")
    if status == 409:  # none has that many cosignatures yet
        raise Unwitnessed(f"the registry has no checkpoint cosigned by {policy.quorum} witnesses yet")
    if status != 200:
        raise Unreachable(f"GET {path}?cosigned={policy.quorum} answered {status}")
    return body


def _witnessed(text: str, policy: WitnessPolicy | None, report: list[str]) -> None:
    if policy is None:
        return
    try:
        names = policy.check(text, "the checkpoint")
    except OfflineError as exc:
        raise Unwitnessed(str(exc)) from exc
    report.append(f"cosigned by {len(names)} trusted witnesses: {', '.join(names)}")


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


def http_bytes_fetcher(base_url: str, timeout: float = 30) -> BytesFetch:
    base = base_url.rstrip("/")

    def fetch(path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(base + path, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            raise Unreachable(f"cannot reach {base}: {exc}") from exc

    return fetch


def http_fetcher(base_url: str, timeout: float = 30) -> Fetch:
    fetch_bytes = http_bytes_fetcher(base_url, timeout)

    def fetch(path: str) -> tuple[int, str]:
        status, body = fetch_bytes(path)
        return status, body.decode(errors="strict" if status == 200 else "replace")

    return fetch


def _get(fetch: Callable[[str], tuple[int, Body]], path: str) -> Body:
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


def run(fetch: Fetch, state_path: Path, pinned_key: str | None = None,
        policy: WitnessPolicy | None = None) -> list[str]:
    """One monitoring pass; returns what was checked, raises on an inconsistency."""
    state = State.load(state_path)
    verifier_key = _get_json(fetch, "/api/v1/log")["verifier_key"]
    expected_key = pinned_key or (state.verifier_key if state else None)
    if expected_key is not None and verifier_key != expected_key:
        raise Inconsistency(f"the log key changed: {verifier_key} is not the pinned {expected_key}")
    text = _checkpoint(fetch, "/api/v1/log/checkpoint", policy)
    state, checkpoint, report = _newest(state, verifier_key, text)
    _witnessed(text, policy, report)
    verifier = note.Verifier.from_vkey(verifier_key)
    old_size, old_root = state.tree_size, _b64(state.root_hash)
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
    frontier = _replay(state, checkpoint, _entries(fetch, old_size))
    if checkpoint.tree_size > old_size:
        report.append(f"{checkpoint.tree_size - old_size} new entries replayed onto the tree: root matches")
        _spot_check(fetch, checkpoint, checkpoint.tree_size - 1)
        report.append(f"inclusion proof of entry {checkpoint.tree_size - 1} verifies")
    _save(state, checkpoint, frontier, state_path)
    return report


def run_tiles(fetch: BytesFetch, state_path: Path, pinned_key: str | None = None,
              policy: WitnessPolicy | None = None) -> list[str]:
    """One pass through the checkpoint and the tiles alone; ``fetch`` takes paths below the tiles' prefix."""
    state = State.load(state_path)
    if state is not None and pinned_key is not None and pinned_key != state.verifier_key:
        raise Inconsistency(f"the pinned key {pinned_key} is not {state.verifier_key}, seen before")
    verifier_key = pinned_key or (state.verifier_key if state else None)
    if verifier_key is None:
        # Tiles carry no key to trust on first use: a mirror could serve any.
        raise Unreachable("reading tiles needs the log's verifier key (--log-key) on the first run")
    text = _checkpoint(fetch, "/checkpoint", policy).decode(errors="replace")
    state, checkpoint, report = _newest(state, verifier_key, text)
    _witnessed(text, policy, report)
    old_size = state.tree_size
    try:
        tree = tiles.TiledTree(checkpoint.tree_size, checkpoint.root_hash,
                               lambda tile: _get(fetch, f"/{tile.path()}"))
        report.append(f"the tiles of size {checkpoint.tree_size} add up to its root")
        if tree.root_at(old_size) != _b64(state.root_hash):
            raise Inconsistency(f"the tiles show another root at size {old_size}, seen before: the log forked")
        if old_size:
            report.append(f"consistent with the last seen size {old_size}")
        frontier = _replay(state, checkpoint, _bundles(fetch, tree, old_size))
    except tiles.TileError as exc:
        raise Inconsistency(f"tiles of size {checkpoint.tree_size}: {exc}") from exc
    if checkpoint.tree_size > old_size:
        report.append(f"{checkpoint.tree_size - old_size} new entries from the bundles match the tiles and the root")
    _save(state, checkpoint, frontier, state_path)
    return report


def _newest(state: State | None, verifier_key: str, text: str) -> tuple[State, note.Checkpoint, list[str]]:
    """The newest checkpoint, verified, after checking it neither shrinks nor forks what was seen."""
    try:
        checkpoint = note.open_checkpoint(text, note.Verifier.from_vkey(verifier_key))
    except note.NoteError as exc:
        raise Inconsistency(f"the newest checkpoint does not verify: {exc}") from exc
    if state is None:
        state = State(origin=checkpoint.origin, verifier_key=verifier_key)
    elif checkpoint.origin != state.origin:
        raise Inconsistency(f"origin {checkpoint.origin!r} is not {state.origin!r}")
    old_size, old_root = state.tree_size, _b64(state.root_hash)
    if checkpoint.tree_size < old_size:
        raise Inconsistency(f"the log shrank from {old_size} to {checkpoint.tree_size} entries")
    if checkpoint.tree_size == old_size and checkpoint.root_hash != old_root:
        raise Inconsistency(f"two different roots at size {old_size}: the log forked")
    return state, checkpoint, [f"checkpoint {checkpoint.origin} size {checkpoint.tree_size} verifies"]


def _save(state: State, checkpoint: note.Checkpoint, frontier: list[bytes], path: Path) -> None:
    state.tree_size = checkpoint.tree_size
    state.root_hash = base64.b64encode(checkpoint.root_hash).decode()
    state.frontier = [base64.b64encode(h).decode() for h in frontier]
    state.checked_at = format_time(now_utc())
    state.save(path)


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


def _replay(state: State, checkpoint: note.Checkpoint, leaves: Iterator[bytes]) -> list[bytes]:
    """Append every new leaf to the saved right edge; the root must come out as signed."""
    tree = merkle.Frontier(state.tree_size, [_b64(h) for h in state.frontier])
    for leaf in itertools.islice(leaves, checkpoint.tree_size - tree.size):
        tree.append(merkle.leaf_hash(leaf))
    if tree.size < checkpoint.tree_size:
        raise Inconsistency(f"entries stop at {tree.size}, below the checkpoint's {checkpoint.tree_size}")
    if tree.root() != checkpoint.root_hash:
        raise Inconsistency(f"the entries do not add up to the checkpoint's root at size {checkpoint.tree_size}")
    return tree.edge()


def _entries(fetch: Fetch, start: int) -> Iterator[bytes]:
    """The logged leaves from ``start`` on, page by page, until the log has no more."""
    index = start
    while page := _get_json(fetch, f"/api/v1/log/entries?start={index}&limit={PAGE}")["items"]:
        for item in page:
            if item["index"] != index:
                raise Inconsistency(f"entry {item['index']} where {index} was expected: a gap")
            leaf = item["leaf"].encode()
            if _b64(item["leaf_hash"]) != merkle.leaf_hash(leaf):
                raise Inconsistency(f"entry {index}: leaf_hash is not the hash of its leaf")
            yield leaf
            index += 1


def _bundles(fetch: BytesFetch, tree: tiles.TiledTree, start: int) -> Iterator[bytes]:
    """The leaves from ``start`` to the tree's size, from entry bundles, each checked against its tile hash."""
    index = start
    while index < tree.size:
        bundle = tiles.Tile(0, index // tiles.TILE_WIDTH, tiles.width_at(0, index // tiles.TILE_WIDTH, tree.size))
        entries = tiles.decode_bundle(_get(fetch, f"/{bundle.bundle_path()}"), bundle.width)
        for leaf in entries[index - bundle.first:]:
            if merkle.leaf_hash(leaf) != tree.node((0, index)):
                raise Inconsistency(f"entry {index} of {bundle.bundle_path()} is not the one its tile hashes")
            yield leaf
            index += 1


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
    parser.add_argument("--tiles", action="store_true",
                        help="read only the checkpoint and the C2SP tiles; URL is their prefix, e.g."
                             " https://registry.example/api/v1/log (needs --log-key on the first run)")
    add_policy_arguments(parser)
    args = parser.parse_args(argv)
    try:
        policy = WitnessPolicy.from_vkeys(args.witness, args.quorum)
    except OfflineError as exc:
        parser.error(str(exc))
    return run_and_report(fetcher(args.url, args.tiles), Path(args.state), args.log_key, print, tiles=args.tiles,
                          policy=policy)


def fetcher(url: str, tiles: bool) -> Fetch | BytesFetch:
    """What reads ``url``: bytes for tiles, text for the JSON API."""
    return http_bytes_fetcher(url) if tiles else http_fetcher(url)


def run_and_report(fetch: Fetch | BytesFetch, state_path: Path, pinned_key: str | None, echo,
                   tiles: bool = False, policy: WitnessPolicy | None = None) -> int:
    """Exit 0 when all holds, 1 on an inconsistency, 2 when the registry could not be read, 3 when the
    newest checkpoint lacks the witness policy's quorum."""
    try:
        for line in (run_tiles if tiles else run)(fetch, state_path, pinned_key, policy):
            echo(line)
    except Inconsistency as exc:
        print(f"INCONSISTENT: {exc}", file=sys.stderr)
        return 1
    except Unreachable as exc:
        print(f"monitor could not check: {exc}", file=sys.stderr)
        return 2
    except Unwitnessed as exc:
        print(f"NOT WITNESSED: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
