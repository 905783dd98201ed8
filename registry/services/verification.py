"""Signed verification answers, computed at a checkpoint from logged statements.

A verification reads three things (``Lookups``): the caller of the token,
the log's size, and the versions of each identifier's licences logged below
that size, from the facts kept beside each version (``licence_version.facts``,
a projection of its statement that `audit` holds to it), so that a lookup
reads the statements themselves only when the answer includes them. It then
recognises each id with the pure rules of ``domain.recognition`` against a
``Snapshot`` of what the log below that size says (agreements, void keys,
parties), and signs the answer.

The answer is a pure function of the statements logged below the checkpoint's
tree size and of ``at``: versions logged later (by a publish racing this read)
are left out, so anyone replaying the log gets the same results. That is what
lets ``runtime.verify_cache`` answer repeated lookups from memory: it offers
the same ``Lookups`` and gives byte for byte what the database would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Protocol

import orjson
from sqlalchemy import bindparam, join, select
from sqlalchemy.orm import Session

from ..crypto import jws
from ..crypto.canonical import canonical_json_typed
from ..domain import identifiers
from ..domain.agreement import AgreementVersion
from ..domain.licence import LicenceVersion, counts
from ..domain.recognition import AgreementsInEffect, Result, claiming, histories, recognise
from ..domain.timefmt import format_time, parse_time
from ..errors import InvalidInputError, NotFoundError, UnavailableError
from ..keyring import Keyring
from ..store.models import Checkpoint, LicenceIdentifier, LogEntry, Party
from ..store.models import LicenceVersion as LicenceVersionRow
from ..store.reads import Prepared, Reader
from . import agreements, log, tokens
from .parties import key_history

# Ids per query of a batch: well under SQLite's limit on bound parameters,
# and enough of them to make each query worth its round trip.
_CHUNK = 250


@dataclass(frozen=True)
class CheckpointView:
    """What an answer needs of a signed checkpoint; safe to share between requests and threads."""

    tree_size: int
    root_hash: bytes
    note: str


@dataclass(frozen=True)
class Snapshot:
    """What an answer is computed from: one checkpoint and what the log below it says.

    Agreements and what key revocations void are functions of the log below
    ``checkpoint.tree_size`` alone (the log never changes an entry), so a
    snapshot can serve every request made at that size.
    """

    checkpoint: CheckpointView
    agreements: tuple[AgreementVersion, ...]
    void_from: Mapping[str, datetime]  # party_keys.KeyHistory.void_from
    parties: frozenset[str]  # whose identifiers only they may claim
    # AgreementsInEffect by moment: the answers made in one second (about
    # "now", most of them) share one, and what it works out per licence type.
    _in_effect: dict[tuple[datetime, Any], AgreementsInEffect] = field(default_factory=dict, compare=False,
                                                                        repr=False)

    @property
    def size(self) -> int:
        return self.checkpoint.tree_size

    def agreements_in_effect(self, at: datetime) -> AgreementsInEffect:
        """``AgreementsInEffect(self.agreements, at)``, made once per moment asked about lately."""
        key = (at, at.utcoffset())  # equal instants in other offsets fall on other days
        found = self._in_effect.get(key)
        if found is None:
            if len(self._in_effect) >= 8:
                self._in_effect.clear()
            found = self._in_effect[key] = AgreementsInEffect(self.agreements, at)
        return found


def load_snapshot(session: Session, size: int | None = None) -> Snapshot:
    """The snapshot at ``size`` (default: the log's current size)."""
    row = session.get(Checkpoint, size) if size is not None else None
    if row is None:
        row = log.latest_checkpoint(session)
    if row is None:
        raise UnavailableError("the log has no checkpoint yet; run `registry init`")
    checkpoint = CheckpointView(row.tree_size, bytes(row.root_hash), row.note)
    return Snapshot(checkpoint, tuple(agreements.domain_versions(session, checkpoint.tree_size)),
                    MappingProxyType(dict(key_history(session, checkpoint.tree_size).void_from)),
                    frozenset(session.execute(select(Party.code)).scalars()))


def current(session: Session) -> Snapshot:
    """The snapshot at the log's current size."""
    return load_snapshot(session, log.tree_size(Reader.of(session)))


# --- what a verification reads -----------------------------------------------------------------

# Every version of every licence an identifier ever named, logged below a size:
# its facts alone, or with its statement (one more row to read, in the log).
_FACT_COLUMNS = (LicenceIdentifier.identifier, LicenceVersionRow.log_index, LicenceVersionRow.facts)
_VERSIONS = join(LicenceIdentifier, LicenceVersionRow, LicenceVersionRow.certificate == LicenceIdentifier.certificate)
_WITH_STATEMENTS = _VERSIONS.join(LogEntry, LogEntry.idx == LicenceVersionRow.log_index)


def _versions_query(condition, statements: bool) -> Prepared:
    columns = (*_FACT_COLUMNS, LogEntry.statement) if statements else _FACT_COLUMNS
    return Prepared(select(*columns).select_from(_WITH_STATEMENTS if statements else _VERSIONS)
                    .where(condition, LicenceVersionRow.log_index < bindparam("size")))


# Built once: one id (the common case), or a full chunk of ids (the last chunk
# is padded with a repeated id, so one statement serves every batch).
_ID_NAMES = tuple(f"i{n}" for n in range(_CHUNK))
_QUERIES = {
    (many, statements): _versions_query(
        LicenceIdentifier.identifier.in_([bindparam(name) for name in _ID_NAMES]) if many
        else LicenceIdentifier.identifier == bindparam("identifier"), statements)
    for many in (False, True) for statements in (False, True)
}


class Lookups:
    """What a verification reads, straight from the database through ``reader``.

    ``runtime.verify_cache`` offers the same three reads from memory for
    repeated single verifications; nothing here depends on it.
    """

    def __init__(self, reader: Reader):
        self.reader = reader
        self._size: int | None = None  # the log's size, as read with the last token

    def caller(self, token: str) -> tokens.Caller | None:
        """Who holds ``token``, or None; the log's size comes in the same round trip (``log_size``)."""
        caller, self._size = tokens.authenticate(self.reader, token)
        return caller

    def log_size(self) -> int:
        """The log's size: as read with the token, so that the answer is made at what the caller saw."""
        return self._size if self._size is not None else log.tree_size(self.reader)

    def versions(self, wanted: Iterable[str], size: int, statements: bool = False) -> dict[str, list[LicenceVersion]]:
        """Every version, logged below ``size``, of each licence that ever named each identifier.

        ``statements``: with each version's signed statement (``LicenceVersion.statement``).
        """
        wanted = sorted(set(wanted))
        found: dict[str, list[LicenceVersion]] = {identifier: [] for identifier in wanted}
        if len(wanted) == 1:
            chunks = [self.reader.all(_QUERIES[False, statements], identifier=wanted[0], size=size)]
        else:
            runs = []
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start:start + _CHUNK]
                chunk += [chunk[-1]] * (_CHUNK - len(chunk))
                runs.append({"size": size, **dict(zip(_ID_NAMES, chunk, strict=True))})
            chunks = self.reader.each(_QUERIES[True, statements], runs)
        # Each chunk parsed as it comes, while the database works on the next.
        for rows in chunks:
            for identifier, idx, facts, *statement in rows:
                found[identifier].append(LicenceVersion.from_facts(orjson.loads(facts), log_index=idx,
                                                                   statement=statement[0] if statement else None))
        return found

    def inclusion(self, indices: Iterable[int], size: int) -> dict[int, tuple[str, list[bytes]]]:
        """Each entry's leaf and audit path in the tree of ``size``."""
        indices = sorted(set(indices))
        if not indices:
            return {}
        paths = log.inclusion_proofs(self.reader, indices, size)
        leaves = log.leaves(self.reader, indices)
        return {index: (leaves[index], paths[index]) for index in indices}


@dataclass(frozen=True)
class Query:
    verifier: str
    operator_ids: Sequence[str]
    at: datetime | None
    nonce: str | None
    include_statements: bool = True
    proofs: bool = False
    single: bool = False  # one id in the path: a malformed one is a 400, not a result
    first: int = 0  # the position of operator_ids[0] in the request (a part of a batch)
    cosigned: int | None = None  # answer at the newest checkpoint with this many cosignatures

    @property
    def with_note(self) -> bool:
        """Whether the answer carries its checkpoint's (cosigned) note."""
        return self.proofs or self.cosigned is not None


def results_for(lookups: Lookups, snapshot: Snapshot, query: Query, at: datetime) -> list[Result]:
    """One result per id asked, in order; a malformed id gets an ``error`` and no lookup."""
    normalised: list[str | None] = []
    problems: dict[int, str] = {}
    # A batch checks national numbers (checksums, per id) only for the ids it does
    # not find below: an id the registry holds passed that check when published.
    form = identifiers.operator_id if query.single else identifiers.operator_id_form
    for position, raw in enumerate(query.operator_ids):
        try:
            normalised.append(form(raw))
        except identifiers.IdentifierError as exc:
            if query.single:
                raise InvalidInputError(f"operator_id: {exc}", {"operator_id": [str(exc)]}) from exc
            normalised.append(None)
            problems[position] = str(exc)
    versions = lookups.versions([n for n in normalised if n], snapshot.size, query.include_statements)
    for position, identifier in enumerate(normalised):
        if identifier is not None and not versions[identifier]:
            try:
                identifiers.operator_id(query.operator_ids[position])
            except identifiers.IdentifierError as exc:
                normalised[position] = None
                problems[position] = str(exc)
    in_effect = snapshot.agreements_in_effect(at)
    results = []
    # An id asked again (5,000 copies of one fit in a 95 KB batch) is
    # answered once: every position it holds gets the same Result.
    answered: dict[str, Result] = {}
    for position, identifier in enumerate(normalised):
        if identifier is None:
            raw = query.operator_ids[position]
            results.append(Result(raw if isinstance(raw, str) else str(raw), "unknown_operator",
                                  error=f"operator_ids.{query.first + position}: {problems[position]}"))
        else:
            result = answered.get(identifier)
            if result is None:
                result = answered[identifier] = recognise(identifier, query.verifier, at, versions[identifier],
                                                          snapshot.agreements, snapshot.void_from,
                                                          parties=snapshot.parties, in_effect=in_effect)
            results.append(result)
    return results


def answer(lookups: Lookups, snapshot: Snapshot, keyring: Keyring, query: Query, *, now: datetime,
           ttl_seconds: int, parts: BatchParts | None = None, note: str | None = None) -> bytes:
    """The signed answer at ``snapshot``'s size, ``{"verification": {...}, "jws": "..."}``, as the response body.

    Its ``verification`` is written as the very bytes signed: encoding a
    5,000-result answer once instead of twice (canonical for the signature,
    then again for the body) saves a good share of a batch. ``parts`` may
    answer half of a large batch meanwhile; ``note`` is the checkpoint's note
    with the cosignatures held, for answers that carry it.
    """
    at = query.at or now
    checkpoint: dict[str, Any] = {"tree_size": snapshot.size, "root_hash": log.b64(snapshot.checkpoint.root_hash)}
    if query.with_note:
        # The checkpoint's note, with the witnesses' cosignatures where the caller has them (``note``):
        # evidence a partner can check against its own witness policy.
        checkpoint["note"] = note or snapshot.checkpoint.note
    if query.proofs:
        rendered = rendered_results(lookups, snapshot, query, at)
        _attach_proofs(lookups, snapshot.size, rendered)
        results = canonical_json_typed(rendered)
    else:
        results = _results_json(lookups, snapshot, query, at, parts)
    verification = {
        "verifier": query.verifier,
        "at": format_time(at),
        "nonce": query.nonce,
        "produced_at": format_time(now),
        "next_update": format_time(now + timedelta(seconds=ttl_seconds)),
        "checkpoint": checkpoint,
        # The canonical JSON of a list is its items' canonical JSON between
        # brackets, so the results, encoded apart (and perhaps in two
        # processes), go in as they are.
        "results": orjson.Fragment(results),
    }
    # Every value here is made by the registry or taken from a LicenceVersion or
    # AgreementVersion, whose shown fields are checked when they are made: no
    # float, enum or UUID can be in it.
    payload = canonical_json_typed(verification)
    signed = jws.sign_bytes(payload, keyring.answer_key, jws.TYP_VERIFICATION)
    return b'{"verification":' + payload + b',"jws":"' + signed.encode("ascii") + b'"}'


def rendered_results(lookups: Lookups, snapshot: Snapshot, query: Query, at: datetime) -> list[dict[str, Any]]:
    """Each position's result as JSON; a result repeated (an id asked again) is rendered once and shared."""
    rendered: dict[int, dict[str, Any]] = {}
    out = []
    for result in results_for(lookups, snapshot, query, at):
        item = rendered.get(id(result))
        if item is None:
            item = rendered[id(result)] = result.as_json(include_statements=query.include_statements)
        out.append(item)
    return out


def results_json(lookups: Lookups, snapshot: Snapshot, query: Query, at: datetime) -> bytes:
    """The canonical JSON of ``rendered_results``: what a part of an answer is made of, in any process."""
    rendered = rendered_results(lookups, snapshot, query, at)
    distinct = {id(item): item for item in rendered}
    if len(distinct) == len(rendered):
        return canonical_json_typed(rendered)
    # A repeated result is encoded once; the canonical JSON of a list is its
    # items' canonical JSON between brackets, so the copies are joined as bytes.
    encoded = {key: canonical_json_typed(item) for key, item in distinct.items()}
    return b"[" + b",".join(encoded[id(item)] for item in rendered) + b"]"


class BatchParts(Protocol):
    """Somewhere else to answer part of a batch (``runtime.batches.BatchHelper``)."""

    split_min: int

    def submit(self, part: bytes) -> Callable[[], bytes | None] | None:
        """Hands over ``part`` (see ``part_request``); a call that waits for its results' JSON
        (None if they did not come), or None if nothing was handed over."""


def part_request(size: int, query: Query, at: datetime) -> bytes:
    """What another process needs to answer ``query`` at ``size`` and ``at`` (``part_json``)."""
    return orjson.dumps({"size": size, "verifier": query.verifier, "operator_ids": list(query.operator_ids),
                         "at": format_time(at), "include_statements": query.include_statements,
                         "first": query.first})


def part_json(lookups: Lookups, snapshot_at: Callable[[int], Snapshot], request: bytes) -> bytes:
    """The canonical JSON of the results a ``part_request`` asks for, exactly as the asker would make them."""
    asked = orjson.loads(request)
    snapshot = snapshot_at(asked["size"])
    if snapshot.size != asked["size"]:
        raise UnavailableError(f"no checkpoint at tree size {asked['size']}")
    query = Query(asked["verifier"], asked["operator_ids"], None, None,
                  include_statements=asked["include_statements"], first=asked["first"])
    return results_json(lookups, snapshot, query, parse_time(asked["at"]))


def _results_json(lookups: Lookups, snapshot: Snapshot, query: Query, at: datetime,
                  parts: BatchParts | None) -> bytes:
    """The canonical JSON of the results; of a large batch, the second half answered by ``parts`` meanwhile.

    A result is a pure function of its id, the snapshot and ``at``, so the
    halves can be answered apart. Reading, recognising and rendering cost
    some tens of microseconds of Python an id, held to one core by the GIL:
    another process puts the machine's other core on half of them.
    """
    ids = query.operator_ids
    waiting = None
    # Copies of one id cost nothing after the first (results_for): they do not make a batch large.
    asked = len({i for i in ids if isinstance(i, str)}) + sum(1 for i in ids if not isinstance(i, str))
    if parts is not None and asked >= max(parts.split_min, 2):
        half = len(ids) // 2
        rest = replace(query, operator_ids=ids[half:], first=query.first + half)
        waiting = parts.submit(part_request(snapshot.size, rest, at))
        if waiting is not None:
            query = replace(query, operator_ids=ids[:half])
    try:
        own = results_json(lookups, snapshot, query, at)
    finally:
        # Always collected, so that a reply is never left for the next asker.
        other = waiting() if waiting is not None else None
    if waiting is None:
        return own
    if other is None:  # the other process failed or is gone: its half is answered here
        other = results_json(lookups, snapshot, rest, at)
    return own[:-1] + b"," + other[1:]


def _attach_proofs(lookups: Lookups, size: int, rendered: list[dict[str, Any]]) -> None:
    proofs = lookups.inclusion({licence["log_index"] for result in rendered for licence in result["licences"]}, size)
    for result in rendered:
        for licence in result["licences"]:
            leaf, hashes = proofs[licence["log_index"]]
            licence["inclusion_proof"] = {"leaf": leaf, "hashes": [log.b64(h) for h in hashes]}


# --- the trader's self-check ---------------------------------------------------------


def public_check(session: Session, operator_id: str, certificate: str, now: datetime) -> dict[str, Any]:
    """A trader checks its own licence; either number wrong gives the same 404.

    ``recognised_by`` lists exactly the parties whose verification of the
    operator id, made now, answers ``recognised`` on the strength of this
    licence: the very rules and data of their answers, not a second opinion.
    """
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
    versions = Lookups(Reader.of(session)).versions([operator_id], snapshot.size)[operator_id]
    counting = [v for v in versions if counts(v, snapshot.void_from)]
    history = next((h for h in claiming(operator_id, histories(counting), now, snapshot.parties)
                    if h[0].certificate == certificate), None)
    if history is None:
        raise NotFoundError("no licence matches this operator id and certificate number")
    latest = history[-1]

    def answer(verifier: str, licence_versions_: list[LicenceVersion]) -> Result:
        return recognise(operator_id, verifier, now, licence_versions_, snapshot.agreements, snapshot.void_from,
                         parties=snapshot.parties, in_effect=snapshot.agreements_in_effect(now))

    recognised_by = []
    for party in sorted(snapshot.parties):
        result = answer(party, versions)
        if result.recognised and result.operator is not None and result.operator.certificate == certificate:
            recognised_by.append({"party": party, "agreement": result.recognition.agreement,
                                  "types": list(result.recognition.types)})
    # The licence's own state, as its issuer sees it (the operator's other licences aside).
    national = answer(latest.party, history)
    shown = national.operator or latest
    return {
        "certificate": certificate,
        "party": latest.party,
        "operator": {"id": latest.operator_id, "name": latest.operator_name} if latest.consent_public else None,
        "type": shown.type,
        "status": shown.status,
        "suspended_scope": shown.suspended_scope,
        "valid_from": shown.valid_from.isoformat(),
        "valid_until": shown.valid_until.isoformat() if shown.valid_until else None,
        "reason": national.reason,
        "consent": {"partners": latest.consent_partners, "public": latest.consent_public},
        "shared_with_partners": latest.consent_partners,
        "recognised_by": recognised_by,
        "checked_at": format_time(now),
        "checkpoint": {"tree_size": snapshot.size, "root_hash": log.b64(snapshot.checkpoint.root_hash)},
    }
