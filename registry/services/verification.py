"""Signed verification answers, computed at a checkpoint from logged statements.

Licence versions are read from the facts kept beside each version
(``licence_version.facts``, a projection of its statement that `audit`
holds to it), so a lookup does not read the statements themselves unless the
answer includes them.

The answer is a pure function of the statements logged below the checkpoint's
tree size and of ``at``: versions logged later (by a publish racing this read)
are left out, so anyone replaying the log gets the same results.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Protocol

import orjson
from sqlalchemy import and_, bindparam, join, select
from sqlalchemy.orm import Session

from ..crypto import jws
from ..crypto.canonical import canonical_json_typed
from ..db import Prepared, Reader
from ..domain import identifiers
from ..domain.agreement import AgreementVersion
from ..domain.licence import LicenceVersion, counts
from ..domain.recognition import AgreementsInEffect, Result, claiming, histories, recognise
from ..domain.timefmt import format_time, parse_time
from ..errors import InvalidInputError, NotFoundError, UnavailableError
from ..hot import HotCache
from ..keyring import Keyring
from ..models import ApiToken, Checkpoint, LicenceIdentifier, LogEntry, LogHead, Party
from ..models import LicenceVersion as LicenceVersionRow
from . import agreements, log, tokens, witnesses
from .parties import key_history

# Ids per query of a batch. A batch's queries run on several connections at
# once (db.FanOut): half a 5,000-id batch makes ten, enough to keep eight busy.
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


class SnapshotCache:
    """The latest snapshot, kept between requests and keyed by the log's tree size.

    A request reads the head's size (one indexed row) and gets the snapshot
    for exactly that size, reloaded whenever the log has grown, so answers
    stay the same pure function of the log below their checkpoint. Threads
    may race to reload; each gets a correct snapshot and the last one stays.
    """

    def __init__(self) -> None:
        self._snapshot: Snapshot | None = None

    def at(self, size: int, load: Callable[[], Snapshot]) -> Snapshot:
        snapshot = self._snapshot
        if snapshot is None or snapshot.size != size:
            snapshot = load()
            self._snapshot = snapshot
        return snapshot


SessionSource = Callable[[], Session]


def current(session: Session) -> Snapshot:
    """The snapshot at the log's current size."""
    return load_snapshot(session, log.tree_size(session))


class ParsedVersions:
    """Licence versions read from their facts, the most recently used kept.

    A pure memo of ``LicenceVersion.from_facts``: an entry is used only when
    the row gives the very same facts (and statement), so it can never change
    an answer, whatever database or restored copy the row came from.
    """

    def __init__(self, capacity: int = 20_000):
        self.capacity = capacity
        self._entries: OrderedDict[int, tuple[tuple[str, str | None], LicenceVersion]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, idx: int, facts: str, statement: str | None = None, keep: bool = True) -> LicenceVersion:
        """The version from its facts (and statement), kept for the next call only if ``keep``."""
        source = (facts, statement)
        # OrderedDict.get is one C call, safe without the lock.
        entry = self._entries.get(idx)
        if entry is not None and entry[0] == source:
            if keep:
                with self._lock:
                    if idx in self._entries:
                        self._entries.move_to_end(idx)
            return entry[1]
        version = LicenceVersion.from_facts(orjson.loads(facts), log_index=idx, statement=statement)
        if keep:
            with self._lock:
                self._entries[idx] = (source, version)
                self._entries.move_to_end(idx)
                if len(self._entries) > self.capacity:
                    self._entries.popitem(last=False)
        return version


PARSED = ParsedVersions()


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


# The token check, the log's size and one id's versions below that size, in
# one statement: on PostgreSQL a verification is then one round trip, not two.
# The identifier is looked up only for a live token, and its versions only
# below the size the same row gives. A chain of left joins rather than one
# join nested in another: SQLite would build the nested one apart first.
_TOKEN_AND_ONE_ID = Prepared(
    tokens.lookup_select(*_FACT_COLUMNS[1:], LogEntry.statement)
    .outerjoin(LicenceIdentifier, and_(LicenceIdentifier.identifier == bindparam("identifier"),
                                       ApiToken.id.is_not(None)))
    .outerjoin(LicenceVersionRow, and_(LicenceVersionRow.certificate == LicenceIdentifier.certificate,
                                       LicenceVersionRow.log_index < LogHead.tree_size))
    .outerjoin(LogEntry, LogEntry.idx == LicenceVersionRow.log_index)
    .where(LogHead.id == 1)
)


def authenticate_one(reader: Reader, token: str, raw_id: str, hot: HotCache | None = None) -> tokens.Caller | None:
    """The caller of a token, with the versions for ``raw_id`` at the size it read as ``prefetched``.

    With a ``hot`` cache, from its current state when that holds both the
    token and the id (no query at all), and kept there when it does not.
    A malformed id is left to the view (after the token check, so a caller
    without a valid token gets 401, not 400).
    """
    try:
        identifier = identifiers.operator_id(raw_id)
    except identifiers.IdentifierError:
        return tokens.authenticate(reader, token)
    token_hash = tokens.token_hash(token)
    state = hot.current(reader) if hot is not None else None
    if state is not None:
        caller, versions = state.callers.get(token_hash), state.versions.get(identifier)
        if caller is not None and versions is not None:
            return replace(caller, prefetched={identifier: versions})
    rows = reader.all(_TOKEN_AND_ONE_ID, token_hash=token_hash, identifier=identifier)
    versions = [PARSED.get(idx, facts, statement)
                for _, _, _, _, idx, facts, statement in rows if idx is not None]
    caller = tokens.caller_of(rows[0] if rows else None, prefetched={identifier: versions})
    if state is not None and caller is not None:
        hot.keep(state, caller.tree_size, token_hash, caller, identifier, versions)
    return caller


def licence_versions(reader: Reader, wanted: Iterable[str], size: int,
                     statements: bool = False) -> dict[str, list[LicenceVersion]]:
    """Every version, logged below ``size``, of each licence that ever named each identifier.

    ``statements``: with each version's signed statement (``LicenceVersion.statement``).
    """
    wanted = sorted(set(wanted))
    found: dict[str, list[LicenceVersion]] = {identifier: [] for identifier in wanted}
    if len(wanted) == 1:
        chunks = [reader.all(_QUERIES[False, statements], identifier=wanted[0], size=size)]
    else:
        runs = []
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start:start + _CHUNK]
            chunk += [chunk[-1]] * (_CHUNK - len(chunk))
            runs.append({"size": size, **dict(zip(_ID_NAMES, chunk, strict=True))})
        chunks = reader.each(_QUERIES[True, statements], runs)
    # Each chunk parsed as it comes, while the database works on the next.
    # A batch uses the memo but does not fill it: thousands of ids asked
    # once would push out the ones single lookups keep asking about.
    get, keep = PARSED.get, len(wanted) == 1
    for rows in chunks:
        for identifier, idx, facts, *statement in rows:
            found[identifier].append(get(idx, facts, statement[0] if statement else None, keep))
    return found


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


def results_for(reader: Reader, snapshot: Snapshot, query: Query, at: datetime,
                prefetched: Mapping[str, list[LicenceVersion]] | None = None) -> list[Result]:
    """One result per id asked, in order; a malformed id gets an ``error`` and no lookup."""
    normalised: list[str | None] = []
    problems: dict[int, str] = {}
    # A batch checks national numbers (~10 us an id) only for the ids it does
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
    wanted = [n for n in normalised if n]
    if prefetched is not None and prefetched.keys() >= set(wanted):
        versions = prefetched  # read below snapshot.size with the token (authenticate_one)
    else:
        versions = licence_versions(reader, wanted, snapshot.size, query.include_statements)
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


def snapshot_at(cache: SnapshotCache, size: int, session: SessionSource) -> Snapshot:
    """The snapshot at ``size``, from the cache, or loaded through a session opened only then."""
    return cache.at(size, lambda: load_snapshot(session(), size))


def answer_body(reader: Reader, keyring: Keyring, query: Query, snapshot: Snapshot, session: SessionSource, *,
                now: datetime, ttl_seconds: int,
                prefetched: Mapping[str, list[LicenceVersion]] | None = None,
                helper: BatchParts | None = None) -> bytes:
    """The signed answer, ``{"verification": {...}, "jws": "..."}``, as the response body.

    Its ``verification`` is written as the very bytes signed: encoding a
    5,000-result answer once instead of twice (canonical for the signature,
    then again for the body) saves a good share of a batch. Lookups go
    through ``reader``; ``session`` is opened only for proofs; ``helper``
    may answer half of a large batch meanwhile.
    """
    at = query.at or now
    checkpoint: dict[str, Any] = {"tree_size": snapshot.size, "root_hash": log.b64(snapshot.checkpoint.root_hash)}
    if query.with_note:
        # With the witnesses' cosignatures as they stand now: evidence a partner can check against its own
        # witness policy. They sign the checkpoint, not the answer, so they change nothing else in it.
        checkpoint["note"] = witnesses.cosigned_note(session(), snapshot.checkpoint)
    if query.proofs:
        rendered = rendered_results(reader, snapshot, query, at, prefetched)
        _attach_proofs(session(), snapshot.size, rendered)
        results = canonical_json_typed(rendered)
    else:
        results = _results_json(reader, snapshot, query, at, prefetched, helper)
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


def rendered_results(reader: Reader, snapshot: Snapshot, query: Query, at: datetime,
                     prefetched: Mapping[str, list[LicenceVersion]] | None = None) -> list[dict[str, Any]]:
    """Each position's result as JSON; a result repeated (an id asked again) is rendered once and shared."""
    rendered: dict[int, dict[str, Any]] = {}
    out = []
    for result in results_for(reader, snapshot, query, at, prefetched):
        item = rendered.get(id(result))
        if item is None:
            item = rendered[id(result)] = result.as_json(include_statements=query.include_statements)
        out.append(item)
    return out


def results_json(reader: Reader, snapshot: Snapshot, query: Query, at: datetime,
                 prefetched: Mapping[str, list[LicenceVersion]] | None = None) -> bytes:
    """The canonical JSON of ``rendered_results``: what a part of an answer is made of, in any process."""
    rendered = rendered_results(reader, snapshot, query, at, prefetched)
    distinct = {id(item): item for item in rendered}
    if len(distinct) == len(rendered):
        return canonical_json_typed(rendered)
    # A repeated result is encoded once; the canonical JSON of a list is its
    # items' canonical JSON between brackets, so the copies are joined as bytes.
    encoded = {key: canonical_json_typed(item) for key, item in distinct.items()}
    return b"[" + b",".join(encoded[id(item)] for item in rendered) + b"]"


class BatchParts(Protocol):
    """Somewhere else to answer part of a batch (``batch_helper.BatchHelper``)."""

    split_min: int

    def submit(self, part: bytes) -> Callable[[], bytes | None] | None:
        """Hands over ``part`` (see ``part_request``); a call that waits for its results' JSON
        (None if they did not come), or None if nothing was handed over."""


def part_request(size: int, query: Query, at: datetime) -> bytes:
    """What another process needs to answer ``query`` at ``size`` and ``at`` (``part_json``)."""
    return orjson.dumps({"size": size, "verifier": query.verifier, "operator_ids": list(query.operator_ids),
                         "at": format_time(at), "include_statements": query.include_statements,
                         "first": query.first})


def part_json(reader: Reader, snapshots: SnapshotCache, session: SessionSource, request: bytes) -> bytes:
    """The canonical JSON of the results a ``part_request`` asks for, exactly as the asker would make them."""
    asked = orjson.loads(request)
    snapshot = snapshot_at(snapshots, asked["size"], session)
    if snapshot.size != asked["size"]:
        raise UnavailableError(f"no checkpoint at tree size {asked['size']}")
    query = Query(asked["verifier"], asked["operator_ids"], None, None,
                  include_statements=asked["include_statements"], first=asked["first"])
    return results_json(reader, snapshot, query, parse_time(asked["at"]))


def _results_json(reader: Reader, snapshot: Snapshot, query: Query, at: datetime,
                  prefetched: Mapping[str, list[LicenceVersion]] | None, helper: BatchParts | None) -> bytes:
    """The canonical JSON of the results; of a large batch, the second half answered by ``helper`` meanwhile.

    A result is a pure function of its id, the snapshot and ``at``, so the
    halves can be answered apart. Reading, recognising and rendering cost
    some tens of microseconds of Python an id, held to one core by the GIL:
    a helper process puts the machine's other core on half of them.
    """
    ids = query.operator_ids
    waiting = None
    # Copies of one id cost nothing after the first (results_for): they do not make a batch large.
    asked = len({i for i in ids if isinstance(i, str)}) + sum(1 for i in ids if not isinstance(i, str))
    if helper is not None and asked >= max(helper.split_min, 2):
        half = len(ids) // 2
        rest = replace(query, operator_ids=ids[half:], first=query.first + half)
        waiting = helper.submit(part_request(snapshot.size, rest, at))
        if waiting is not None:
            query = replace(query, operator_ids=ids[:half])
    try:
        own = results_json(reader, snapshot, query, at, prefetched)
    finally:
        # Always collected, so that a reply is never left for the next asker.
        other = waiting() if waiting is not None else None
    if waiting is None:
        return own
    if other is None:  # the helper failed or is gone: its half is answered here
        other = results_json(reader, snapshot, rest, at)
    return own[:-1] + b"," + other[1:]


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
    versions = licence_versions(Reader.of(session), [operator_id], snapshot.size)[operator_id]
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
