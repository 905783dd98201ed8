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
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from ..crypto import merkle, note, tiles
from ..crypto.canonical import canonical_text
from ..db import Prepared, Reader
from ..domain.timefmt import format_time
from ..errors import InvalidInputError, NotFoundError, RegistryError, field_errors
from ..models import Checkpoint, LogEntry, LogHead, LogNode

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

Source = Session | Reader  # a request's session, or the hot path's reader (see db.Reader)


def _reader(source: Source) -> Reader:
    return source if isinstance(source, Reader) else Reader.of(source)


def tree_size(source: Source) -> int:
    return _reader(source).one(_TREE_SIZE)[0]


@functools.lru_cache(maxsize=64)
def _nodes_statement(count: int) -> Prepared:
    """Stored hashes of ``count`` node keys, built once per count."""
    return Prepared(select(LogNode.node_key, LogNode.hash)
                    .where(LogNode.node_key.in_([bindparam(f"k{i}") for i in range(count)])))


def _stored(reader: Reader, keys: Iterable[int]) -> dict[int, bytes]:
    """The stored hashes of those of ``keys`` that are stored, by key."""
    keys = sorted(keys)
    found: dict[int, bytes] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start:start + _CHUNK]
        rows = reader.all(_nodes_statement(len(chunk)), **{f"k{i}": key for i, key in enumerate(chunk)})
        found.update((key, bytes(digest)) for key, digest in rows)
    return found


def fetch_nodes(source: Source, nodes: Iterable[merkle.Node], kept: UpperNodes | None = None,
                size: int = 0) -> dict[merkle.Node, bytes]:
    """Stored hashes of complete subtrees; they never change once written, so any
    reader will do, in a transaction or not. ``kept`` (with the log ``size``)
    serves and keeps the upper nodes: pass it only with a reader outside any
    transaction, which sees nothing uncommitted."""
    by_key = {merkle.node_key(node): node for node in set(nodes)}
    reader = _reader(source)
    found = kept.fetch(reader, by_key.keys(), size) if kept is not None else _stored(reader, by_key)
    missing = by_key.keys() - found.keys()
    if missing:
        raise LogCorruptedError(f"stored log hashes missing: {sorted(by_key[key] for key in missing)[:5]}")
    return {by_key[key]: found[key] for key in by_key}


_UPPER_NODES = Prepared(select(LogNode.node_key, LogNode.hash).where(LogNode.node_key >= bindparam("low")))


class UpperNodes:
    """A process's copy of the log's upper nodes, which every proof shares.

    A proof at a million leaves needs some twenty stored hashes from four
    bands of levels (``merkle.node_key``). Those of the upper bands are few
    and shared by many proofs, yet on a host that reclaims idle page cache,
    every proof read their pages from disk again (5.3 ms a proof on
    PostgreSQL in bench run 2026-11-29-1000000-1457). A committed node never
    changes, so a process may keep them: every node from band ``band`` up,
    read with one range scan on first use and topped up as the log grows.
    The lowest band kept rises with the log so that at most ``limit`` hashes
    (a few MB) are kept: band 1 (levels 6 and up) to 2,097,152 leaves.
    """

    LIMIT = 1 << 16

    def __init__(self, limit: int = LIMIT):
        self.limit = limit
        self.band = 0  # nothing read yet
        self._hashes: dict[int, bytes] = {}
        self._loading = threading.Lock()

    def band_for(self, size: int) -> int:
        band = 1
        # A tree of n leaves has fewer than 2n / 2**level nodes from ``level`` up.
        while (2 * size) >> (band * merkle.BAND_LEVELS) > self.limit:
            band += 1
        return band

    def fetch(self, reader: Reader, keys: Collection[int], size: int) -> dict[int, bytes]:
        band = self.band_for(size)
        if band > self.band:  # the log never shrinks, so neither does the band
            self._load(reader, band)
        hashes = self._hashes
        found = {key: hashes[key] for key in keys if key in hashes}
        missing = [key for key in keys if key not in found]
        if missing:
            stored = _stored(reader, missing)
            low = merkle.band_start(self.band)
            hashes.update((key, digest) for key, digest in stored.items() if key >= low)
            found.update(stored)
        return found

    def _load(self, reader: Reader, band: int) -> None:
        with self._loading:
            if band <= self.band:
                return  # another thread did it
            rows = reader.all(_UPPER_NODES, low=merkle.band_start(band))
            self._hashes = {key: bytes(digest) for key, digest in rows}
            self.band = band


def root_at(source: Source, size: int) -> bytes:
    return merkle.root_from(size, fetch_nodes(source, merkle.range_nodes(0, size)))


# From this many rows on, PostgreSQL gets COPY rather than INSERT.
_COPY_FROM = 200


def insert_rows(session: Session, model, rows: Sequence[dict]) -> None:
    """Many rows at once, in the session's transaction; each row holds every column's value.

    The ORM's bulk INSERT path (``session.execute(insert(Model), rows)``)
    spent more time collecting its per-row state than the database spent
    writing, and Core's still a fifth of a bulk publish building and
    processing parameters row by row. So the rows go to the driver as
    tuples, through the columns' own bind processing: on PostgreSQL by COPY,
    which psycopg feeds in C, elsewhere by the driver's ``executemany`` of
    the table's compiled INSERT. Publishing 10,000 licences writes some
    60,000 rows. Constraints hold for COPY exactly as for INSERT.
    """
    if not rows:
        return
    connection = session.connection()
    table, dialect = model.__table__, connection.dialect
    names = list(rows[0])
    driver = connection.connection.driver_connection
    if dialect.name == "postgresql" and len(rows) < _COPY_FROM:
        connection.execute(insert(table), rows)
        return
    values = _driver_values(connection, table, names, rows)
    if dialect.name == "postgresql":
        columns = ", ".join(dialect.identifier_preparer.quote(name) for name in names)
        with driver.cursor() as cursor, cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
            for row in values:
                copy.write_row(row)
        return
    compiled = insert(table).compile(dialect=dialect, column_keys=names)
    if compiled.positional:
        order = [names.index(name) for name in compiled.positiontup]
        arguments = ([row[i] for i in order] for row in values)
    else:
        arguments = (dict(zip(names, row, strict=True)) for row in values)
    cursor = driver.cursor()
    try:
        cursor.executemany(compiled.string, arguments)
    finally:
        cursor.close()


def _driver_values(connection, table, names: Sequence[str], rows: Sequence[dict]) -> Iterator[list]:
    """Each row's values in ``names`` order, as the driver takes them (UTCDateTime's conversion to naive UTC)."""
    processors = [table.c[name].type._cached_bind_processor(connection.dialect) for name in names]
    if not any(processors):
        return ([row[name] for name in names] for row in rows)
    return ([process(row[name]) if process else row[name] for name, process in zip(names, processors, strict=True)]
            for row in rows)


def append(session: Session, size: int, entries: Sequence[NewEntry], now: datetime) -> list[int]:
    """Append entries after ``size`` (from ``lock_head``); returns their indices."""
    edge = merkle.range_nodes(0, size)
    stored = fetch_nodes(session, edge)
    frontier = merkle.Frontier(size, [stored[node] for node in edge])
    entry_rows, node_rows = [], []
    for entry in entries:
        index = frontier.size
        leaf = leaf_for(entry, now)
        for level, node_index, digest in frontier.append(merkle.leaf_hash(leaf.encode())):
            node_rows.append({"node_key": merkle.node_key((level, node_index)), "level": level, "idx": node_index,
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


def prove_extends(source: Source, signed: note.Checkpoint, size: int) -> bytes:
    """The root at ``size`` from stored hashes, once proven consistent with the signed checkpoint ``signed``.

    The proof is built from stored hashes and checked against the signed
    root with RFC 9162's verification, as a partner would check it: stored
    hashes rewritten to fit a changed leaf (and a root column rewritten to
    match) fail here, so the registry never signs a tree inconsistent with
    one it signed before.
    """
    if size < signed.tree_size:
        raise LogCorruptedError(f"the log's {size} entries are fewer than the {signed.tree_size} last signed")
    root = root_at(source, size)
    if signed.tree_size == 0:
        if signed.root_hash != merkle.EMPTY_ROOT:
            raise LogCorruptedError("the last signed checkpoint of the empty tree has a wrong root")
        return root
    ranges = merkle.consistency_ranges(signed.tree_size, size)
    proof = merkle.hashes_for(ranges, fetch_nodes(source, merkle.nodes_for(ranges)))
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
    root = prove_extends(session, signed, size) if signed is not None else root_at(session, size)
    if signed is not None and signed.tree_size == size:
        return session.get(Checkpoint, size) or latest_checkpoint(session)
    text = note.sign(note.Checkpoint(signer.name, size, root).text(), signer)
    checkpoint = Checkpoint(tree_size=size, root_hash=root, note=text, signed_at=now)
    session.add(checkpoint)
    return checkpoint


def integrity_problem(source: Source, session: Session, verifier: note.Verifier, origin: str) -> str | None:
    """Why the log cannot take writes (its stored hashes disagree with the last signed note), or None."""
    try:
        signed = last_signed(session, verifier, origin)
        if signed is not None:
            prove_extends(source, signed, signed.tree_size)  # at equal sizes: the stored root is the signed one
    except LogCorruptedError as exc:
        return exc.detail
    return None


class _Signals:
    """How many checkpoints this process has committed, for threads that wait for the next one.

    The witness submitter (services/witnesses.py) waits here, so that a new
    checkpoint reaches the witnesses at once without the publishing request
    doing anything but count: submissions never run in a publishing
    transaction or request. Other processes' checkpoints are found by polling.
    """

    def __init__(self) -> None:
        self._count = 0
        self._changed = threading.Condition()

    def signed(self) -> None:
        with self._changed:
            self._count += 1
            self._changed.notify_all()

    @property
    def count(self) -> int:
        return self._count

    def wait_after(self, seen: int, timeout: float, stop: threading.Event | None = None) -> int:
        """The count once it differs from ``seen``, or after ``timeout`` seconds (or ``stop.set()``)."""
        with self._changed:
            self._changed.wait_for(lambda: self._count != seen or (stop is not None and stop.is_set()), timeout)
            return self._count

    def wake(self) -> None:
        """Wake every waiter without a new checkpoint (to stop it, or to make it look again)."""
        with self._changed:
            self._changed.notify_all()


SIGNED = _Signals()


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
    if writer.appended:
        SIGNED.signed()


def checkpoint_at(session: Session, size: int) -> Checkpoint:
    checkpoint = session.get(Checkpoint, size)
    if checkpoint is None:
        raise NotFoundError(f"the registry signed no checkpoint at tree size {size}")
    return checkpoint


def _check_size(source: Source, size: int, name: str) -> int:
    """The log's current size, after checking ``size`` does not exceed it."""
    current = tree_size(source)
    if size > current:
        raise InvalidInputError(f"{name} {size} is beyond the log (size {current})",
                           field_errors(name, f"must not exceed the log size {current}"))
    return current


def inclusion_proof(source: Source, index: int, size: int,
                    kept: UpperNodes | None = None) -> tuple[bytes, list[bytes]]:
    """The leaf hash at ``index`` and its audit path in the tree of ``size``."""
    if index >= size:
        raise InvalidInputError(f"index {index} is not below tree_size {size}",
                           field_errors("index", "must be below tree_size"))
    current = _check_size(source, size, "tree_size")
    ranges = merkle.inclusion_ranges(index, size)
    stored = fetch_nodes(source, merkle.nodes_for(ranges) | {(0, index)}, kept, current)
    return stored[(0, index)], merkle.hashes_for(ranges, stored)


def inclusion_proofs(source: Source, indices: Iterable[int], size: int) -> dict[int, list[bytes]]:
    """Several audit paths against one tree size with a single read of stored hashes."""
    ranges = {index: merkle.inclusion_ranges(index, size) for index in set(indices)}
    needed: set[merkle.Node] = set()
    for index_ranges in ranges.values():
        needed |= merkle.nodes_for(index_ranges)
    stored = fetch_nodes(source, needed)
    return {index: merkle.hashes_for(index_ranges, stored) for index, index_ranges in ranges.items()}


def consistency_proof(source: Source, first: int, second: int, kept: UpperNodes | None = None) -> list[bytes]:
    if first > second:
        raise InvalidInputError(f"first {first} is larger than second {second}",
                           field_errors("first", "must not exceed second"))
    current = _check_size(source, second, "second")
    ranges = merkle.consistency_ranges(first, second)
    return merkle.hashes_for(ranges, fetch_nodes(source, merkle.nodes_for(ranges), kept, current))


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
# (merkle.node_key), shared only with lower levels' nodes of the same leaves.
_TILE_NODES = Prepared(select(LogNode.idx, LogNode.hash)
                       .where(LogNode.node_key >= bindparam("low"), LogNode.node_key <= bindparam("high"),
                              LogNode.level == bindparam("level"))
                       .order_by(LogNode.node_key))
_LEAVES = Prepared(select(LogEntry.idx, LogEntry.leaf)
                   .where(LogEntry.idx >= bindparam("start"), LogEntry.idx < bindparam("end"))
                   .order_by(LogEntry.idx))


def signed_size(source: Source) -> int:
    """The tree size of the newest signed checkpoint (0 before the first)."""
    rows = _reader(source).all(_SIGNED_SIZE)
    return rows[0][0] if rows else 0


def _within_signed(source: Source, tile: tiles.Tile, path: str) -> None:
    if tile.width > tiles.width_at(tile.level, tile.index, signed_size(source)):
        # Not yet, perhaps: a cache must not keep this answer.
        raise NotFoundError(f"{path} is beyond the log's newest signed checkpoint",
                            headers={"Cache-Control": "no-store"})


def tile_data(source: Source, tile: tiles.Tile) -> bytes:
    """A hash tile's bytes: its stored hashes, 32 bytes each, in order."""
    _within_signed(source, tile, tile.path())
    nodes = tile.nodes()
    rows = _reader(source).all(_TILE_NODES, low=merkle.node_key(nodes[0]), high=merkle.node_key(nodes[-1]),
                               level=nodes[0][0])
    if [index for index, _ in rows] != [index for _, index in nodes]:
        raise LogCorruptedError(f"stored log hashes missing from {tile.path()}")
    return b"".join(bytes(digest) for _, digest in rows)


def bundle_data(source: Source, tile: tiles.Tile) -> bytes:
    """An entry bundle's bytes: each logged leaf, exactly as hashed, after its length."""
    _within_signed(source, tile, tile.bundle_path())
    rows = _reader(source).all(_LEAVES, start=tile.first, end=tile.first + tile.width)
    if [index for index, _ in rows] != list(range(tile.first, tile.first + tile.width)):
        raise LogCorruptedError(f"logged entries missing from {tile.bundle_path()}")
    return tiles.encode_bundle([leaf.encode() for _, leaf in rows])
