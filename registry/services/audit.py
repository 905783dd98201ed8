"""Audit: check the whole log from its leaves up, and every table answers are computed from.

Walks every entry in order and checks that its leaf is canonical and
describes its statement, that the statement's signature holds under a key
that could sign it when it was logged (key changes replayed from the log,
with what back-dated revocations void), that licence versions follow each
other as the lifecycle allows, that every stored subtree hash is what the
leaves give, and that every checkpoint is signed by the log key over the
root the leaves give at its size.

Every witness's cosignature kept is checked against its key and its
checkpoint's note. Then it recomputes, from the statements alone, every table that answers,
feeds and snapshots read (current licences, versions, identifiers, keys,
agreements, the log's size) and reports each difference. Statements that
a key revocation voided are listed, not counted as faults: they were valid
when logged, and the log keeps them.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from multiprocessing import get_context
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from ..crypto import cosignature, jws, keys, merkle, note
from ..crypto.canonical import canonical_json
from ..domain import licence
from ..domain.licence import LicenceVersion as LicenceVersionFacts
from ..domain.party_keys import KeyLedger
from ..domain.timefmt import format_time
from ..keyring import Keyring
from ..store.models import (
    Agreement,
    AgreementVersion,
    Checkpoint,
    Cosignature,
    Licence,
    LicenceIdentifier,
    LicenceVersion,
    LogEntry,
    LogHead,
    LogNode,
    PartyKey,
)
from ..store.nodes import MAX_LEAVES, key_ranges, node_key
from . import licences, parties, standing

_BATCH = 10_000
_MAX_FAULTS = 1000
# Below this many entries, worker processes cost more to start than they save.
POOL_FROM_ENTRIES = 20_000
_SIGNATURE_CHUNK = 2000


@dataclass
class Report:
    entries: int = 0
    checkpoints: int = 0
    faults: list[str] = field(default_factory=list)
    void: list[str] = field(default_factory=list)  # statements a key revocation voided: listed, not faults

    @property
    def ok(self) -> bool:
        return not self.faults

    def fault(self, message: str) -> None:
        if len(self.faults) < _MAX_FAULTS:
            self.faults.append(message)


@dataclass
class _LicenceState:
    version: int = 0  # the latest version logged, void or not
    standing: str | None = None  # the status of the latest version that is not void
    row: tuple[Any, ...] = ()  # what the ``licence`` row should hold (services.standing.current_row), but version
    identifiers: frozenset[str] = frozenset()


_LICENCE_COLUMNS = ("certificate", "party_code", "status", "type", "operator_id", "consent_partners", "valid_from",
                    "valid_until", "effective_at", "log_index")


def _plain(value: Any) -> Any:
    """One spelling of a value, whichever side (statement or column) it was read from."""
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def _row_values(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(_plain(row[name]) for name in _LICENCE_COLUMNS)


class _Tables:
    """What a table holds, as a set of rows: summed digests, or (to name the differences) the rows themselves.

    A million-licence log makes millions of rows; their digests, keyed
    afresh for each audit so that nobody can aim a forged row at them, add
    up to a few numbers. Only when the sums differ does audit read again
    with ``detailed`` to say which rows.
    """

    def __init__(self, detailed: bool = False, key: bytes | None = None):
        self.detailed = detailed
        self.key = key or secrets.token_bytes(16)
        self.sums: dict[str, tuple[int, int]] = {}
        self.rows: dict[str, set[tuple[Any, ...]]] = {}

    def add(self, table: str, row: tuple[Any, ...]) -> None:
        row = tuple(_plain(value) for value in row)
        if self.detailed:
            self.rows.setdefault(table, set()).add(row)
            return
        digest = int.from_bytes(hashlib.blake2b(repr(row).encode(), digest_size=8, key=self.key).digest(), "big")
        count, total = self.sums.get(table, (0, 0))
        self.sums[table] = (count + 1, (total + digest) % (1 << 64))

    def differing(self, found: _Tables) -> list[str]:
        names = self.rows.keys() | found.rows.keys() if self.detailed else self.sums.keys() | found.sums.keys()
        if self.detailed:
            return sorted(t for t in names if self.rows.get(t, set()) != found.rows.get(t, set()))
        return sorted(t for t in names if self.sums.get(t, (0, 0)) != found.sums.get(t, (0, 0)))


class _Signatures:
    """Checks statements' Ed25519 signatures, here or spread over worker processes.

    The signature is audit's largest cost and needs nothing of the replay but
    the statement and the raw public key that the replay chose for it, so
    chunks of (statement, key) go to a process pool while this process goes
    on replaying in log order. A signature that fails is reported under its
    entry when its chunk comes back; the in-order checks (key validity at
    that point of the log, licence chains) stay here.
    """

    def __init__(self, report: Report, jobs: int, check: bool = True):
        self.report = report
        self.jobs = jobs
        self.checking = check
        # spawn, not fork: a forked child would share (and on exit could close) the database connection.
        self.pool = ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) if jobs > 1 else None
        self.items: list[tuple[str, bytes]] = []
        self.wheres: list[str] = []
        self.pending: deque[tuple[Future, list[str]]] = deque()

    def check(self, where: str, text: str, public_raw: bytes) -> None:
        if not self.checking:
            return
        if self.pool is None:
            if not jws.signature_holds(text, public_raw):
                self.report.fault(f"{where}: signature does not verify")
            return
        self.items.append((text, public_raw))
        self.wheres.append(where)
        if len(self.items) >= _SIGNATURE_CHUNK:
            self._submit()

    def _submit(self) -> None:
        if self.items:
            self.pending.append((self.pool.submit(jws.verify_many, self.items), self.wheres))
            self.items, self.wheres = [], []
        while len(self.pending) > 2 * self.jobs:  # bounded: memory stays flat at any log size
            self._collect()

    def _collect(self) -> None:
        future, wheres = self.pending.popleft()
        for where, holds in zip(wheres, future.result(), strict=True):
            if not holds:
                self.report.fault(f"{where}: signature does not verify")

    def finish(self) -> None:
        if self.pool is None:
            return
        try:
            self._submit()
            while self.pending:
                self._collect()
        finally:
            self.pool.shutdown(cancel_futures=True)


class _Replay:
    """Key, licence and agreement state rebuilt from the log alone, and what the tables should hold.

    Key statements are replayed first (``ledger``): a revocation logged late
    may void statements logged before it, and each statement is judged by
    the keys that stood when it was logged, so that a statement the registry
    could not have accepted is a fault and one a later revocation voided is
    listed as void.
    """

    def __init__(self, keyring: Keyring, signatures: _Signatures, ledger: KeyLedger, expected: _Tables):
        self.answer_key = keys.public_only(keyring.answer_key)
        self.answer_raw = self.answer_key.public_key.public_bytes_raw()
        self.signatures = signatures
        self.ledger = ledger
        self.final = ledger.final
        self.expected = expected
        self.public: dict[str, bytes] = {}  # raw public keys, from the enrolments replayed so far
        self.by_registry: set[str] = set()  # keys the administrator enrolled
        self.licences: dict[str, _LicenceState] = {}
        self.agreements: dict[str, tuple[int, int]] = {}  # id -> (version, log index)
        self.void: list[str] = []
        self._time: tuple[datetime | None, str] = (None, "")

    def _format_time(self, moment: datetime) -> str:
        # A chunk's entries share one logged_at: format it once.
        if self._time[0] != moment:
            self._time = (moment, format_time(moment))
        return self._time[1]

    def _opened(self, entry: Row, where: str, public_raw: bytes | None, typ: str) -> dict[str, Any]:
        """The statement's payload; its header is checked now, its signature by ``_Signatures``."""
        envelope = jws.open_envelope(entry.statement, typ)
        if envelope.kid != entry.kid:
            raise jws.JWSError("kid does not name the key the leaf names")
        if public_raw is None:
            raise ValueError(f"signed by {entry.kid}, which no earlier entry enrolled")
        self.signatures.check(where, entry.statement, public_raw)
        return envelope.payload()

    def check(self, entry: Row, report: Report) -> None:
        where = f"entry {entry.idx} ({entry.kind} {entry.subject})"
        try:
            leaf = json.loads(entry.leaf)
        except ValueError:
            report.fault(f"{where}: leaf is not JSON")
            return
        if not _canonical(leaf, entry.leaf):
            report.fault(f"{where}: leaf is not canonical JSON")
        expected = {
            "kind": entry.kind, "party": entry.party_code, "subject": entry.subject, "version": entry.version,
            "kid": entry.kid, "statement_sha256": hashlib.sha256(entry.statement.encode()).hexdigest(),
            "logged_at": self._format_time(entry.logged_at),
        }
        if leaf != expected:
            wrong = sorted(k for k in expected.keys() | leaf.keys() if leaf.get(k) != expected.get(k))
            report.fault(f"{where}: leaf does not describe the stored statement ({', '.join(wrong)})")
            return
        try:
            getattr(self, f"_{entry.kind}")(entry, report, where)
        except (jws.JWSError, keys.KeyFileError, KeyError, TypeError, ValueError) as exc:
            report.fault(f"{where}: {exc}")

    def _refused(self, entry: Row, report: Report, where: str) -> None:
        """A fault if no key of the party could sign this entry when it was logged."""
        refusal = self.ledger.before(entry.idx).refusal(entry.kid, entry.party_code, entry.idx, entry.logged_at)
        if refusal:
            report.fault(f"{where}: statement signed when {refusal}")

    def _party_key(self, entry: Row, report: Report, where: str) -> None:
        if entry.kid == self.answer_key.kid:
            payload = self._opened(entry, where, self.answer_raw, jws.TYP_PARTY_KEY)
            if payload.get("action") != "add":
                report.fault(f"{where}: the registry's key only enrols keys")
        else:
            self._refused(entry, report, where)
            payload = self._opened(entry, where, self.public.get(entry.kid), jws.TYP_PARTY_KEY)
        if payload["party"] != entry.party_code:
            raise ValueError("statement's party differs from the leaf's")
        target = keys.public_from_jwk(payload["jwk"])
        if payload["action"] == "add":
            if target.kid in self.public:
                report.fault(f"{where}: key {target.kid} enrolled twice")
            self.public.setdefault(target.kid, target.public_key.public_bytes_raw())
            if entry.kid == self.answer_key.kid:
                self.by_registry.add(target.kid)
        if entry.idx in self.final.void:
            self.void.append(f"{where}: {payload['action']} of key {target.kid}, signed by {entry.kid}, which a "
                             "key revocation logged later voided")

    def _licence(self, entry: Row, report: Report, where: str) -> None:
        self._refused(entry, report, where)
        payload = self._opened(entry, where, self.public.get(entry.kid), jws.TYP_LICENCE)
        if (payload["certificate"], payload["party"], payload["version"]) != (
                entry.subject, entry.party_code, entry.version):
            raise ValueError("statement's certificate, party or version differs from the leaf's")
        if entry.facts is None:
            report.fault(f"{where}: licence version not indexed")
        elif entry.facts != licences.facts_text(payload, entry.logged_at, entry.kid):
            report.fault(f"{where}: the facts indexed for verification differ from the statement")
        elif (entry.indexed_certificate, entry.indexed_version) != (entry.subject, entry.version):
            report.fault(f"{where}: indexed as version {entry.indexed_version} of {entry.indexed_certificate}")
        version = LicenceVersionFacts.from_payload(payload, log_index=entry.idx, logged_at=entry.logged_at,
                                                   kid=entry.kid)
        self.expected.add("licence_version", (entry.idx, entry.subject, entry.version))
        state = self.licences.get(entry.subject)
        expected_version = state.version + 1 if state else 1
        if entry.version != expected_version:
            report.fault(f"{where}: version {entry.version} follows version {expected_version - 1}")
        void = self.final.is_void(entry.kid, entry.logged_at)
        if void:
            self.void.append(f"{where}: signed by {entry.kid} after its compromise, as a key revocation logged "
                             "later says")
        elif state is not None and state.standing is not None:
            try:
                licence.check_transition(state.standing, payload["status"])
            except licence.LifecycleError as exc:
                report.fault(f"{where}: {exc}")
        named = state.identifiers if state else frozenset()
        for identifier in version.identifiers - named:
            self.expected.add("licence_identifier", (identifier, entry.subject))
        row = standing.current_row([version], self.final.void_from)
        if state is None:
            state = self.licences[entry.subject] = _LicenceState()
        state.version = entry.version
        state.identifiers = named | version.identifiers
        if not void:
            state.standing, state.row = payload["status"], _row_values(row)
        elif state.standing is None:
            state.row = _row_values(row)  # nothing stands: the row shows the latest version

    def _agreement(self, entry: Row, report: Report, where: str) -> None:
        if entry.kid != self.answer_key.kid:
            raise ValueError("agreement not signed by the registry's answer key")
        payload = self._opened(entry, where, self.answer_raw, jws.TYP_AGREEMENT)
        if (payload["id"], payload["version"]) != (entry.subject, entry.version):
            raise ValueError("statement's id or version differs from the leaf's")
        expected = self.agreements.get(entry.subject, (0, 0))[0] + 1
        if entry.version != expected:
            report.fault(f"{where}: version {entry.version} follows version {expected - 1}")
        self.agreements[entry.subject] = (entry.version, entry.idx)
        self.expected.add("agreement_version", (entry.idx, entry.subject, entry.version))

    def finish(self) -> None:
        """What the tables of current state should hold, now that every entry is replayed."""
        for state in self.licences.values():
            self.expected.add("licence", (*state.row, state.version))
        for agreement_id, (version, index) in self.agreements.items():
            self.expected.add("agreement", (agreement_id, version, index))


def _canonical(value: Any, text: str) -> bool:
    try:
        return canonical_json(value) == text.encode()
    except ValueError:  # rfc8785's errors are ValueErrors
        return False


# With each licence version's facts and where they are indexed (the join is on a unique index).
_ENTRY_COLUMNS = (LogEntry.idx, LogEntry.kind, LogEntry.party_code, LogEntry.subject, LogEntry.version,
                  LogEntry.kid, LogEntry.statement, LogEntry.leaf, LogEntry.logged_at, LicenceVersion.facts,
                  LicenceVersion.certificate.label("indexed_certificate"),
                  LicenceVersion.version.label("indexed_version"))


def _entries(session: Session, kind: str | None = None) -> Iterator[Row]:
    """Every entry (of ``kind``) in log order, as plain rows (no ORM objects), a batch at a time."""
    connection = session.connection()
    after = -1
    while True:
        query = (select(*_ENTRY_COLUMNS).outerjoin(LicenceVersion, LicenceVersion.log_index == LogEntry.idx)
                 .where(LogEntry.idx > after).order_by(LogEntry.idx).limit(_BATCH))
        if kind is not None:
            query = query.where(LogEntry.kind == kind)
        batch = connection.execute(query).all()
        if not batch:
            return
        yield from batch
        after = batch[-1].idx


def default_jobs(session: Session) -> int:
    """Worker processes for signatures: one per CPU for a large log, none for a small one."""
    size = session.execute(select(LogHead.tree_size)).scalar_one_or_none() or 0
    return (os.cpu_count() or 1) if size >= POOL_FROM_ENTRIES else 1


def run(session: Session, keyring: Keyring, jobs: int | None = None) -> Report:
    """Audit the whole log; ``jobs`` worker processes check signatures (default: ``default_jobs``)."""
    report = Report()
    ledger = _key_ledger(session, report)
    signatures = _Signatures(report, jobs if jobs is not None else default_jobs(session))
    expected = _Tables()
    try:
        replay = _Replay(keyring, signatures, ledger, expected)
        _replay_log(session, keyring, replay, report)
    finally:
        signatures.finish()
    replay.finish()
    report.void = replay.void
    _check_tables(session, keyring, replay, expected, report)
    _check_cosignatures(session, report)
    return report


def _check_cosignatures(session: Session, report: Report) -> None:
    """Every cosignature line served is a valid cosignature/v1 by its key over its checkpoint's note,
    and says the time it is stored with."""
    notes = dict(session.execute(select(Checkpoint.tree_size, Checkpoint.note)).all())
    for row in session.execute(select(Cosignature).order_by(Cosignature.tree_size, Cosignature.vkey)).scalars():
        where = f"cosignature at size {row.tree_size} by {row.vkey.partition('+')[0]}"
        try:
            verifier = cosignature.CosignatureVerifier.from_vkey(row.vkey)
            _, verified = note.verified_by(note.add_signatures(notes[row.tree_size], row.line), [verifier])
            stamp = cosignature.timestamp_of(note.split_note(notes[row.tree_size] + row.line)[1][-1].signature)
        except (note.NoteError, KeyError) as exc:
            report.fault(f"{where}: {exc!r}")
            continue
        if not verified:
            report.fault(f"{where}: not a cosignature by that key")
        elif int(row.cosigned_at.timestamp()) != stamp:
            report.fault(f"{where}: stored time is not the cosignature's")


def _key_ledger(session: Session, report: Report) -> KeyLedger:
    """Every key statement, read before the rest: a revocation logged late may void what came before it."""
    statements = []
    for entry in _entries(session, "party_key"):
        try:
            statements.append(parties.key_statement(entry.idx, entry.logged_at, entry.kid, entry.statement))
        except (jws.JWSError, keys.KeyFileError, KeyError, TypeError, ValueError) as exc:
            report.fault(f"entry {entry.idx} (party_key {entry.subject}): {exc}")
    return KeyLedger(statements)


def _replay_log(session: Session, keyring: Keyring, replay: _Replay, report: Report) -> None:
    verifier = keyring.log_verifier
    checkpoints = {c.tree_size: c for c in session.execute(select(Checkpoint)).scalars()}
    frontier = merkle.Frontier(0, [])
    expected_index = 0
    pending_nodes: dict[tuple[int, int], bytes] = {}

    def check_checkpoint(size: int) -> None:
        stored = checkpoints.get(size)
        if stored is None:
            return
        report.checkpoints += 1
        try:
            opened = note.open_checkpoint(stored.note, verifier, keyring.log_origin)
        except note.NoteError as exc:
            report.fault(f"checkpoint at size {size}: {exc}")
            return
        root = frontier.root()
        if opened.tree_size != size or opened.root_hash != root or stored.root_hash != root:
            report.fault(f"checkpoint at size {size}: root does not match the logged leaves")

    check_checkpoint(0)
    for entry in _entries(session):
        if entry.idx != expected_index:
            report.fault(f"log has a gap: entry {entry.idx} follows {expected_index - 1}")
            expected_index = entry.idx
        replay.check(entry, report)
        for level, index, digest in frontier.append(merkle.leaf_hash(entry.leaf.encode())):
            pending_nodes[(level, index)] = digest
        expected_index += 1
        report.entries += 1
        check_checkpoint(frontier.size)
        if len(pending_nodes) >= _BATCH * 4:
            _compare_nodes(session, pending_nodes, report)
    _compare_nodes(session, pending_nodes, report)
    beyond = LogNode.node_key.between(node_key((0, frontier.size)), node_key((0, MAX_LEAVES - 1)))
    extra = session.execute(
        select(func.count()).select_from(LogNode).where(beyond, LogNode.level == 0)
    ).scalar_one()
    if extra:
        report.fault(f"{extra} stored leaf hashes lie beyond the last entry")
    for size in sorted(s for s in checkpoints if s > frontier.size):
        report.fault(f"checkpoint at size {size} is beyond the log's {frontier.size} entries")


def _compare_nodes(session: Session, computed: dict[tuple[int, int], bytes], report: Report) -> None:
    """Stored hashes against the ones the leaves give; read as one key range per band (``node_key``)."""
    connection = session.connection()
    stored: dict[int, bytes] = {}
    for low, high in key_ranges(computed):
        stored.update(connection.execute(
            select(LogNode.node_key, LogNode.hash).where(LogNode.node_key.between(low, high))).all())
    missing = []
    for (level, index), digest in computed.items():
        found = stored.get(node_key((level, index)))
        if found is None:
            missing.append((level, index))
        elif bytes(found) != digest:
            report.fault(f"stored hash of level {level} node {index} differs from what the leaves give")
    if missing:
        report.fault(f"stored log hashes missing: {sorted(missing)[:5]}")
    computed.clear()


# Each table of current state: the columns audit compares, the first naming the row.
_TABLE_COLUMNS = {
    "licence_version": (LicenceVersion.log_index, LicenceVersion.certificate, LicenceVersion.version),
    "licence_identifier": (LicenceIdentifier.identifier, LicenceIdentifier.certificate),
    "licence": (*(getattr(Licence, name) for name in _LICENCE_COLUMNS), Licence.version),
    "agreement_version": (AgreementVersion.log_index, AgreementVersion.agreement_id, AgreementVersion.version),
    "agreement": (Agreement.id, Agreement.version, Agreement.log_index),
}


def _found(session: Session, key: bytes, detailed: bool) -> _Tables:
    """What the tables of current state hold, in the shape ``_Replay`` says they should have."""
    found = _Tables(detailed, key)
    connection = session.connection()
    for table, columns in _TABLE_COLUMNS.items():
        for row in connection.execute(select(*columns).execution_options(yield_per=_BATCH)):
            found.add(table, tuple(row))
    return found


def _differences(table: str, should: set[tuple[Any, ...]], holds: set[tuple[Any, ...]]) -> Iterator[str]:
    """What differs between the rows the log gives and the rows a table holds, row by row, named."""
    names = [column.key for column in _TABLE_COLUMNS[table]]
    if table == "licence_identifier":  # a pair: either there or not
        names = ["identifier and certificate"]
        should, holds = {(row,) for row in should}, {(row,) for row in holds}
    logged, stored = {row[0]: row for row in should}, {row[0]: row for row in holds}
    for name in sorted(logged.keys() | stored.keys(), key=repr):
        a, b = logged.get(name), stored.get(name)
        if a == b:
            continue
        if b is None:
            yield f"table {table}: {names[0]} {name} is in the log but not in the table"
        elif a is None:
            yield f"table {table}: {names[0]} {name} is in the table but in no statement of the log"
        else:
            wrong = ", ".join(f"{n} {y!r} where the log says {x!r}" for n, x, y in zip(names, a, b, strict=True)
                              if x != y)
            yield f"table {table}: {names[0]} {name} holds {wrong}"


def _check_tables(session: Session, keyring: Keyring, replay: _Replay, expected: _Tables, report: Report) -> None:
    """The tables answers are computed from hold exactly what the log's statements make of them."""
    differing = expected.differing(_found(session, expected.key, detailed=False))
    if differing:
        # Say which rows: replay again (every signature is checked already), keeping the rows themselves.
        detailed = _Tables(detailed=True)
        again = _Replay(keyring, _Signatures(Report(), 1, check=False), replay.ledger, detailed)
        for entry in _entries(session):
            again.check(entry, Report())
        again.finish()
        found = _found(session, detailed.key, detailed=True)
        for table in differing:
            for count, message in enumerate(_differences(table, detailed.rows.get(table, set()),
                                                         found.rows.get(table, set()))):
                if count == 50:
                    report.fault(f"table {table}: more rows differ")
                    break
                report.fault(message)
    size = session.execute(select(LogHead.tree_size)).scalar_one_or_none()
    if size != report.entries:
        report.fault(f"the log's head says {size} entries; the log holds {report.entries}")
    _check_keys(session, replay, report)


def _check_keys(session: Session, replay: _Replay, report: Report) -> None:
    """Each key row says what the replayed key statements say: party, dates, status, public key."""
    rows = {row.kid: row for row in session.execute(select(PartyKey)).scalars()}
    for kid, validity in replay.final.keys.items():
        row = rows.pop(kid, None)
        if row is None:
            report.fault(f"key {kid} of {validity.party} is enrolled in the log but missing from the key table")
            continue
        logged = (validity.party, validity.status, validity.valid_from, validity.added_index, validity.retired_at,
                  validity.retired_index, validity.revoked_at, validity.revoked_index)
        stored = (row.party_code, row.status, row.valid_from, row.added_log_index, row.retired_at,
                  row.retired_log_index, row.revoked_at, row.revoked_log_index)
        names = ("party", "status", "valid_from", "log_index", "retired_at", "retired_log_index", "revoked_at",
                 "revoked_log_index")
        wrong = [name for name, a, b in zip(names, logged, stored, strict=True) if _plain(a) != _plain(b)]
        if wrong:
            report.fault(f"key {kid} of {row.party_code}: {', '.join(wrong)} differ from what the log says")
        public = replay.public.get(kid)
        if public is None or keys.public_from_jwk(json.loads(row.jwk)).public_key.public_bytes_raw() != public:
            report.fault(f"key {kid} of {row.party_code}: the stored public key is not the one the log enrolled")
        if row.hosted and kid not in replay.by_registry:
            report.fault(f"key {kid} of {row.party_code} is marked hosted, but the party enrolled it itself")
    for kid, row in rows.items():
        report.fault(f"key {kid} of {row.party_code} is not enrolled in the log")
