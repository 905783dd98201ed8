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
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..crypto import jws, keys, merkle, note
from ..crypto.canonical import is_canonical
from ..domain import licence
from ..domain.party_keys import KeyValidity
from ..domain.timefmt import format_time, parse_time
from ..keyring import Keyring
from ..models import Checkpoint, Licence, LicenceVersion, LogEntry, LogNode, PartyKey
from .log import LogCorruptedError, fetch_nodes

_BATCH = 2000
_MAX_FAULTS = 1000


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


class _Replay:
    """Key and licence state rebuilt from the log alone."""

    def __init__(self, keyring: Keyring):
        self.answer_key = keys.public_only(keyring.answer_key)
        self.keys: dict[str, _KeyState] = {}
        self.licences: dict[str, tuple[int, str]] = {}  # certificate -> (version, status)
        self.agreements: dict[str, int] = {}
        self.revoked_by: dict[str, int] = {}  # kid -> the entry that revoked it

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

    def check(self, entry: LogEntry, report: Report) -> None:
        where = f"entry {entry.idx} ({entry.kind} {entry.subject})"
        try:
            leaf = json.loads(entry.leaf)
        except ValueError:
            report.fault(f"{where}: leaf is not JSON")
            return
        if not is_canonical(entry.leaf.encode()):
            report.fault(f"{where}: leaf is not canonical JSON")
        expected = {
            "kind": entry.kind, "party": entry.party_code, "subject": entry.subject, "version": entry.version,
            "kid": entry.kid, "statement_sha256": hashlib.sha256(entry.statement.encode()).hexdigest(),
            "logged_at": format_time(entry.logged_at),
        }
        if leaf != expected:
            wrong = sorted(k for k in expected.keys() | leaf.keys() if leaf.get(k) != expected.get(k))
            report.fault(f"{where}: leaf does not describe the stored statement ({', '.join(wrong)})")
            return
        try:
            getattr(self, f"_{entry.kind}")(entry, report, where)
        except (jws.JWSError, keys.KeyFileError, KeyError, TypeError, ValueError) as exc:
            report.fault(f"{where}: {exc}")

    def _party_key_signer(self, entry: LogEntry) -> Any:
        if entry.kid == self.answer_key.kid:
            return self.answer_key
        state = self.keys.get(entry.kid)
        if state is None or state.validity.party != entry.party_code:
            raise ValueError(f"signed by {entry.kid}, not a key of {entry.party_code}")
        refusal = state.validity.refusal(entry.idx, entry.logged_at)
        if refusal:
            raise ValueError(f"statement signed when {refusal}")
        return state.public

    def _apply_key_change(self, entry: LogEntry) -> None:
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

    def _party_key(self, entry: LogEntry, report: Report, where: str) -> None:
        """Signed by a key whose compromise, revealed later, predates this change?"""
        state = self.keys.get(entry.kid)
        if state is None or entry.idx == self.revoked_by.get(entry.kid):
            return
        revoked_at = state.validity.revoked_at
        if revoked_at is not None and entry.logged_at > revoked_at:
            report.fault(f"{where}: statement signed when key {entry.kid} was revoked at {format_time(revoked_at)}")

    def _licence(self, entry: LogEntry, report: Report, where: str) -> None:
        state = self.keys.get(entry.kid)
        if state is None or state.validity.party != entry.party_code:
            raise ValueError(f"signed by {entry.kid}, not a key of {entry.party_code}")
        refusal = state.validity.refusal(entry.idx, entry.logged_at)
        if refusal:
            report.fault(f"{where}: statement signed when {refusal}")
        payload = jws.verify(entry.statement, state.public, jws.TYP_LICENCE)
        if (payload["certificate"], payload["party"], payload["version"]) != (
                entry.subject, entry.party_code, entry.version):
            raise ValueError("statement's certificate, party or version differs from the leaf's")
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

    def _agreement(self, entry: LogEntry, report: Report, where: str) -> None:
        if entry.kid != self.answer_key.kid:
            raise ValueError("agreement not signed by the registry's answer key")
        payload = jws.verify(entry.statement, self.answer_key, jws.TYP_AGREEMENT)
        if (payload["id"], payload["version"]) != (entry.subject, entry.version):
            raise ValueError("statement's id or version differs from the leaf's")
        expected = self.agreements.get(entry.subject, 0) + 1
        if entry.version != expected:
            report.fault(f"{where}: version {entry.version} follows version {expected - 1}")
        self.agreements[entry.subject] = entry.version


def _entries(session: Session, kind: str | None = None) -> Iterator[LogEntry]:
    after = -1
    while True:
        query = select(LogEntry).where(LogEntry.idx > after).order_by(LogEntry.idx).limit(_BATCH)
        if kind is not None:
            query = query.where(LogEntry.kind == kind)
        batch = list(session.execute(query).scalars())
        if not batch:
            return
        yield from batch
        after = batch[-1].idx
        session.expunge_all()


def run(session: Session, keyring: Keyring) -> Report:
    report = Report()
    replay = _Replay(keyring)
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
    extra = session.execute(
        select(func.count()).select_from(LogNode).where(LogNode.level == 0, LogNode.idx >= frontier.size)
    ).scalar_one()
    if extra:
        report.fault(f"{extra} stored leaf hashes lie beyond the last entry")
    for size in sorted(s for s in checkpoints if s > frontier.size):
        report.fault(f"checkpoint at size {size} is beyond the log's {frontier.size} entries")
    _check_indexes(session, replay, report)
    return report


def _compare_nodes(session: Session, computed: dict[tuple[int, int], bytes], report: Report) -> None:
    if not computed:
        return
    try:
        stored = fetch_nodes(session, computed.keys())
    except LogCorruptedError as exc:
        report.fault(str(exc))
        computed.clear()
        return
    for node, digest in computed.items():
        if stored[node] != digest:
            level, index = node
            report.fault(f"stored hash of level {level} node {index} differs from what the leaves give")
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
