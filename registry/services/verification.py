"""Signed verification answers, computed at a checkpoint from logged statements.

The answer is a pure function of the statements logged below the checkpoint's
tree size and of ``at``: versions logged later (by a publish racing this read)
are left out, so anyone replaying the log gets the same results.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from ..crypto import jws
from ..crypto.canonical import canonical_json
from ..domain import identifiers
from ..domain.agreement import AgreementVersion
from ..domain.licence import LicenceVersion
from ..domain.recognition import Result, agreements_at, recognise
from ..domain.timefmt import format_time
from ..errors import InvalidInputError, NotFoundError, UnavailableError
from ..keyring import Keyring
from ..models import Checkpoint, LicenceIdentifier, LogEntry, Party, PartyKey
from ..models import LicenceVersion as LicenceVersionRow
from . import agreements, log

_CHUNK = 500


@dataclass(frozen=True)
class CheckpointView:
    """What an answer needs of a signed checkpoint; safe to share between requests and threads."""

    tree_size: int
    root_hash: bytes
    note: str


@dataclass(frozen=True)
class Snapshot:
    """What an answer is computed from: one checkpoint and what the log below it says.

    Agreements and key revocations are functions of the log below
    ``checkpoint.tree_size`` alone (the log never changes an entry), so a
    snapshot can serve every request made at that size.
    """

    checkpoint: CheckpointView
    agreements: tuple[AgreementVersion, ...]
    revoked: Mapping[str, datetime]

    @property
    def size(self) -> int:
        return self.checkpoint.tree_size


def load_snapshot(session: Session, size: int | None = None) -> Snapshot:
    """The snapshot at ``size`` (default: the log's current size)."""
    row = session.get(Checkpoint, size) if size is not None else None
    if row is None:
        row = log.latest_checkpoint(session)
    if row is None:
        raise UnavailableError("the log has no checkpoint yet; run `registry init`")
    checkpoint = CheckpointView(row.tree_size, bytes(row.root_hash), row.note)
    return Snapshot(checkpoint, tuple(agreements.domain_versions(session, checkpoint.tree_size)),
                    MappingProxyType(revoked_keys(session, checkpoint.tree_size)))


class SnapshotCache:
    """The latest snapshot, kept between requests and keyed by the log's tree size.

    A request reads the head's size (one indexed row) and gets the snapshot
    for exactly that size, reloaded whenever the log has grown, so answers
    stay the same pure function of the log below their checkpoint. Threads
    may race to reload; each gets a correct snapshot and the last one stays.
    """

    def __init__(self) -> None:
        self._snapshot: Snapshot | None = None

    def at(self, session: Session, size: int) -> Snapshot:
        snapshot = self._snapshot
        if snapshot is None or snapshot.size != size:
            snapshot = load_snapshot(session, size)
            self._snapshot = snapshot
        return snapshot


def current(session: Session, cache: SnapshotCache | None = None, size: int | None = None) -> Snapshot:
    """The snapshot at the log's size, or at ``size`` if the caller read it already (see tokens.authenticate)."""
    if size is None:
        size = log.tree_size(session)
    if cache is None:
        return load_snapshot(session, size)
    return cache.at(session, size)


# Built once: the lookup every verification makes, as a Core statement with an
# expanding IN, so that it skips the ORM and its compiled form is cached.
_VERSIONS_QUERY = (
    select(LicenceIdentifier.identifier, LogEntry.idx, LogEntry.statement, LogEntry.logged_at, LogEntry.kid)
    .join(LicenceVersionRow, LicenceVersionRow.certificate == LicenceIdentifier.certificate)
    .join(LogEntry, LogEntry.idx == LicenceVersionRow.log_index)
    .where(LicenceIdentifier.identifier.in_(bindparam("identifiers", expanding=True)),
           LogEntry.idx < bindparam("size"))
)


def licence_versions(session: Session, wanted: Iterable[str], size: int) -> dict[str, list[LicenceVersion]]:
    """Every version, logged below ``size``, of each licence that ever named each identifier."""
    wanted = sorted(set(wanted))
    parsed: dict[int, LicenceVersion] = {}
    found: dict[str, list[LicenceVersion]] = {identifier: [] for identifier in wanted}
    connection = session.connection()
    for start in range(0, len(wanted), _CHUNK):
        rows = connection.execute(_VERSIONS_QUERY, {"identifiers": wanted[start:start + _CHUNK], "size": size})
        for identifier, idx, statement, logged_at, kid in rows:
            version = parsed.get(idx)
            if version is None:
                version = parsed[idx] = LicenceVersion.from_payload(
                    jws.logged_payload(statement), log_index=idx, logged_at=logged_at, kid=kid, statement=statement)
            found[identifier].append(version)
    return found


def revoked_keys(session: Session, size: int) -> dict[str, datetime]:
    rows = session.execute(
        select(PartyKey.kid, PartyKey.revoked_at)
        .where(PartyKey.revoked_at.is_not(None), PartyKey.revoked_log_index < size)
    )
    return {kid: revoked_at for kid, revoked_at in rows}


@dataclass(frozen=True)
class Query:
    verifier: str
    operator_ids: Sequence[str]
    at: datetime | None
    nonce: str | None
    include_statements: bool = True
    proofs: bool = False


def results_for(session: Session, snapshot: Snapshot, query: Query, at: datetime) -> list[Result]:
    """One result per id asked, in order; a malformed id gets an ``error`` and no lookup."""
    normalised: list[str | None] = []
    problems: dict[int, str] = {}
    for position, raw in enumerate(query.operator_ids):
        try:
            normalised.append(identifiers.operator_id(raw))
        except identifiers.IdentifierError as exc:
            normalised.append(None)
            problems[position] = str(exc)
    versions = licence_versions(session, [n for n in normalised if n], snapshot.size)
    agreement_versions, revoked = snapshot.agreements, snapshot.revoked
    in_effect = agreements_at(agreement_versions, at)
    results = []
    for position, identifier in enumerate(normalised):
        if identifier is None:
            raw = query.operator_ids[position]
            results.append(Result(raw if isinstance(raw, str) else str(raw), "unknown_operator",
                                  error=f"operator_ids.{position}: {problems[position]}"))
        else:
            results.append(recognise(identifier, query.verifier, at, versions[identifier], agreement_versions, revoked,
                                     in_effect=in_effect))
    return results


def check_operator_id(raw: str) -> None:
    """For a single lookup, a malformed id is a 400 rather than a result."""
    try:
        identifiers.operator_id(raw)
    except identifiers.IdentifierError as exc:
        raise InvalidInputError(f"operator_id: {exc}", {"operator_id": [str(exc)]}) from exc


def answer(session: Session, keyring: Keyring, query: Query, *, now: datetime, ttl_seconds: int,
           cache: SnapshotCache | None = None, size: int | None = None) -> dict[str, Any]:
    """The signed answer: ``{"verification": {...}, "jws": "..."}``."""
    verification, _, signed = _answer(session, keyring, query, now, ttl_seconds, cache, size)
    return {"verification": verification, "jws": signed}


def answer_body(session: Session, keyring: Keyring, query: Query, *, now: datetime, ttl_seconds: int,
                cache: SnapshotCache | None = None, size: int | None = None) -> bytes:
    """The signed answer as the response body, its ``verification`` written as the very bytes signed.

    Encoding a 5,000-result answer once instead of twice (canonical for the
    signature, then again for the body) saves a good share of a batch.
    """
    _, payload, signed = _answer(session, keyring, query, now, ttl_seconds, cache, size)
    return b'{"verification":' + payload + b',"jws":"' + signed.encode("ascii") + b'"}'


def _answer(session: Session, keyring: Keyring, query: Query, now: datetime, ttl_seconds: int,
            cache: SnapshotCache | None, size: int | None) -> tuple[dict[str, Any], bytes, str]:
    snapshot = current(session, cache, size)
    at = query.at or now
    results = results_for(session, snapshot, query, at)
    checkpoint: dict[str, Any] = {"tree_size": snapshot.size, "root_hash": log.b64(snapshot.checkpoint.root_hash)}
    rendered = [r.as_json(include_statements=query.include_statements) for r in results]
    if query.proofs:
        checkpoint["note"] = snapshot.checkpoint.note
        _attach_proofs(session, snapshot.size, rendered)
    verification = {
        "verifier": query.verifier,
        "at": format_time(at),
        "nonce": query.nonce,
        "produced_at": format_time(now),
        "next_update": format_time(now + timedelta(seconds=ttl_seconds)),
        "checkpoint": checkpoint,
        "results": rendered,
    }
    payload = canonical_json(verification)
    return verification, payload, jws.sign_bytes(payload, keyring.answer_key, jws.TYP_VERIFICATION)


def _attach_proofs(session: Session, size: int, rendered: list[dict[str, Any]]) -> None:
    indices = {licence["log_index"] for result in rendered for licence in result["licences"]}
    if not indices:
        return
    proofs = log.inclusion_proofs(session, indices, size)
    leaves = dict(session.execute(select(LogEntry.idx, LogEntry.leaf).where(LogEntry.idx.in_(indices))).all())
    for result in rendered:
        for licence in result["licences"]:
            index = licence["log_index"]
            licence["inclusion_proof"] = {"leaf": leaves[index], "hashes": [log.b64(h) for h in proofs[index]]}


# --- the trader's self-check ---------------------------------------------------------


def public_check(session: Session, operator_id: str, certificate: str, now: datetime) -> dict[str, Any]:
    """A trader checks its own licence; either number wrong gives the same 404."""
    errors = {}
    try:
        operator_id = identifiers.operator_id(operator_id)
    except identifiers.IdentifierError as exc:
        errors["operator_id"] = [str(exc)]
    try:
        certificate = identifiers.certificate(certificate)
    except identifiers.IdentifierError as exc:
        errors["certificate"] = [str(exc)]
    if errors:
        raise InvalidInputError(f"invalid fields: {', '.join(sorted(errors))}", errors)
    snapshot = current(session)
    history = [v for v in licence_versions(session, [operator_id], snapshot.size)[operator_id]
               if v.certificate == certificate]
    if not history:
        raise NotFoundError("no licence matches this operator id and certificate number")
    latest = max(history, key=lambda v: v.version)
    agreement_versions, revoked = snapshot.agreements, snapshot.revoked
    recognised_by = []
    national = None
    for party in session.execute(select(Party.code).order_by(Party.code)).scalars():
        result = recognise(operator_id, party, now, history, agreement_versions, revoked)
        if party == latest.party:
            national = result
        if result.recognised:
            recognised_by.append({"party": party, "agreement": result.recognition.agreement,
                                  "types": list(result.recognition.types)})
    shown = national.operator if national and national.operator else latest
    return {
        "certificate": certificate,
        "party": latest.party,
        "operator": {"id": latest.operator_id, "name": latest.operator_name} if latest.consent_public else None,
        "type": shown.type,
        "status": shown.status,
        "suspended_scope": shown.suspended_scope,
        "valid_from": shown.valid_from.isoformat(),
        "valid_until": shown.valid_until.isoformat() if shown.valid_until else None,
        "reason": national.reason if national else "unknown_operator",
        "consent": {"partners": latest.consent_partners, "public": latest.consent_public},
        "recognised_by": recognised_by,
        "checked_at": format_time(now),
        "checkpoint": {"tree_size": snapshot.size, "root_hash": log.b64(snapshot.checkpoint.root_hash)},
    }
