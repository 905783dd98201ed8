"""Audit: check the whole log from its leaves up, trusting no derived table.

Walks every entry in order and checks that its leaf is canonical and
describes its statement, that the statement's signature holds under the key
the log itself says was valid then (key changes are replayed from the log),
that licence versions follow each other as the lifecycle allows, that every
stored subtree hash is what the leaves give, and that every checkpoint is
signed by the log key over the root the leaves give at its size.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing import get_context
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from ..crypto import jws, keys, merkle, note
from ..crypto.canonical import canonical_json
from ..domain import licence
from ..domain.party_keys import KeyValidity
from ..domain.timefmt import format_time, parse_time
from ..keyring import Keyring
from ..models import Checkpoint, Licence, LicenceVersion, LogEntry, LogHead, LogNode, PartyKey
from . import licences

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

    @property
    def ok(self) -> bool:
        return not self.faults

    def fault(self, message: str) -> None:
        if len(self.faults) < _MAX_FAULTS:
            self.faults.append(message)


@dataclass
class _KeyState:
    validity: KeyValidity
    public: Any

    @property
    def raw(self) -> bytes:
        return self.public.public_key.public_bytes_raw()


class _Signatures:
    """Checks statements' Ed25519 signatures, here or spread over worker processes.

    The signature is audit's largest cost and needs nothing of the replay but
    the statement and the raw public key that the replay chose for it, so
    chunks of (statement, key) go to a process pool while this process goes
    on replaying in log order. A signature that fails is reported under its
    entry when its chunk comes back; the in-order checks (key validity at
    that point of the log, licence chains) stay here.
    """

    def __init__(self, report: Report, jobs: int):
        self.report = report
        self.jobs = jobs
        # spawn, not fork: a forked child would share (and on exit could close) the database connection.
        self.pool = ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) if jobs > 1 else None
        self.items: list[tuple[str, bytes]] = []
        self.wheres: list[str] = []
        self.pending: deque[tuple[Future, list[str]]] = deque()

    def check(self, where: str, text: str, public_raw: bytes) -> None:
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
    """Key and licence state rebuilt from the log alone."""

    def __init__(self, keyring: Keyring, signatures: _Signatures):
        self.answer_key = keys.public_only(keyring.answer_key)
        self.answer_raw = self.answer_key.public_key.public_bytes_raw()
        self.signatures = signatures
        self.keys: dict[str, _KeyState] = {}
        self.licences: dict[str, tuple[int, str]] = {}  # certificate -> (version, status)
        self.agreements: dict[str, int] = {}
        self.revoked_by: dict[str, int] = {}  # kid -> the entry that revoked it
        self._time: tuple[datetime | None, str] = (None, "")

    def replay_keys(self, session: Session, report: Report) -> None:
        """First pass: every key change, in log order, each checked against the keys before it.

        Licence statements are checked afterwards against the final key
        states, because a revocation logged later may date the compromise back
        before statements that were accepted at the time.
        """
        for entry in _entries(session, "party_key"):
            where = f"entry {entry.idx} (party_key {entry.subject})"
            try:
                self._apply_key_change(entry)
            except (jws.JWSError, keys.KeyFileError, KeyError, TypeError, ValueError) as exc:
                report.fault(f"{where}: {exc}")

    def _format_time(self, moment: datetime) -> str:
        # A chunk's entries share one logged_at: format it once.
        if self._time[0] != moment:
            self._time = (moment, format_time(moment))
        return self._time[1]

    def _opened(self, entry: Row, where: str, key_id: str, public_raw: bytes, typ: str) -> dict[str, Any]:
        """The statement's payload; its header is checked now, its signature by ``_Signatures``."""
        envelope = jws.open_envelope(entry.statement, typ)
        if envelope.kid != key_id:
            raise jws.JWSError("kid does not name the verifying key")
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

    def _party_key_signer(self, entry: Row) -> Any:
        if entry.kid == self.answer_key.kid:
            return self.answer_key
        state = self.keys.get(entry.kid)
        if state is None or state.validity.party != entry.party_code:
            raise ValueError(f"signed by {entry.kid}, not a key of {entry.party_code}")
        refusal = state.validity.refusal(entry.idx, entry.logged_at)
        if refusal:
            raise ValueError(f"statement signed when {refusal}")
        return state.public

    def _apply_key_change(self, entry: Row) -> None:
        payload = jws.verify(entry.statement, self._party_key_signer(entry), jws.TYP_PARTY_KEY)
        public = keys.public_from_jwk(payload["jwk"])
        if payload["party"] != entry.party_code:
            raise ValueError("statement's party differs from the leaf's")
        if payload["action"] == "add":
            if public.kid in self.keys:
                raise ValueError(f"key {public.kid} added twice")
            valid_from = max(parse_time(payload["valid_from"]), entry.logged_at) if payload.get(
                "valid_from") else entry.logged_at
            self.keys[public.kid] = _KeyState(KeyValidity(public.kid, entry.party_code, valid_from, entry.idx), public)
            return
        state = self.keys[public.kid]
        old = state.validity
        if payload["action"] == "retire":
            state.validity = KeyValidity(old.kid, old.party, old.valid_from, old.added_index, entry.idx, old.revoked_at)
        else:
            revoked_at = parse_time(payload["revoked_at"]) if payload.get("revoked_at") else entry.logged_at
            state.validity = KeyValidity(old.kid, old.party, old.valid_from, old.added_index, old.retired_index,
                                         revoked_at)
            self.revoked_by[public.kid] = entry.idx

    def _party_key(self, entry: Row, report: Report, where: str) -> None:
        """Signed by a key whose compromise, revealed later, predates this change?"""
        state = self.keys.get(entry.kid)
        if state is None or entry.idx == self.revoked_by.get(entry.kid):
            return
        revoked_at = state.validity.revoked_at
        if revoked_at is not None and entry.logged_at > revoked_at:
            report.fault(f"{where}: statement signed when key {entry.kid} was revoked at {format_time(revoked_at)}")

    def _licence(self, entry: Row, report: Report, where: str) -> None:
        state = self.keys.get(entry.kid)
        if state is None or state.validity.party != entry.party_code:
            raise ValueError(f"signed by {entry.kid}, not a key of {entry.party_code}")
        refusal = state.validity.refusal(entry.idx, entry.logged_at)
        if refusal:
            report.fault(f"{where}: statement signed when {refusal}")
        payload = self._opened(entry, where, state.public.kid, state.raw, jws.TYP_LICENCE)
        if (payload["certificate"], payload["party"], payload["version"]) != (
                entry.subject, entry.party_code, entry.version):
            raise ValueError("statement's certificate, party or version differs from the leaf's")
        if entry.facts is None:
            report.fault(f"{where}: licence version not indexed")
        elif entry.facts != licences.facts_text(payload, entry.logged_at, entry.kid):
            report.fault(f"{where}: the facts indexed for verification differ from the statement")
        previous = self.licences.get(entry.subject)
        expected_version = previous[0] + 1 if previous else 1
        if entry.version != expected_version:
            report.fault(f"{where}: version {entry.version} follows version {expected_version - 1}")
        if previous:
            try:
                licence.check_transition(previous[1], payload["status"])
            except licence.LifecycleError as exc:
                report.fault(f"{where}: {exc}")
        self.licences[entry.subject] = (entry.version, payload["status"])

    def _agreement(self, entry: Row, report: Report, where: str) -> None:
        if entry.kid != self.answer_key.kid:
            raise ValueError("agreement not signed by the registry's answer key")
        payload = self._opened(entry, where, self.answer_key.kid, self.answer_raw, jws.TYP_AGREEMENT)
        if (payload["id"], payload["version"]) != (entry.subject, entry.version):
            raise ValueError("statement's id or version differs from the leaf's")
        expected = self.agreements.get(entry.subject, 0) + 1
        if entry.version != expected:
            report.fault(f"{where}: version {entry.version} follows version {expected - 1}")
        self.agreements[entry.subject] = entry.version


def _canonical(value: Any, text: str) -> bool:
    try:
        return canonical_json(value) == text.encode()
    except ValueError:  # rfc8785's errors are ValueErrors
        return False


# With each licence version's facts (the same read: the join is on a unique index).
_ENTRY_COLUMNS = (LogEntry.idx, LogEntry.kind, LogEntry.party_code, LogEntry.subject, LogEntry.version,
                  LogEntry.kid, LogEntry.statement, LogEntry.leaf, LogEntry.logged_at, LicenceVersion.facts)


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
    signatures = _Signatures(report, jobs if jobs is not None else default_jobs(session))
    try:
        replay = _Replay(keyring, signatures)
        _replay_log(session, keyring, replay, report)
    finally:
        signatures.finish()
    _check_indexes(session, replay, report)
    return report


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
    replay.replay_keys(session, report)
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
    beyond = LogNode.node_key.between(merkle.node_key((0, frontier.size)), merkle.node_key((0, merkle.MAX_LEAVES - 1)))
    extra = session.execute(
        select(func.count()).select_from(LogNode).where(beyond, LogNode.level == 0)
    ).scalar_one()
    if extra:
        report.fault(f"{extra} stored leaf hashes lie beyond the last entry")
    for size in sorted(s for s in checkpoints if s > frontier.size):
        report.fault(f"checkpoint at size {size} is beyond the log's {frontier.size} entries")


def _compare_nodes(session: Session, computed: dict[tuple[int, int], bytes], report: Report) -> None:
    """Stored hashes against the ones the leaves give; read as one key range per band (``merkle.node_key``)."""
    connection = session.connection()
    stored: dict[int, bytes] = {}
    for low, high in merkle.key_ranges(computed):
        stored.update(connection.execute(
            select(LogNode.node_key, LogNode.hash).where(LogNode.node_key.between(low, high))).all())
    missing = []
    for (level, index), digest in computed.items():
        found = stored.get(merkle.node_key((level, index)))
        if found is None:
            missing.append((level, index))
        elif bytes(found) != digest:
            report.fault(f"stored hash of level {level} node {index} differs from what the leaves give")
    if missing:
        report.fault(f"stored log hashes missing: {sorted(missing)[:5]}")
    computed.clear()


def _check_indexes(session: Session, replay: _Replay, report: Report) -> None:
    """The lookup tables agree with the replayed log."""
    for certificate, version, status in session.execute(select(Licence.certificate, Licence.version, Licence.status)):
        logged = replay.licences.get(certificate)
        if logged is None or logged != (version, status):
            report.fault(f"licence {certificate}: current version {version} ({status}) is not the log's {logged}")
    versions = session.execute(select(func.count()).select_from(LicenceVersion)).scalar_one()
    logged_versions = sum(v for v, _ in replay.licences.values())
    if versions != logged_versions:
        report.fault(f"{versions} licence versions indexed, {logged_versions} logged")
    for kid, party, status in session.execute(select(PartyKey.kid, PartyKey.party_code, PartyKey.status)):
        state = replay.keys.get(kid)
        if state is None or state.validity.party != party:
            report.fault(f"key {kid} of {party} is not enrolled in the log")
            continue
        validity = state.validity
        logged = "revoked" if validity.revoked_at else "retired" if validity.retired_index is not None else "active"
        if status != logged:
            report.fault(f"key {kid} of {party} is {status}, but the log says {logged}")
