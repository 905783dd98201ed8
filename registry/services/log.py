"""The append-only transparency log: appends, checkpoints and proofs.

A writer first locks the single ``log_head`` row (an UPDATE, so PostgreSQL
takes a row lock and SQLite its write lock), then reads whatever state it
checks, appends, and signs a checkpoint for the new size, all in the caller's
transaction. Several app processes on one database therefore append one after
the other, and a failed publish leaves neither entries nor a checkpoint.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from ..crypto import merkle, note, tiles
from ..crypto.canonical import canonical_text
from ..domain.timefmt import format_time
from ..errors import InvalidInputError, NotFoundError, RegistryError, field_errors
from ..store.bulk import insert_rows
from ..store.models import Checkpoint, LogEntry, LogHead, LogNode
from ..store.nodes import node_key, stored
from ..store.reads import Prepared, Reader

# Nodes per query: well under SQLite's limit on bound parameters.
_CHUNK = 500


class LogCorruptedError(RegistryError):
    """Stored hashes no longer agree with the last signed checkpoint; nothing more is signed.

    A 503: the service cannot take writes until an operator restores the
    database, and says so on /readyz.
    """

    status = 503
    slug = "log-integrity"
    title = "Log integrity failure"


@dataclass(frozen=True)
class NewEntry:
    kind: str  # licence, party_key, agreement
    party: str | None
    subject: str
    version: int
    kid: str
    statement: str


def leaf_for(entry: NewEntry, logged_at: datetime) -> str:
    """The logged text: identifiers and digests only, never operator data."""
    return canonical_text(
        {
            "kind": entry.kind,
            "party": entry.party,
            "subject": entry.subject,
            "version": entry.version,
            "kid": entry.kid,
            "statement_sha256": hashlib.sha256(entry.statement.encode()).hexdigest(),
            "logged_at": format_time(logged_at),
        }
    )


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def lock_head(session: Session, now: datetime) -> int:
    """Take the append lock for this transaction; returns the tree size."""
    return session.execute(
        update(LogHead).where(LogHead.id == 1).values(updated_at=now).returning(LogHead.tree_size)
    ).scalar_one()


_TREE_SIZE = Prepared(select(LogHead.tree_size).where(LogHead.id == 1))

def tree_size(reader: Reader) -> int:
    return reader.one(_TREE_SIZE)[0]


class NodeCache(Protocol):
    """Something that keeps stored hashes between requests (``runtime.proof_nodes.UpperNodes``)."""

    def fetch(self, reader: Reader, keys: Collection[int], size: int) -> dict[int, bytes]:
        """The hashes of those of ``keys`` that are stored, in a log of ``size`` entries."""


def fetch_nodes(reader: Reader, nodes: Iterable[merkle.Node], kept: NodeCache | None = None,
                size: int = 0) -> dict[merkle.Node, bytes]:
    """Stored hashes of complete subtrees; they never change once written, so any
    reader will do, in a transaction or not. ``kept`` (with the log ``size``)
    serves and keeps the upper nodes: pass it only with a reader outside any
    transaction, which sees nothing uncommitted."""
    by_key = {node_key(node): node for node in set(nodes)}
    found = kept.fetch(reader, by_key.keys(), size) if kept is not None else stored(reader, by_key)
    missing = by_key.keys() - found.keys()
    if missing:
        raise LogCorruptedError(f"stored log hashes missing: {sorted(by_key[key] for key in missing)[:5]}")
    return {by_key[key]: found[key] for key in by_key}


def root_at(reader: Reader, size: int) -> bytes:
    return merkle.root_from(size, fetch_nodes(reader, merkle.range_nodes(0, size)))


def append(session: Session, size: int, entries: Sequence[NewEntry], now: datetime) -> list[int]:
    """Append entries after ``size`` (from ``lock_head``); returns their indices."""
    edge = merkle.range_nodes(0, size)
    stored = fetch_nodes(Reader.of(session), edge)
    frontier = merkle.Frontier(size, [stored[node] for node in edge])
    entry_rows, node_rows = [], []
    for entry in entries:
        index = frontier.size
        leaf = leaf_for(entry, now)
        for level, node_index, digest in frontier.append(merkle.leaf_hash(leaf.encode())):
            node_rows.append({"node_key": node_key((level, node_index)), "level": level, "idx": node_index,
                              "hash": digest})
        entry_rows.append(
            {
                "idx": index,
                "kind": entry.kind,
                "party_code": entry.party,
                "subject": entry.subject,
                "version": entry.version,
                "kid": entry.kid,
                "statement": entry.statement,
                "leaf": leaf,
                "logged_at": now,
            }
        )
    insert_rows(session, LogEntry, entry_rows)
    insert_rows(session, LogNode, node_rows)
    session.execute(update(LogHead).where(LogHead.id == 1).values(tree_size=frontier.size))
    return list(range(size, frontier.size))


def latest_checkpoint(session: Session) -> Checkpoint | None:
    return session.execute(select(Checkpoint).order_by(Checkpoint.tree_size.desc()).limit(1)).scalar_one_or_none()


def last_signed(session: Session, verifier: note.Verifier, origin: str) -> note.Checkpoint | None:
    """The tree size and root of the newest checkpoint, as its signed note says (not as any column does)."""
    previous = latest_checkpoint(session)
    if previous is None:
        return None
    try:
        return note.open_checkpoint(previous.note, verifier, origin)
    except note.NoteError as exc:
        raise LogCorruptedError(f"the newest stored checkpoint (size {previous.tree_size}) is not a note signed "
                                f"by the log key: {exc}") from exc


def prove_extends(reader: Reader, signed: note.Checkpoint, size: int) -> bytes:
    """The root at ``size`` from stored hashes, once proven consistent with the signed checkpoint ``signed``.

    The proof is built from stored hashes and checked against the signed
    root with RFC 9162's verification, as a partner would check it: stored
    hashes rewritten to fit a changed leaf (and a root column rewritten to
    match) fail here, so the registry never signs a tree inconsistent with
    one it signed before.
    """
    if size < signed.tree_size:
        raise LogCorruptedError(f"the log's {size} entries are fewer than the {signed.tree_size} last signed")
    root = root_at(reader, size)
    if signed.tree_size == 0:
        if signed.root_hash != merkle.EMPTY_ROOT:
            raise LogCorruptedError("the last signed checkpoint of the empty tree has a wrong root")
        return root
    ranges = merkle.consistency_ranges(signed.tree_size, size)
    proof = merkle.hashes_for(ranges, fetch_nodes(reader, merkle.nodes_for(ranges)))
    try:
        merkle.verify_consistency(signed.tree_size, size, proof, signed.root_hash, root)
    except merkle.ProofError as exc:
        raise LogCorruptedError(f"stored hashes are not consistent with the checkpoint signed at size "
                                f"{signed.tree_size}: {exc}") from exc
    return root


def sign_checkpoint(session: Session, size: int, signer: note.Signer, now: datetime) -> Checkpoint:
    """Sign the tree at ``size``, after proving it extends the last signed note.

    The check costs O(log n) reads and is what makes "never two inconsistent
    checkpoints" hold even if stored hashes and columns were tampered with:
    it trusts the signature on the last note, nothing else stored.
    """
    signed = last_signed(session, signer.verifier, signer.name)
    reader = Reader.of(session)
    root = prove_extends(reader, signed, size) if signed is not None else root_at(reader, size)
    if signed is not None and signed.tree_size == size:
        return session.get(Checkpoint, size) or latest_checkpoint(session)
    text = note.sign(note.Checkpoint(signer.name, size, root).text(), signer)
    checkpoint = Checkpoint(tree_size=size, root_hash=root, note=text, signed_at=now)
    session.add(checkpoint)
    return checkpoint


def integrity_problem(reader: Reader, session: Session, verifier: note.Verifier, origin: str) -> str | None:
    """Why the log cannot take writes (its stored hashes disagree with the last signed note), or None."""
    try:
        signed = last_signed(session, verifier, origin)
        if signed is not None:
            prove_extends(reader, signed, signed.tree_size)  # at equal sizes: the stored root is the signed one
    except LogCorruptedError as exc:
        return exc.detail
    return None


class Writer:
    """Appends within one locked transaction; see ``writing``."""

    def __init__(self, session: Session, size: int, now: datetime):
        self.session = session
        self.size = size
        self.now = now
        self.appended = 0

    def append(self, entries: Sequence[NewEntry]) -> list[int]:
        indices = append(self.session, self.size, entries, self.now)
        self.size += len(indices)
        self.appended += len(indices)
        return indices


@contextmanager
def writing(session: Session, signer: note.Signer, now: datetime) -> Iterator[Writer]:
    """One transaction that holds the append lock, appends, signs and commits.

    Read whatever you check inside the block, after the lock: then no other
    writer can change it before the commit. Any exception rolls everything back.
    """
    try:
        writer = Writer(session, lock_head(session, now), now)
        yield writer
        if writer.appended:
            sign_checkpoint(session, writer.size, signer, now)
        session.commit()
    except BaseException:
        session.rollback()
        raise


def checkpoint_at(session: Session, size: int) -> Checkpoint:
    checkpoint = session.get(Checkpoint, size)
    if checkpoint is None:
        raise NotFoundError(f"the registry signed no checkpoint at tree size {size}")
    return checkpoint


def _check_size(reader: Reader, size: int, name: str) -> int:
    """The log's current size, after checking ``size`` does not exceed it."""
    current = tree_size(reader)
    if size > current:
        raise InvalidInputError(f"{name} {size} is beyond the log (size {current})",
                           field_errors(name, f"must not exceed the log size {current}"))
    return current


def inclusion_proof(reader: Reader, index: int, size: int,
                    kept: NodeCache | None = None) -> tuple[bytes, list[bytes]]:
    """The leaf hash at ``index`` and its audit path in the tree of ``size``."""
    if index >= size:
        raise InvalidInputError(f"index {index} is not below tree_size {size}",
                           field_errors("index", "must be below tree_size"))
    current = _check_size(reader, size, "tree_size")
    ranges = merkle.inclusion_ranges(index, size)
    stored = fetch_nodes(reader, merkle.nodes_for(ranges) | {(0, index)}, kept, current)
    return stored[(0, index)], merkle.hashes_for(ranges, stored)


def inclusion_proofs(reader: Reader, indices: Iterable[int], size: int) -> dict[int, list[bytes]]:
    """Several audit paths against one tree size with a single read of stored hashes."""
    ranges = {index: merkle.inclusion_ranges(index, size) for index in set(indices)}
    needed: set[merkle.Node] = set()
    for index_ranges in ranges.values():
        needed |= merkle.nodes_for(index_ranges)
    stored = fetch_nodes(reader, needed)
    return {index: merkle.hashes_for(index_ranges, stored) for index, index_ranges in ranges.items()}


def consistency_proof(reader: Reader, first: int, second: int, kept: NodeCache | None = None) -> list[bytes]:
    if first > second:
        raise InvalidInputError(f"first {first} is larger than second {second}",
                           field_errors("first", "must not exceed second"))
    current = _check_size(reader, second, "second")
    ranges = merkle.consistency_ranges(first, second)
    return merkle.hashes_for(ranges, fetch_nodes(reader, merkle.nodes_for(ranges), kept, current))


@functools.lru_cache(maxsize=64)
def _leaves_statement(count: int) -> Prepared:
    """The leaves of ``count`` entries, built once per count."""
    return Prepared(select(LogEntry.idx, LogEntry.leaf).where(LogEntry.idx.in_([bindparam(f"i{n}")
                                                                                for n in range(count)])))


def leaves(reader: Reader, indices: Iterable[int]) -> dict[int, str]:
    """The logged leaf of each entry, by index."""
    indices = sorted(set(indices))
    found: dict[int, str] = {}
    for start in range(0, len(indices), _CHUNK):
        chunk = indices[start:start + _CHUNK]
        found.update(reader.all(_leaves_statement(len(chunk)), **{f"i{n}": index for n, index in enumerate(chunk)}))
    return found


def entries(session: Session, start: int, limit: int) -> list[LogEntry]:
    return list(
        session.execute(
            select(LogEntry).where(LogEntry.idx >= start).order_by(LogEntry.idx).limit(limit)
        ).scalars()
    )


# --- C2SP tlog-tiles ----------------------------------------------------------------------------
# Tiles show the log as of its newest signed checkpoint and never beyond:
# a hash or an entry that no checkpoint commits to yet is not public.

_SIGNED_SIZE = Prepared(select(Checkpoint.tree_size).order_by(Checkpoint.tree_size.desc()).limit(1))
# A tile's nodes are consecutive at one level, so their keys lie in one range
# (node_key), shared only with lower levels' nodes of the same leaves.
_TILE_NODES = Prepared(select(LogNode.idx, LogNode.hash)
                       .where(LogNode.node_key >= bindparam("low"), LogNode.node_key <= bindparam("high"),
                              LogNode.level == bindparam("level"))
                       .order_by(LogNode.node_key))
_LEAVES = Prepared(select(LogEntry.idx, LogEntry.leaf)
                   .where(LogEntry.idx >= bindparam("start"), LogEntry.idx < bindparam("end"))
                   .order_by(LogEntry.idx))


def signed_size(reader: Reader) -> int:
    """The tree size of the newest signed checkpoint (0 before the first)."""
    rows = reader.all(_SIGNED_SIZE)
    return rows[0][0] if rows else 0


def _within_signed(reader: Reader, tile: tiles.Tile, path: str) -> None:
    if tile.width > tiles.width_at(tile.level, tile.index, signed_size(reader)):
        # Not yet, perhaps: a cache must not keep this answer.
        raise NotFoundError(f"{path} is beyond the log's newest signed checkpoint",
                            headers={"Cache-Control": "no-store"})


def tile_data(reader: Reader, tile: tiles.Tile) -> bytes:
    """A hash tile's bytes: its stored hashes, 32 bytes each, in order."""
    _within_signed(reader, tile, tile.path())
    nodes = tile.nodes()
    rows = reader.all(_TILE_NODES, low=node_key(nodes[0]), high=node_key(nodes[-1]),
                               level=nodes[0][0])
    if [index for index, _ in rows] != [index for _, index in nodes]:
        raise LogCorruptedError(f"stored log hashes missing from {tile.path()}")
    return b"".join(bytes(digest) for _, digest in rows)


def bundle_data(reader: Reader, tile: tiles.Tile) -> bytes:
    """An entry bundle's bytes: each logged leaf, exactly as hashed, after its length."""
    _within_signed(reader, tile, tile.bundle_path())
    rows = reader.all(_LEAVES, start=tile.first, end=tile.first + tile.width)
    if [index for index, _ in rows] != list(range(tile.first, tile.first + tile.width)):
        raise LogCorruptedError(f"logged entries missing from {tile.bundle_path()}")
    return tiles.encode_bundle([leaf.encode() for _, leaf in rows])
