"""What a pasted verification answer, snapshot or proof file proves, checked against the registry's published keys.

The checks themselves are ``registry.offline``'s, with the anchors a partner
would fetch (``/.well-known/jwks.json``, the log's verifier key, the parties
and their keys). This module only tells the two kinds of document apart,
sorts failures into a few plain kinds, and adds what only the registry can
say: how far its log has grown since, and where a statement that the
document carries without an inclusion proof sits in its log.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import offline
from ..crypto import cosignature, ijson, jws, note, tlogproof
from ..domain.licence import LicenceVersion
from ..domain.timefmt import parse_time
from ..errors import InvalidInputError
from ..keyring import Keyring
from ..store.models import LogEntry
from ..store.reads import Reader
from . import log, parties, witnesses

# Log indices per query when looking up the statements of a signed answer:
# well under any database's limit of bound variables, whatever the answer holds.
_LOOKUP_CHUNK = 500

# Why a document proves nothing, from the least to the most suspicious.
PROBLEMS = ("empty", "policy", "not_json", "not_a_document", "wrong_key", "does_not_verify", "quorum")


class EvidenceError(InvalidInputError):
    """The document proves nothing; ``problem`` is one of PROBLEMS, ``detail`` the technical reason."""

    def __init__(self, problem: str, detail: str):
        super().__init__(detail, {"document": [detail]})
        self.problem = problem


@dataclass(frozen=True)
class AnswerEvidence:
    kind = "answer"
    kid: str
    verifier: str
    at: datetime
    produced_at: datetime
    next_update: datetime
    fresh: bool
    nonce: str | None
    tree_size: int
    results: list[dict[str, Any]]
    licences: int  # licences the answer names
    proven: int  # of those, proven in the log by an inclusion proof carried in the answer
    found_in_log: int  # carried without a proof, found at their log index in this registry's log
    log_grown_by: int  # entries the registry logged after the answer's checkpoint
    witnessed_by: list[str] | None = None  # the registry's witnesses that cosigned its note; None: no note
    policy_met_by: list[str] | None = None  # with a witness policy: its witnesses that cosigned


@dataclass(frozen=True)
class SnapshotEvidence:
    kind = "snapshot"
    kid: str
    generated_at: datetime
    age: timedelta
    tree_size: int
    parties: int
    agreements: int
    licences: int
    statements: int
    log_grown_by: int
    witnessed_by: list[str] | None = None
    policy_met_by: list[str] | None = None


@dataclass(frozen=True)
class ProofEvidence:
    """A proof file (c2sp.org/tlog-proof): this leaf is entry ``index`` of the log at ``tree_size``."""

    kind = "proof"
    index: int
    tree_size: int
    leaf: dict[str, Any]
    in_this_log: bool  # this registry holds that very leaf at that index
    log_grown_by: int
    witnessed_by: list[str]
    policy_met_by: list[str] | None = None


Evidence = AnswerEvidence | SnapshotEvidence | ProofEvidence


def policy_from_form(witness_keys: str, quorum: str) -> offline.WitnessPolicy | None:
    """A witness policy from a form: verifier keys one a line, and a quorum (blank: all of them)."""
    vkeys = [line.strip() for line in witness_keys.splitlines() if line.strip()]
    try:
        count = int(quorum) if quorum.strip() else None
    except ValueError:
        raise EvidenceError("policy", f"the quorum {quorum!r} is not a whole number") from None
    try:
        return offline.WitnessPolicy.from_vkeys(vkeys, count)
    except offline.OfflineError as exc:
        raise EvidenceError("policy", str(exc)) from exc


def _witnessed_by(session: Session, signed_note: str) -> list[str]:
    """The registry's configured witnesses (by their configured names) whose cosignatures on the note hold."""
    configured = [(cosignature.CosignatureVerifier.from_vkey(row.vkey), row.name)
                  for row in witnesses.listing(session)]
    try:
        _, verified = note.verified_by(signed_note, [verifier for verifier, _ in configured])
    except note.NoteError as exc:
        raise EvidenceError("does_not_verify", str(exc)) from exc
    return sorted(name for verifier, name in configured if verifier in verified)


def _policy(policy: offline.WitnessPolicy | None, signed_note: str | None, what: str) -> list[str] | None:
    if policy is None:
        return None
    if signed_note is None:
        raise EvidenceError("quorum", f"{what} carries no checkpoint note for the witness policy to check")
    try:
        return policy.check(signed_note, what)
    except offline.OfflineError as exc:
        raise EvidenceError("quorum", str(exc)) from exc


def examine(session: Session, keyring: Keyring, text: str, now: datetime,
            policy: offline.WitnessPolicy | None = None) -> Evidence:
    """Check a verification answer, a snapshot or a proof file; EvidenceError says why it proves nothing.

    With a witness ``policy``, evidence whose checkpoint lacks its quorum of cosignatures proves nothing
    (problem ``quorum``, naming who signed).
    """
    if not text.strip():
        raise EvidenceError("empty", "no document given")
    if tlogproof.is_proof(text):
        return _proof(session, keyring, text, policy)
    try:
        document = ijson.loads(text)
    except ijson.IJSONError as exc:
        raise EvidenceError("not_json", str(exc)) from exc
    if not isinstance(document, dict) or not isinstance(document.get("jws"), str):
        raise EvidenceError("not_a_document", "a JSON object with a jws member is expected")
    envelope = _envelope(document["jws"])
    registry_jwks = keyring.registry_jwks()
    registry = offline.RegistryKeys.from_jwks(registry_jwks)
    if envelope.kid not in registry.answer:
        raise EvidenceError("wrong_key", f"signed by key {envelope.kid}, which is not this registry's answer key")
    try:
        # The registry's own signature first: until it holds, the document is
        # anyone's, and nothing in it is looked up (300,000 claimed statements
        # under a bogus signature made one SQL statement of 300,000 variables).
        signed = registry.verify_answer_key_jws(document["jws"], envelope.header["typ"], "the document")
        size = log.tree_size(Reader.of(session))
        if envelope.header["typ"] == jws.TYP_SNAPSHOT:
            snapshot = offline.open_snapshot(document, registry_jwks)
            met = _policy(policy, snapshot.checkpoint_note, "the snapshot's checkpoint")
            return replace(_snapshot(snapshot, envelope, size, now),
                           witnessed_by=_witnessed_by(session, snapshot.checkpoint_note), policy_met_by=met)
        found = _answer(session, keyring, document, signed, envelope, size, now)
        # _answer checked the note (if any) with the log key: it is a string here.
        signed_note = signed["checkpoint"].get("note")
        met = _policy(policy, signed_note, "the answer's checkpoint")
        return replace(found, witnessed_by=_witnessed_by(session, signed_note) if signed_note else None,
                       policy_met_by=met)
    except offline.OfflineError as exc:
        raise EvidenceError("does_not_verify", str(exc)) from exc


def _proof(session: Session, keyring: Keyring, text: str, policy: offline.WitnessPolicy | None) -> ProofEvidence:
    try:
        report = offline.check_proof(text, keyring.log_verifier)
    except offline.OfflineError as exc:
        raise EvidenceError("does_not_verify", str(exc)) from exc
    proof = tlogproof.parse(text)  # check_proof parsed it: it parses
    met = _policy(policy, proof.checkpoint, "the proof's checkpoint")
    entry = session.get(LogEntry, report.index)
    return ProofEvidence(index=report.index, tree_size=report.tree_size, leaf=report.leaf,
                         in_this_log=entry is not None and entry.leaf.encode() == proof.extra,
                         log_grown_by=max(log.tree_size(Reader.of(session)) - report.tree_size, 0),
                         witnessed_by=_witnessed_by(session, proof.checkpoint), policy_met_by=met)


def _envelope(text: str) -> jws.Envelope:
    """The document's JWS, opened as an answer or as a snapshot (not yet verified)."""
    try:
        return ijson.open_envelope(text, jws.TYP_VERIFICATION)
    except jws.JWSError as as_answer:
        try:
            return ijson.open_envelope(text, jws.TYP_SNAPSHOT)
        except jws.JWSError:
            raise EvidenceError("not_a_document", f"not a verification answer or a snapshot: {as_answer}") from None


def _snapshot(snapshot: offline.Snapshot, envelope: jws.Envelope, size: int, now: datetime) -> SnapshotEvidence:
    return SnapshotEvidence(
        kid=envelope.kid,
        generated_at=snapshot.generated_at,
        age=max(now - snapshot.generated_at, timedelta(0)),
        tree_size=snapshot.checkpoint.tree_size,
        parties=len(snapshot.parties),
        agreements=len({v.id for v in snapshot.agreement_versions}),
        licences=len({v.certificate for v in snapshot.licence_versions}),
        statements=len(snapshot.licence_versions),
        log_grown_by=max(size - snapshot.checkpoint.tree_size, 0),
    )


def _answer(session: Session, keyring: Keyring, document: dict[str, Any], verification: dict[str, Any],
            envelope: jws.Envelope, size: int, now: datetime) -> AnswerEvidence:
    """``verification`` is the payload whose registry signature was checked."""
    anchors = offline.Anchors.published(keyring.registry_jwks(), keyring.log_verifier.vkey(),
                                        parties.parties_json(session))
    try:
        known = logged_statements(session, verification)
    except (KeyError, TypeError, ValueError, AttributeError):
        known = {}  # check_answer says what is wrong with it
    report = offline.check_answer(document, replace(anchors, known_statements=known), now)
    licences = [licence for result in verification["results"] for licence in result["licences"]]
    with_proof = "note" in verification["checkpoint"]
    return AnswerEvidence(
        kid=envelope.kid,
        verifier=report.verifier,
        at=parse_time(report.at),
        produced_at=parse_time(report.produced_at),
        next_update=parse_time(report.next_update),
        fresh=report.fresh,
        nonce=verification.get("nonce"),
        tree_size=report.tree_size,
        results=report.results,
        licences=len(licences),
        proven=report.proven,
        found_in_log=sum(1 for licence in licences if licence.get("statement") in known
                         and not (with_proof and "inclusion_proof" in licence)),
        log_grown_by=max(size - report.tree_size, 0),
    )


def logged_statements(session: Session, verification: dict[str, Any]) -> dict[str, LicenceVersion]:
    """Statements an answer carries without a proof, as this registry logged them at the index the answer names.

    A partner offline needs a snapshot for these; the registry has its own
    log. Only an exact match of the statement text at that index counts.
    """
    with_proof = "note" in verification["checkpoint"]
    wanted = {licence["log_index"]: licence["statement"]
              for result in verification["results"] for licence in result["licences"]
              if isinstance(licence.get("statement"), str) and isinstance(licence.get("log_index"), int)
              and not (with_proof and "inclusion_proof" in licence)}
    indices = sorted(wanted)
    found = {}
    for start in range(0, len(indices), _LOOKUP_CHUNK):
        rows = session.execute(select(LogEntry.idx, LogEntry.statement, LogEntry.logged_at, LogEntry.kid)
                               .where(LogEntry.idx.in_(indices[start:start + _LOOKUP_CHUNK]),
                                      LogEntry.kind == "licence"))
        found.update({statement: LicenceVersion.from_payload(jws.logged_payload(statement), log_index=idx,
                                                             logged_at=logged_at, kid=kid, statement=statement)
                      for idx, statement, logged_at, kid in rows if wanted[idx] == statement})
    return found
