"""Verification without a connection: snapshots and stored answers.

Depends only on ``registry.crypto`` and ``registry.domain``: no Flask, no
SQLAlchemy, no database. A border post keeps the registry's public keys
(``/.well-known/jwks.json``, pinned once) and a recent snapshot; from those
it answers verifications with the same rules and ``reason`` codes as the
service, and checks stored answers that carry inclusion proofs.

Run it without the server's settings as ``python -m registry.offline``:

    python -m registry.offline verify SNAPSHOT.json OPERATOR_ID --as AL [--at TIME] --jwks JWKS.json
    python -m registry.offline check-answer ANSWER.json --snapshot SNAPSHOT.json --jwks JWKS.json
    python -m registry.offline check-answer ENTRY.tlog-proof --snapshot SNAPSHOT.json --jwks JWKS.json

Both take a witness policy, ``--witness VKEY`` (repeatable) and ``--quorum K``
(default: every witness given): evidence whose checkpoint note is not
cosigned by K of those witnesses is refused, and the refusal names who did
sign. A quorum of independent witnesses is what shows that the registry
showed this very history to them, not one made for you alone.

A web page or another program can check an answer against the registry's
published keys instead: ``check_answer(answer, Anchors.published(...))``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from joserfc.jwk import OKPKey

from .crypto import cosignature, jws, keys, merkle, note, tlogproof
from .domain import identifiers
from .domain.agreement import AgreementVersion
from .domain.licence import LicenceVersion
from .domain.party_keys import NEVER, KeyHistory, KeyLedger, KeyStatement, KeyValidity
from .domain.recognition import Result, recognise
from .domain.timefmt import now_utc, parse_moment, parse_time


class OfflineError(Exception):
    """Something failed verification; the message says what and where."""


def _b64(value: str, where: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, TypeError, ValueError) as exc:
        raise OfflineError(f"{where}: not base64") from exc


@dataclass(frozen=True)
class WitnessPolicy:
    """Which witnesses a partner trusts, and how many of them must have cosigned a checkpoint."""

    witnesses: tuple[cosignature.CosignatureVerifier, ...]
    quorum: int

    @classmethod
    def from_vkeys(cls, vkeys: Sequence[str] | None, quorum: int | None = None) -> WitnessPolicy | None:
        """The policy of ``--witness`` keys and ``--quorum`` (default: all of them); None without witnesses."""
        if not vkeys:
            if quorum is not None:
                raise OfflineError("--quorum needs the witnesses' keys (--witness VKEY, repeatable)")
            return None
        verifiers = []
        for vkey in vkeys:
            try:
                verifier = cosignature.CosignatureVerifier.from_vkey(vkey.strip())
            except note.NoteError as exc:
                raise OfflineError(f"witness key {vkey!r}: {exc}") from exc
            if verifier not in verifiers:
                verifiers.append(verifier)
        quorum = len(verifiers) if quorum is None else quorum
        if not 1 <= quorum <= len(verifiers):
            raise OfflineError(f"--quorum {quorum} is not between 1 and the {len(verifiers)} witnesses given")
        return cls(tuple(verifiers), quorum)

    def check(self, signed_note: str, what: str) -> list[str]:
        """The names of the policy's witnesses whose cosignatures on ``signed_note`` hold; too few is an error."""
        try:
            _, verified = note.verified_by(signed_note, self.witnesses)
        except note.NoteError as exc:
            raise OfflineError(f"{what}: {exc}") from exc
        names = [verifier.name for verifier in verified]
        if len(names) < self.quorum:
            signed = ", ".join(names) if names else "none of them"
            raise OfflineError(f"{what} is cosigned by {len(names)} of the {len(self.witnesses)} trusted witnesses "
                               f"({signed}); the policy asks for {self.quorum}")
        return names


@dataclass(frozen=True)
class RegistryKeys:
    """The registry's answer key and log key, from a JWK set."""

    answer: dict[str, OKPKey]
    log: dict[str, OKPKey]

    @classmethod
    def from_jwks(cls, jwks: dict[str, Any]) -> RegistryKeys:
        answer, log = {}, {}
        for jwk in (jwks or {}).get("keys", []):
            try:
                key = keys.public_from_jwk(jwk)
            except keys.KeyFileError as exc:
                raise OfflineError(f"registry JWK {jwk.get('kid')}: {exc}") from exc
            (log if jwk.get("aeo_use") == "log" else answer)[key.kid] = key
        if not answer:
            raise OfflineError("no registry answer key in the JWK set")
        return cls(answer, log)

    def verify_answer_key_jws(self, text: str, typ: str, what: str) -> dict[str, Any]:
        try:
            envelope = jws.open_envelope(text, typ)
            key = self.answer.get(envelope.kid)
            if key is None:
                raise OfflineError(f"{what} is signed by {envelope.kid}, not by a registry answer key")
            jws.verify_envelope(envelope, key)
            return envelope.payload()
        except jws.JWSError as exc:
            raise OfflineError(f"{what}: {exc}") from exc


@dataclass
class PartyKeys:
    """Every party's keys: who could sign when a statement was logged, and what a revocation voided since.

    Built from the logged key statements themselves (``from_statements``, as
    snapshots carry them), replayed with the service's own rules; or, for
    what ``/api/v1/parties`` publishes, from each key's dates and log indices
    (``from_published``), which say when a key was enrolled, retired or
    revoked but not when a void enrolment became void.
    """

    public: dict[str, OKPKey]
    final: KeyHistory
    ledger: KeyLedger | None = None

    def at(self, log_index: int) -> KeyHistory:
        """The keys as they stood when the entry at ``log_index`` was logged."""
        if self.ledger is not None:
            return self.ledger.before(log_index)
        return _as_of(self.final, log_index)

    def is_void(self, kid: str, logged_at: datetime) -> bool:
        return self.final.is_void(kid, logged_at)

    def verify_statement(self, text: str, typ: str, party: str, log_index: int, logged_at: datetime,
                         what: str) -> jws.Envelope:
        """The issuer's signature, by a key that could sign it when it was logged (it may be void since)."""
        try:
            envelope = jws.open_envelope(text, typ)
        except jws.JWSError as exc:
            raise OfflineError(f"{what}: {exc}") from exc
        refusal = self.at(log_index).refusal(envelope.kid, party, log_index, logged_at)
        if refusal:
            raise OfflineError(f"{what}: {refusal} when it was logged")
        try:
            jws.verify_envelope(envelope, self.public[envelope.kid])
        except jws.JWSError as exc:
            raise OfflineError(f"{what}: issuer signature: {exc}") from exc
        return envelope


def _as_of(final: KeyHistory, log_index: int) -> KeyHistory:
    """``final`` without the retirements and revocations logged at or after ``log_index``."""
    earlier = {}
    for kid, validity in final.keys.items():
        if validity.retired_index is not None and validity.retired_index >= log_index:
            validity = replace(validity, retired_index=None, retired_at=None)
        if validity.revoked_index is not None and validity.revoked_index >= log_index:
            validity = replace(validity, revoked_at=None, revoked_index=None)
        earlier[kid] = replace(validity, void=False)
    return KeyHistory(final.statements, earlier, frozenset(), _void_from(earlier))


def _void_from(validities: dict[str, KeyValidity]) -> dict[str, datetime]:
    return {kid: NEVER if v.void else v.revoked_at for kid, v in validities.items()
            if v.void or v.revoked_at is not None}


def _check_leaf(leaf_text: str, statement: str, expected: dict[str, Any], what: str) -> dict[str, Any]:
    """The leaf names this statement: its digest and the identifiers it claims."""
    try:
        leaf = json.loads(leaf_text)
    except (TypeError, ValueError) as exc:
        raise OfflineError(f"{what}: leaf is not JSON") from exc
    if leaf.get("statement_sha256") != hashlib.sha256(statement.encode()).hexdigest():
        raise OfflineError(f"{what}: the leaf's statement_sha256 is not the statement's digest")
    wrong = sorted(k for k, v in expected.items() if leaf.get(k) != v)
    if wrong:
        raise OfflineError(f"{what}: the leaf's {', '.join(wrong)} differ from the statement")
    return leaf


def party_keys_from(parties: Sequence[dict[str, Any]], tree_size: int | None = None) -> PartyKeys:
    """Party keys as ``/api/v1/parties`` publishes them: each key's validity, as the registry's tables hold it.

    A retirement or revocation counts only if it was logged below ``tree_size``.
    """
    public, validities = {}, {}
    for party in parties:
        for key in party["keys"]:
            public_key = keys.public_from_jwk(key["jwk"])
            if public_key.kid != key["kid"]:
                raise OfflineError(f"party {party['code']}: key {key['kid']} is not its JWK's thumbprint")
            validities[public_key.kid] = KeyValidity(
                public_key.kid, party["code"], parse_time(key["valid_from"]), key["log_index"],
                key.get("retired_log_index"), parse_time(key["revoked_at"]) if key.get("revoked_at") else None,
                revoked_index=key.get("revoked_log_index"), void=key.get("status") == "void")
            public[public_key.kid] = public_key
    final = KeyHistory((), validities, frozenset(), _void_from(validities))
    if tree_size is not None:
        final = _as_of(final, tree_size)
    return PartyKeys(public, final)


def party_keys_from_statements(entries: Sequence[dict[str, Any]], registry: RegistryKeys) -> PartyKeys:
    """Party keys replayed from their logged statements (``{"log_index", "statement", "leaf"}``, any order).

    An enrolment by the administrator is signed with the registry's answer
    key; every other change with a key of the party that could sign when it
    was logged. A statement that no key could have signed then is tampering,
    not a void statement, and fails the whole set.
    """
    opened = []
    for entry in entries:
        what = f"key statement at log index {entry['log_index']}"
        statement = entry["statement"]
        try:
            envelope = jws.open_envelope(statement, jws.TYP_PARTY_KEY)
            payload = envelope.payload()
            target = keys.public_from_jwk(payload.get("jwk"))
        except (jws.JWSError, keys.KeyFileError) as exc:
            raise OfflineError(f"{what}: {exc}") from exc
        leaf = _check_leaf(entry["leaf"], statement, {"kind": "party_key", "party": payload.get("party"),
                                                      "kid": envelope.kid}, what)
        change = KeyStatement.from_payload(payload, index=entry["log_index"], logged_at=parse_time(leaf["logged_at"]),
                                           signer=envelope.kid, kid=target.kid)
        opened.append((change, envelope, target, what))
    ledger = KeyLedger([change for change, *_ in opened])
    public: dict[str, OKPKey] = {}
    for change, envelope, target, what in sorted(opened, key=lambda item: item[0].index):
        if envelope.kid in registry.answer:
            if change.action != "add":
                raise OfflineError(f"{what}: the registry's key only enrols keys")
            registry.verify_answer_key_jws(envelope.text, jws.TYP_PARTY_KEY, what)
        else:
            refusal = ledger.before(change.index).refusal(envelope.kid, change.party, change.index, change.logged_at)
            if refusal:
                raise OfflineError(f"{what}: {refusal} when it was logged")
            try:
                jws.verify_envelope(envelope, public[envelope.kid])
            except jws.JWSError as exc:
                raise OfflineError(f"{what}: signature: {exc}") from exc
        public.setdefault(target.kid, target)
    return PartyKeys(public, ledger.final, ledger)


@dataclass
class Anchors:
    """What a stored answer is checked against: the registry's keys, the parties' keys, the log key."""

    registry: RegistryKeys
    party_keys: PartyKeys
    log_verifier: note.Verifier | None
    known_statements: dict[str, LicenceVersion] = field(default_factory=dict)

    @classmethod
    def published(cls, registry_jwks: dict[str, Any], log_verifier_key: str,
                  parties: Sequence[dict[str, Any]] | None = None,
                  key_statements: Sequence[dict[str, Any]] | None = None) -> Anchors:
        """From what the registry publishes: /.well-known/jwks.json, /api/v1/log, and the parties' keys,
        as the logged key statements (preferred) or as /api/v1/parties lists them."""
        registry = RegistryKeys.from_jwks(registry_jwks)
        try:
            verifier = note.Verifier.from_vkey(log_verifier_key)
        except note.NoteError as exc:
            raise OfflineError(f"log verifier key: {exc}") from exc
        _check_log_key(verifier, registry)
        party_keys = (party_keys_from_statements(key_statements, registry) if key_statements is not None
                      else party_keys_from(parties or []))
        return cls(registry, party_keys, verifier)


def _check_log_key(verifier: note.Verifier, registry: RegistryKeys) -> None:
    if registry.log and keys.from_public(verifier.key).kid not in registry.log:
        raise OfflineError("the log verifier key is not the registry's log key")


@dataclass
class Snapshot:
    generated_at: datetime
    checkpoint: note.Checkpoint
    checkpoint_note: str
    registry: RegistryKeys
    party_keys: PartyKeys
    licence_versions: list[LicenceVersion]  # void ones included; answers skip them (``void_from``)
    agreement_versions: list[AgreementVersion]
    log_verifier: note.Verifier
    undisclosed: tuple[str, frozenset[str]]
    parties: frozenset[str]
    cosigned_by: tuple[str, ...] = ()  # the policy's witnesses that cosigned its checkpoint

    @property
    def void_from(self) -> Mapping[str, datetime]:
        return self.party_keys.final.void_from

    @property
    def anchors(self) -> Anchors:
        return Anchors(self.registry, self.party_keys, self.log_verifier,
                       {v.statement: v for v in self.licence_versions if v.statement})


def open_snapshot(document: dict[str, Any], trusted_jwks: dict[str, Any],
                  policy: WitnessPolicy | None = None) -> Snapshot:
    """Check a snapshot fully: its signature, its checkpoint, every statement and leaf in it.

    ``trusted_jwks`` are the registry's keys as pinned by the border post.
    The keys a snapshot carries prove nothing about who made it, so there
    is no answer without trusted ones. With a witness ``policy``, its
    checkpoint must carry the quorum of cosignatures (checked first, before
    the statements: it is cheap and decides).
    """
    if not isinstance(trusted_jwks, dict) or not trusted_jwks.get("keys"):
        raise OfflineError("no trusted registry keys given (the registry's /.well-known/jwks.json, pinned)")
    text = document.get("jws") if isinstance(document, dict) else None
    if not isinstance(text, str):
        raise OfflineError("not a snapshot: no jws member")
    registry = RegistryKeys.from_jwks(trusted_jwks)
    payload = registry.verify_answer_key_jws(text, jws.TYP_SNAPSHOT, "snapshot")
    try:
        cosigned_by = () if policy is None else tuple(policy.check(payload["checkpoint"]["note"],
                                                                    "the snapshot's checkpoint"))
        return replace(_read_snapshot(payload, registry), cosigned_by=cosigned_by)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, OfflineError):
            raise
        raise OfflineError(f"snapshot is malformed: {exc!r}") from exc


def _log_verifier(payload: dict[str, Any], registry: RegistryKeys) -> note.Verifier:
    try:
        verifier = note.Verifier.from_vkey(payload["registry"]["log_verifier_key"])
    except note.NoteError as exc:
        raise OfflineError(f"snapshot: log verifier key: {exc}") from exc
    _check_log_key(verifier, registry)
    return verifier


def _read_snapshot(payload: dict[str, Any], registry: RegistryKeys) -> Snapshot:
    verifier = _log_verifier(payload, registry)
    try:
        checkpoint = note.open_checkpoint(payload["checkpoint"]["note"], verifier)
    except note.NoteError as exc:
        raise OfflineError(f"snapshot checkpoint: {exc}") from exc
    size = checkpoint.tree_size
    key_entries = payload.get("party_keys")
    if key_entries is None:  # a snapshot made before snapshots carried the key statements
        party_keys = party_keys_from(payload["parties"], size)
    else:
        if any(not 0 <= entry["log_index"] < size for entry in key_entries):
            raise OfflineError("snapshot: a key statement lies beyond its checkpoint")
        party_keys = party_keys_from_statements(key_entries, registry)
    licence_versions = []
    for licence in payload["licences"]:
        for item in licence["versions"]:
            licence_versions.append(_licence_version(licence, item, party_keys, size))
    agreement_versions = []
    for agreement in payload["agreements"]:
        for item in agreement["versions"]:
            agreement_versions.append(_agreement_version(agreement, item, registry, size))
    undisclosed = payload["undisclosed"]
    return Snapshot(parse_time(payload["generated_at"]), checkpoint, payload["checkpoint"]["note"], registry,
                    party_keys, licence_versions, agreement_versions, verifier,
                    (undisclosed["salt"], frozenset(undisclosed["digests"])),
                    frozenset(party["code"] for party in payload["parties"]))


def _licence_version(licence: dict[str, Any], item: dict[str, Any], party_keys: PartyKeys,
                     size: int) -> LicenceVersion:
    what = f"licence {licence['certificate']} at log index {item['log_index']}"
    if not 0 <= item["log_index"] < size:
        raise OfflineError(f"{what}: beyond the snapshot's checkpoint")
    statement = item["statement"]
    try:
        envelope = jws.open_envelope(statement, jws.TYP_LICENCE)
        payload = envelope.payload()
    except jws.JWSError as exc:
        raise OfflineError(f"{what}: {exc}") from exc
    leaf = _check_leaf(item["leaf"], statement, {
        "kind": "licence", "party": licence["party"], "subject": licence["certificate"],
        "version": payload.get("version"), "kid": envelope.kid}, what)
    logged_at = parse_time(leaf["logged_at"])
    party_keys.verify_statement(statement, jws.TYP_LICENCE, licence["party"], item["log_index"], logged_at, what)
    if payload.get("party") != licence["party"] or payload.get("certificate") != licence["certificate"]:
        raise OfflineError(f"{what}: the statement is about another licence or party")
    return LicenceVersion.from_payload(payload, log_index=item["log_index"], logged_at=logged_at,
                                       kid=envelope.kid, statement=statement)


def _agreement_version(agreement: dict[str, Any], item: dict[str, Any], registry: RegistryKeys,
                       size: int) -> AgreementVersion:
    what = f"agreement {agreement['id']} at log index {item['log_index']}"
    if not 0 <= item["log_index"] < size:
        raise OfflineError(f"{what}: beyond the snapshot's checkpoint")
    payload = registry.verify_answer_key_jws(item["statement"], jws.TYP_AGREEMENT, what)
    leaf = _check_leaf(item["leaf"], item["statement"], {
        "kind": "agreement", "subject": agreement["id"], "version": payload.get("version")}, what)
    return AgreementVersion.from_payload(payload, log_index=item["log_index"], logged_at=parse_time(leaf["logged_at"]),
                                         statement=item["statement"])


def answer(snapshot: Snapshot, operator_id: str, verifier: str, at: datetime) -> Result:
    """What the service would answer at the snapshot's checkpoint."""
    try:
        normalised = identifiers.operator_id(operator_id)
    except identifiers.IdentifierError as exc:
        return Result(operator_id, "unknown_operator", error=f"operator_id: {exc}")
    return recognise(normalised, verifier, at, snapshot.licence_versions, snapshot.agreement_versions,
                     snapshot.void_from, snapshot.undisclosed, parties=snapshot.parties)


# --- stored answers ---------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerReport:
    """What a checked answer proves."""

    verifier: str
    at: str
    produced_at: str
    next_update: str
    fresh: bool
    tree_size: int
    results: list[dict[str, Any]]
    proven: int  # licences whose inclusion in the log was proven
    void: int = 0  # licence statements that a key revocation voided after the answer was made
    cosigned_by: tuple[str, ...] | None = None  # with a witness policy: its witnesses that cosigned

    def as_json(self) -> dict[str, Any]:
        found = {"valid": True, "verifier": self.verifier, "at": self.at, "produced_at": self.produced_at,
                 "next_update": self.next_update, "fresh": self.fresh, "tree_size": self.tree_size,
                 "licences_proven_in_log": self.proven, "licences_void_since": self.void, "results": self.results}
        if self.cosigned_by is not None:
            found["cosigned_by"] = list(self.cosigned_by)
        return found


def check_answer(document: dict[str, Any], anchors: Anchors | Snapshot, now: datetime | None = None,
                 policy: WitnessPolicy | None = None) -> AnswerReport:
    """Check a stored answer: the registry's signature, each issuer's, each inclusion proof.

    ``anchors`` are the keys to trust: a snapshot's, or the registry's
    published ones. A licence without a statement (batch answers leave them
    out by default) is reported but proves nothing by itself. With a witness
    ``policy`` the answer must carry its checkpoint note (``proofs=true`` or
    ``cosigned=K``), cosigned by the policy's quorum.
    """
    if isinstance(anchors, Snapshot):
        anchors = anchors.anchors
    if not isinstance(document, dict) or not isinstance(document.get("jws"), str):
        raise OfflineError("not a verification answer: no jws member")
    verification = anchors.registry.verify_answer_key_jws(document["jws"], jws.TYP_VERIFICATION, "answer")
    if "verification" in document and document["verification"] != verification:
        raise OfflineError("answer: the verification object differs from the signed payload")
    try:
        report = _check_verification(verification, anchors, now or now_utc())
        if policy is None:
            return report
        if "note" not in verification["checkpoint"]:
            raise OfflineError("the answer carries no checkpoint note for the witness policy to check: "
                               "ask for it with proofs=true or cosigned=K")
        return replace(report, cosigned_by=tuple(policy.check(verification["checkpoint"]["note"],
                                                              "the answer's checkpoint")))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, OfflineError):
            raise
        raise OfflineError(f"answer is malformed: {exc!r}") from exc


def _checkpoint_of(verification: dict[str, Any], anchors: Anchors) -> note.Checkpoint | None:
    stated = verification["checkpoint"]
    if "note" not in stated:
        return None
    if anchors.log_verifier is None:
        raise OfflineError("answer: the log key that signs its checkpoint is not known")
    try:
        checkpoint = note.open_checkpoint(stated["note"], anchors.log_verifier)
    except note.NoteError as exc:
        raise OfflineError(f"answer checkpoint: {exc}") from exc
    if checkpoint.tree_size != stated["tree_size"] or base64.b64encode(checkpoint.root_hash).decode() != stated[
            "root_hash"]:
        raise OfflineError("answer: its checkpoint note and its tree_size/root_hash disagree")
    return checkpoint


def _check_verification(verification: dict[str, Any], anchors: Anchors, now: datetime) -> AnswerReport:
    checkpoint = _checkpoint_of(verification, anchors)
    proven = void = 0
    summaries = []
    for position, result in enumerate(verification["results"]):
        for licence in result["licences"]:
            what = f"result {position} ({result['operator_id']}), licence {licence['certificate']}"
            proof = licence.get("inclusion_proof")
            statement = licence.get("statement")
            logged_at = None
            if proof is not None and checkpoint is not None:
                if statement is None:
                    raise OfflineError(f"{what}: an inclusion proof without its statement proves nothing here")
                leaf = _check_leaf(proof["leaf"], statement, {
                    "kind": "licence", "party": licence["party"], "subject": licence["certificate"],
                    "version": licence["version"]}, what)
                try:
                    merkle.verify_inclusion(licence["log_index"], checkpoint.tree_size,
                                            merkle.leaf_hash(proof["leaf"].encode()),
                                            [_b64(h, what) for h in proof["hashes"]], checkpoint.root_hash)
                except merkle.ProofError as exc:
                    raise OfflineError(f"{what}: inclusion proof: {exc}") from exc
                proven += 1
                logged_at = parse_time(leaf["logged_at"])
            if statement is not None:
                void += _check_licence_statement(anchors, licence, statement, logged_at, what)
        summaries.append({"operator_id": result["operator_id"], "recognised": result["recognised"],
                          "reason": result["reason"],
                          "agreement": (result.get("recognition") or {}).get("agreement")})
    next_update = verification["next_update"]
    return AnswerReport(verification["verifier"], verification["at"], verification["produced_at"], next_update,
                        parse_time(next_update) >= now, verification["checkpoint"]["tree_size"], summaries, proven,
                        void)


def _check_licence_statement(anchors: Anchors, licence: dict[str, Any], statement: str,
                             logged_at: datetime | None, what: str) -> bool:
    """Check the issuer's statement behind a licence of an answer; whether it is void now."""
    if logged_at is None:
        known = anchors.known_statements.get(statement)
        if known is None:
            raise OfflineError(f"{what}: statement is in neither the snapshot nor a proven leaf")
        logged_at = known.logged_at
    envelope = anchors.party_keys.verify_statement(statement, jws.TYP_LICENCE, licence["party"],
                                                   licence["log_index"], logged_at, what)
    payload = envelope.payload()
    claimed = {k: licence[k] for k in ("certificate", "party", "version", "type", "status", "valid_from")}
    signed = {k: payload.get(k) for k in claimed}
    if signed != claimed:
        wrong = sorted(k for k in claimed if claimed[k] != signed[k])
        raise OfflineError(f"{what}: the answer's {', '.join(wrong)} differ from the issuer's statement")
    return anchors.party_keys.is_void(envelope.kid, logged_at)


# --- proof files (c2sp.org/tlog-proof) -------------------------------------------------------


@dataclass(frozen=True)
class ProofReport:
    """What a checked proof file proves: this leaf is entry ``index`` of the log the checkpoint commits to."""

    index: int
    tree_size: int
    root_hash: str
    leaf: dict[str, Any]
    cosigned_by: tuple[str, ...] | None = None

    def as_json(self) -> dict[str, Any]:
        found = {"valid": True, "kind": "tlog-proof", "index": self.index, "tree_size": self.tree_size,
                 "root_hash": self.root_hash, "leaf": self.leaf}
        if self.cosigned_by is not None:
            found["cosigned_by"] = list(self.cosigned_by)
        return found


def check_proof(text: str, log_verifier: note.Verifier, policy: WitnessPolicy | None = None,
                statement: str | None = None) -> ProofReport:
    """Check a proof file the registry made: the log key's signature, the witness policy, the inclusion.

    Its ``extra`` holds the logged leaf (identifiers and the statement's
    SHA-256, no operator data). With ``statement``, that statement must be the one the leaf names.
    """
    try:
        proof = tlogproof.parse(text)
    except tlogproof.ProofFormatError as exc:
        raise OfflineError(f"proof file: {exc}") from exc
    try:
        checkpoint = note.open_checkpoint(proof.checkpoint, log_verifier, log_verifier.name)
    except note.NoteError as exc:
        raise OfflineError(f"proof file checkpoint: {exc}") from exc
    cosigned_by = None if policy is None else tuple(policy.check(proof.checkpoint, "the proof's checkpoint"))
    if proof.extra is None:
        raise OfflineError("proof file: no extra line holding the logged leaf")
    try:
        leaf = json.loads(proof.extra.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise OfflineError("proof file: its extra data is not a logged leaf (JSON)") from exc
    if not isinstance(leaf, dict):
        raise OfflineError("proof file: its extra data is not a logged leaf (a JSON object)")
    try:
        merkle.verify_inclusion(proof.index, checkpoint.tree_size, merkle.leaf_hash(proof.extra), proof.hashes,
                                checkpoint.root_hash)
    except merkle.ProofError as exc:
        raise OfflineError(f"proof file: inclusion proof of entry {proof.index}: {exc}") from exc
    if statement is not None and leaf.get("statement_sha256") != hashlib.sha256(statement.encode()).hexdigest():
        raise OfflineError("proof file: the statement given is not the one the leaf names")
    return ProofReport(proof.index, checkpoint.tree_size, base64.b64encode(checkpoint.root_hash).decode(), leaf,
                       cosigned_by)


# --- command line ---------------------------------------------------------------------------


def _read_json(path: str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise OfflineError(f"{path}: cannot read JSON: {exc}") from exc


def _trusted(jwks_path: str | None, trusted_jwks: dict[str, Any] | None) -> dict[str, Any]:
    if jwks_path:
        return _read_json(jwks_path)
    if trusted_jwks is None:
        raise OfflineError("--jwks is required: the registry's /.well-known/jwks.json, pinned when you enrolled; "
                           "a snapshot's own keys prove nothing about who made it")
    return trusted_jwks


def verify_command(snapshot_path: str, operator_id: str, verifier: str, at: str | None,
                   trusted_jwks: dict[str, Any], policy: WitnessPolicy | None = None) -> dict[str, Any]:
    snapshot = open_snapshot(_read_json(snapshot_path), trusted_jwks, policy)
    try:
        moment = parse_moment(at) if at else now_utc()
    except ValueError as exc:
        raise OfflineError(f"--at: {exc}") from exc
    return answer(snapshot, operator_id, verifier, moment).as_json()


def check_answer_command(answer_path: str, snapshot_path: str, trusted_jwks: dict[str, Any],
                         policy: WitnessPolicy | None = None) -> dict[str, Any]:
    """An answer (JSON) or a proof file (c2sp.org/tlog-proof), checked with the snapshot's keys."""
    try:
        text = Path(answer_path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OfflineError(f"{answer_path}: cannot read: {exc}") from exc
    snapshot = open_snapshot(_read_json(snapshot_path), trusted_jwks)
    if tlogproof.is_proof(text):
        return check_proof(text, snapshot.log_verifier, policy).as_json()
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise OfflineError(f"{answer_path}: neither JSON nor a {tlogproof.HEADER} proof: {exc}") from exc
    return check_answer(document, snapshot, policy=policy).as_json()


def add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--witness", action="append", metavar="VKEY",
                        help="a witness's verifier key to trust (repeatable)")
    parser.add_argument("--quorum", type=int, metavar="K",
                        help="how many of the --witness keys must have cosigned (default: all)")


def main(argv: Sequence[str] | None = None, trusted_jwks: dict[str, Any] | None = None) -> int:
    """The command line; ``trusted_jwks`` stand in for ``--jwks`` where the caller holds the registry's keys."""
    parser = argparse.ArgumentParser(prog="python -m registry.offline", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="answer a verification from a snapshot")
    verify.add_argument("snapshot")
    verify.add_argument("operator_id")
    verify.add_argument("--as", dest="verifier", required=True, help="the verifying party's code")
    verify.add_argument("--at", help="RFC 3339 time or YYYY-MM-DD; default now")
    verify.add_argument("--jwks", help="the registry's pinned /.well-known/jwks.json (required)")
    add_policy_arguments(verify)
    check = commands.add_parser("check-answer", help="check a stored verification answer, or a .tlog-proof file")
    check.add_argument("answer")
    check.add_argument("--snapshot", required=True, help="a snapshot: the issuers' keys and the log key")
    check.add_argument("--jwks", help="the registry's pinned /.well-known/jwks.json (required)")
    add_policy_arguments(check)
    args = parser.parse_args(argv)
    try:
        trusted = _trusted(args.jwks, trusted_jwks)
        policy = WitnessPolicy.from_vkeys(args.witness, args.quorum)
        if args.command == "verify":
            output = verify_command(args.snapshot, args.operator_id, args.verifier, args.at, trusted, policy)
        else:
            output = check_answer_command(args.answer, args.snapshot, trusted, policy)
    except OfflineError as exc:
        print(f"verification failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(output, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["Anchors", "AnswerReport", "OfflineError", "ProofReport", "Snapshot", "WitnessPolicy", "answer",
           "check_answer", "check_proof", "main", "open_snapshot"]
