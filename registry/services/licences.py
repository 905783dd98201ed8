"""Publishing licence versions, one or a batch, and reading them back.

A publish checks every item, then appends every statement to the log and
indexes it, in one transaction that holds the log's append lock: all of a
batch lands, or none of it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from joserfc.jwk import OKPKey
from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from ..crypto import ijson, jws, keys
from ..crypto.canonical import canonical_json
from ..domain import identifiers, licence
from ..domain.licence import LicenceVersion
from ..domain.party_keys import KeyHistory, KeyValidity
from ..errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    RegistryError,
    SignatureError,
    UnprocessableError,
)
from ..keyring import Keyring
from ..store.bulk import insert_rows
from ..store.models import Licence as LicenceRow
from ..store.models import LicenceIdentifier, LogEntry, Party, PartyKey
from ..store.models import LicenceVersion as LicenceVersionRow
from . import log, statements
from .parties import hosted_signing_key, key_history, key_validity

_CHUNK = 500
_STATEMENT_SCHEMA = statements.StatementSchema()


@dataclass
class Published:
    """The outcome of one item: what the client gets back."""

    certificate: str
    payload: dict[str, Any]
    statement: str
    log_index: int
    created: bool = False  # a new licence
    appended: bool = False  # a new version; False when the same content was sent again

    def as_json(self) -> dict[str, Any]:
        return {"licence": self.payload, "statement": self.statement, "log_index": self.log_index}


@dataclass
class _State:
    """A licence as seen while a batch is checked: its latest version number, and the version that stands.

    ``status``, ``effective_at`` and ``payload`` are those of the latest
    version that is not void (``standing``), which a new version is judged
    against; when every version is void, nothing stands.
    """

    version: int
    status: str
    effective_at: datetime
    payload: dict[str, Any]
    statements: dict[int, tuple[str, int]] = field(default_factory=dict)  # version -> (statement, index)
    identifiers: set[str] = field(default_factory=set)
    in_database: bool = True
    standing: bool = True


@dataclass
class _Pending:
    certificate: str
    payload: dict[str, Any]  # JSON form, as signed
    loaded: dict[str, Any]  # typed form
    statement: str
    kid: str
    created: bool


class _Problems:
    """Errors per item; the batch answers with the gravest status among them."""

    _ORDER = (InvalidInputError, UnprocessableError, ForbiddenError, ConflictError)

    def __init__(self, prefix_for):
        self.prefix_for = prefix_for
        self.errors: dict[str, list[str]] = {}
        self.kinds: set[type[RegistryError]] = set()
        self.first: RegistryError | None = None

    def add(self, position: int, error: RegistryError) -> None:
        prefix = self.prefix_for(position)
        for name, messages in (error.errors or {"": [error.detail]}).items():
            path = ".".join(p for p in (prefix, name) if p) or "body"
            self.errors.setdefault(path, []).extend(messages)
        self.kinds.add(next((k for k in self._ORDER if isinstance(error, k)), InvalidInputError))
        self.first = self.first or error

    def raise_if_any(self, count: int) -> None:
        if not self.errors:
            return
        if count == 1 and self.first is not None and not self.prefix_for(0):
            raise self.first
        kind = next(k for k in self._ORDER if k in self.kinds)
        failed = len({path.split(".")[1] for path in self.errors if path.count(".")})
        raise kind(f"{failed or 'some'} of {count} licences were refused; nothing was published", self.errors)


def _load_states(session: Session, certificates: Sequence[str], keys_now: KeyHistory) -> dict[str, _State]:
    states: dict[str, _State] = {}
    # Core statements on the session's connection: a bulk import asks this of every certificate.
    connection = session.connection()
    for start in range(0, len(certificates), _CHUNK):
        chunk = certificates[start:start + _CHUNK]
        rows = connection.execute(
            select(LicenceRow.certificate, LicenceRow.version, LicenceRow.status, LicenceRow.effective_at,
                   LogEntry.statement, LogEntry.kid, LogEntry.logged_at)
            .join(LogEntry, LogEntry.idx == LicenceRow.log_index)
            .where(LicenceRow.certificate.in_(chunk))
        )
        for certificate, version, status, effective_at, statement, kid, logged_at in rows:
            # The row shows the standing version; it shows a void one only when every version is void.
            states[certificate] = _State(version, status, effective_at, jws.logged_payload(statement),
                                         standing=not keys_now.is_void(kid, logged_at))
        if not states:
            continue
        for identifier, certificate in connection.execute(
            select(LicenceIdentifier.identifier, LicenceIdentifier.certificate)
            .where(LicenceIdentifier.certificate.in_(chunk))
        ):
            states[certificate].identifiers.add(identifier)
    return states


def _statement_of(session: Session, certificate: str, version: int) -> tuple[str, int, str, datetime] | None:
    """The logged statement of a version, its log index, and its signing key and logging time."""
    row = session.execute(
        select(LogEntry.statement, LogEntry.idx, LogEntry.kid, LogEntry.logged_at)
        .join(LicenceVersionRow, LicenceVersionRow.log_index == LogEntry.idx)
        .where(LicenceVersionRow.certificate == certificate, LicenceVersionRow.version == version)
    ).one_or_none()
    return tuple(row) if row else None


class _Checker:
    """Checks items in order, against the database and the items before them."""

    def __init__(self, session: Session, keyring: Keyring, party: str, states: dict[str, _State],
                 writer: log.Writer, keys_now: KeyHistory):
        self.session = session
        self.keyring = keyring
        self.party = party
        self.states = states
        self.writer = writer
        self.keys_now = keys_now
        self._hosted: OKPKey | bool | None = False  # False: not looked up yet
        self._keys: dict[str, tuple[PartyKey, KeyValidity, OKPKey]] = {}
        self._parties: frozenset[str] | None = None

    def hosted_key(self) -> OKPKey:
        if self._hosted is False:
            self._hosted = hosted_signing_key(self.session, self.keyring, self.party)
        if self._hosted is None:
            raise ConflictError(f"party {self.party} has no hosted key; send statements signed with its own key")
        return self._hosted

    def signing_key(self, kid: str) -> tuple[PartyKey, KeyValidity, OKPKey]:
        if kid not in self._keys:
            row = self.session.get(PartyKey, kid)
            if row is None or row.party_code != self.party:
                whose = f"a key of {row.party_code}" if row else "not a key the registry knows"
                message = f"signing key {kid} is {whose}, not a key of {self.party}"
                raise SignatureError(message, {"statement": [message]})
            self._keys[kid] = (row, key_validity(row), keys.public_from_jwk(json.loads(row.jwk)))
        return self._keys[kid]

    def check(self, certificate: str, body: dict[str, Any], log_index: int) -> _Pending | Published:
        if not certificate.startswith(self.party):
            raise ForbiddenError(f"certificate {certificate} is not of party {self.party}",
                            {"certificate": [f"must begin with {self.party}, the party of your token"]})
        state = self.states.get(certificate)
        if "statement" in body:
            loaded = statements.load(_STATEMENT_SCHEMA, body)
            return self._check_statement(certificate, loaded["statement"], state, log_index)
        return self._check_fields(certificate, statements.load_licence_fields(body), state)

    def _check_statement(self, certificate: str, text: str, state: _State | None,
                         log_index: int) -> _Pending | Published:
        def bad(message: str) -> SignatureError:
            return SignatureError(message, {"statement": [message]})

        try:
            # I-JSON before anything else: what the log keeps for ever, every partner must read alike.
            envelope, raw = ijson.open_statement(text, jws.TYP_LICENCE)
        except jws.JWSError as exc:
            raise bad(str(exc)) from exc
        replayed = self._replay(certificate, text, raw.get("version"), state)
        if replayed is not None:
            return replayed
        row, validity, public = self.signing_key(envelope.kid)
        refusal = validity.refusal(log_index, self.writer.now)
        if refusal is None and row.status != "active":
            refusal = f"key {row.kid} is {row.status}"
        if refusal:
            raise bad(refusal)
        try:
            jws.verify_envelope(envelope, public)
        except jws.JWSError as exc:
            raise bad(str(exc)) from exc
        if raw.get("party") != self.party:
            raise ForbiddenError(f"the statement is for party {raw.get('party')!r}, not {self.party}",
                            {"statement.party": [f"must be {self.party}, the party of your token"]})
        loaded = statements.load(statements.LicencePayloadSchema(), raw, "statement")
        if loaded["certificate"] != certificate:
            raise InvalidInputError("the statement is for another certificate",
                               {"statement.certificate": [f"must be {certificate}, as in the path"]})
        expected = state.version + 1 if state else 1
        if loaded["version"] != expected:
            raise ConflictError(f"version {loaded['version']} is not the next version of {certificate}",
                           {"statement.version": [f"must be {expected}"]})
        # The client gets back exactly what it signed.
        return self._accept(certificate, raw, loaded, text, envelope.kid, state, "statement.")

    def _replay(self, certificate: str, text: str, version: Any, state: _State | None) -> Published | None:
        """The very statement already logged (and not void since): answer as before and add nothing."""
        if state is None or not isinstance(version, int) or not 1 <= version <= state.version:
            return None
        earlier = state.statements.get(version)
        if earlier is None:
            logged = _statement_of(self.session, certificate, version)
            if logged is None or self.keys_now.is_void(logged[2], logged[3]):
                return None
            earlier = logged[:2]
        if earlier[0] != text:
            return None
        return Published(certificate, jws.logged_payload(text), text, earlier[1])

    def _check_fields(self, certificate: str, fields_: dict[str, Any], state: _State | None) -> _Pending | Published:
        version = state.version + 1 if state else 1
        loaded = {**fields_, "certificate": certificate, "party": self.party, "version": version}
        if loaded["effective_at"] is None:
            loaded["effective_at"] = self.writer.now
        payload = statements.licence_payload_json(loaded)
        if state is not None and state.standing and _same_content(state.payload, payload,
                                                                  fields_["effective_at"] is None):
            # PUT is idempotent: the same fields again change nothing. (What stands may be an
            # older version than the latest, if that is void: then it is the one answered.)
            text, index = state.statements.get(state.version) or self._standing_statement(certificate)
            return Published(certificate, state.payload, text, index)
        key = self.hosted_key()
        statement = jws.sign_bytes(canonical_json(payload), key, jws.TYP_LICENCE)
        return self._accept(certificate, payload, loaded, statement, key.kid, state, "")

    def _standing_statement(self, certificate: str) -> tuple[str, int]:
        return tuple(self.session.execute(
            select(LogEntry.statement, LogEntry.idx).join(LicenceRow, LicenceRow.log_index == LogEntry.idx)
            .where(LicenceRow.certificate == certificate)).one())

    def parties(self) -> frozenset[str]:
        if self._parties is None:
            self._parties = frozenset(self.session.execute(select(Party.code)).scalars())
        return self._parties

    def check_claims(self, operator: dict[str, Any], prefix: str) -> None:
        """Who may claim an identifier: the operator's own id is the issuer's; no other party's ever;
        any other alias one party at a time."""
        elsewhere: dict[str, str] = {}
        for field_, identifier in [("operator.id", operator["id"]),
                                   *((f"operator.aliases.{n}", alias) for n, alias in enumerate(operator["aliases"]))]:
            owner = identifier[:2]
            if owner == self.party:
                continue
            if field_ == "operator.id" or owner in self.parties():
                message = (f"must begin with {self.party}, the issuing party's code" if field_ == "operator.id"
                           else f"{identifier} is an identifier of party {owner}; only {owner} may claim it")
                raise UnprocessableError(message, {prefix + field_: [message]})
            elsewhere[identifier] = field_
        if not elsewhere:
            return
        holders = current_claims(self.session, elsewhere, self.party, self.keys_now)
        errors = {prefix + elsewhere[identifier]: [f"{identifier} is listed by licence {certificate} of "
                                                   f"{certificate[:2]}; an alias belongs to one party at a time"]
                  for identifier, certificate in sorted(holders.items())}
        if errors:
            raise ConflictError(f"{len(errors)} identifier(s) are claimed by another party's licence", errors)

    def _accept(self, certificate: str, payload: dict[str, Any], loaded: dict[str, Any], statement: str,
                kid: str, state: _State | None, prefix: str) -> _Pending:
        effective_at = loaded["effective_at"] or self.writer.now
        self.check_claims(loaded["operator"], prefix)
        if state is not None and state.standing:
            try:
                licence.check_transition(state.status, loaded["status"])
            except licence.LifecycleError as exc:
                raise ConflictError(str(exc), {prefix + exc.field: [str(exc)]}) from exc
            if effective_at < state.effective_at:
                message = f"must not be before the effective_at of version {state.version}"
                raise ConflictError(message, {prefix + "effective_at": [message]})
        return _Pending(certificate, payload, loaded, statement, kid, created=state is None)

    def advance(self, pending: _Pending, index: int) -> None:
        """Let later items of the batch see this one as the licence's latest version."""
        state = self.states.get(pending.certificate)
        if state is None:
            state = self.states[pending.certificate] = _State(0, "", self.writer.now, {}, in_database=False)
        state.standing = True
        state.version = pending.loaded["version"]
        state.status = pending.loaded["status"]
        state.effective_at = pending.loaded["effective_at"] or self.writer.now
        state.payload = pending.payload
        state.statements[state.version] = (pending.statement, index)


def _same_content(current: dict[str, Any], new: dict[str, Any], ignore_effective_at: bool) -> bool:
    ignored = {"version", "effective_at"} if ignore_effective_at else {"version"}
    return {k: v for k, v in current.items() if k not in ignored} == {
        k: v for k, v in new.items() if k not in ignored}


def split_certificate(item: Any) -> tuple[Any, Any]:
    """A batch item is a body that also names its certificate."""
    if not isinstance(item, dict):
        return None, item
    return item.get("certificate"), {k: v for k, v in item.items() if k != "certificate"}


def publish(session: Session, keyring: Keyring, party: str, items: Sequence[tuple[str, Any]], now: datetime,
            *, batch: bool, limit: int | None = None) -> tuple[list[Published], int]:
    """Publish (certificate, body) items for ``party``, all or nothing; bodies hold no certificate.

    Returns each item's outcome and the log's size after them. A single PUT
    reports errors by field; a batch prefixes them ``licences.N.``.
    """
    if limit is not None and len(items) > limit:
        raise InvalidInputError(f"{len(items)} licences in one batch; the limit is {limit}",
                                {"licences": [f"at most {limit} items per batch"]})
    problems = _Problems((lambda n: f"licences.{n}") if batch else (lambda n: ""))
    certificates: list[str | None] = []
    for position, (raw_certificate, _) in enumerate(items):
        try:
            certificates.append(identifiers.certificate(raw_certificate))
        except identifiers.IdentifierError as exc:
            problems.add(position, InvalidInputError(str(exc), {"certificate": [str(exc)]}))
            certificates.append(None)
    with log.writing(session, keyring.log_signer, now) as writer:
        known = sorted({c for c in certificates if c})
        keys_now = key_history(session)
        checker = _Checker(session, keyring, party, _load_states(session, known, keys_now), writer, keys_now)
        outcomes: list[_Pending | Published | None] = []
        next_index = writer.size
        for position, ((_, body), certificate) in enumerate(zip(items, certificates, strict=True)):
            outcome = None
            if certificate is not None:
                try:
                    if not isinstance(body, dict):
                        raise InvalidInputError("each licence must be a JSON object", {"": ["must be an object"]})
                    outcome = checker.check(certificate, body, next_index)
                except RegistryError as exc:
                    problems.add(position, exc)
            if isinstance(outcome, _Pending):
                checker.advance(outcome, next_index)
                next_index += 1
            outcomes.append(outcome)
        problems.raise_if_any(len(items))
        pending = [o for o in outcomes if isinstance(o, _Pending)]
        indices = writer.append([
            log.NewEntry("licence", party, p.certificate, p.loaded["version"], p.kid, p.statement) for p in pending
        ])
        _index(session, checker.states, pending, indices, now)
        size = writer.size
    results = []
    index_of = dict(zip((id(p) for p in pending), indices, strict=True))
    for outcome in outcomes:
        if isinstance(outcome, _Pending):
            results.append(Published(outcome.certificate, outcome.payload, outcome.statement,
                                     index_of[id(outcome)], created=outcome.created, appended=True))
        else:
            results.append(outcome)
    return results, size


def current_claims(session: Session, wanted: Iterable[str], party: str, keys_now: KeyHistory) -> dict[str, str]:
    """Of ``wanted`` identifiers, those that the standing version of another party's licence lists, by certificate."""
    found: dict[str, str] = {}
    rows = session.execute(
        select(LicenceIdentifier.identifier, LicenceRow.certificate, LicenceRow.log_index, LicenceVersionRow.facts)
        .join(LicenceRow, LicenceRow.certificate == LicenceIdentifier.certificate)
        .join(LicenceVersionRow, LicenceVersionRow.log_index == LicenceRow.log_index)
        .where(LicenceIdentifier.identifier.in_(sorted(set(wanted))), LicenceRow.party_code != party)
    )
    for identifier, certificate, index, facts in rows:
        version = LicenceVersion.from_facts(orjson.loads(facts), log_index=index)
        if identifier in version.identifiers and licence.counts(version, keys_now.void_from):
            found.setdefault(identifier, certificate)
    return found


def facts_text(payload: dict[str, Any], logged_at: datetime, kid: str) -> str:
    """The ``licence_version.facts`` of a version: written when it is logged, checked by ``audit``."""
    return canonical_json(licence.facts(payload, logged_at=logged_at, kid=kid)).decode()


def _index(session: Session, states: dict[str, _State], pending: Sequence[_Pending], indices: Sequence[int],
           now: datetime) -> None:
    """Write the rows that find and order the new log entries."""
    current: dict[str, dict[str, Any]] = {}
    versions, new_identifiers = [], []
    seen = {certificate: set(state.identifiers) for certificate, state in states.items()}
    for item, index in zip(pending, indices, strict=True):
        loaded = item.loaded
        operator = loaded["operator"]
        current[item.certificate] = {
            "certificate": item.certificate,
            "party_code": loaded["party"],
            "version": loaded["version"],
            "status": loaded["status"],
            "type": loaded["type"],
            "operator_id": operator["id"],
            "consent_partners": loaded["consent"]["partners"],
            "valid_from": loaded["valid_from"],
            "valid_until": loaded["valid_until"],
            "effective_at": loaded["effective_at"] or now,
            "updated_at": now,
            "log_index": index,
        }
        versions.append({"certificate": item.certificate, "version": loaded["version"], "log_index": index,
                         "facts": facts_text(item.payload, now, item.kid)})
        known = seen.setdefault(item.certificate, set())
        for identifier in [operator["id"], *operator["aliases"]]:
            if identifier not in known:
                known.add(identifier)
                new_identifiers.append({"identifier": identifier, "certificate": item.certificate})
    created = [row for c, row in current.items() if not states[c].in_database]
    changed = [row for c, row in current.items() if states[c].in_database]
    insert_rows(session, LicenceRow, created)
    if changed:
        session.execute(update(LicenceRow), changed)
    insert_rows(session, LicenceVersionRow, versions)
    insert_rows(session, LicenceIdentifier, new_identifiers)


# --- reading ------------------------------------------------------------------


def _record(statement: str, index: int, void: bool = False) -> dict[str, Any]:
    record = {"licence": jws.logged_payload(statement), "statement": statement, "log_index": index}
    if void:
        record["void"] = True
    return record


def get(session: Session, party: str, certificate: str) -> dict[str, Any]:
    """The current version and the whole history; an authority sees only its own party's."""
    try:
        certificate = identifiers.certificate(certificate)
    except identifiers.IdentifierError as exc:
        raise InvalidInputError(str(exc), {"certificate": [str(exc)]}) from exc
    row = session.get(LicenceRow, certificate)
    if row is None or row.party_code != party:
        if row is not None or not certificate.startswith(party):
            raise ForbiddenError(f"licence {certificate} is not of party {party}")
        raise NotFoundError(f"no licence {certificate}")
    keys_now = key_history(session)
    history = [
        _record(statement, index, keys_now.is_void(kid, logged_at))
        for statement, index, kid, logged_at in session.execute(
            select(LogEntry.statement, LogEntry.idx, LogEntry.kid, LogEntry.logged_at)
            .join(LicenceVersionRow, LicenceVersionRow.log_index == LogEntry.idx)
            .where(LicenceVersionRow.certificate == certificate)
            .order_by(LicenceVersionRow.version)
        )
    ]
    # What stands (the row's version) is the current one; a void later version shows only in the history.
    return {**next(r for r in history if r["log_index"] == row.log_index), "history": history}


def list_page(session: Session, party: str, *, status: str | None, type_: str | None,
              updated_since: datetime | None, limit: int, cursor: str | None) -> dict[str, Any]:
    """The party's licences in log order, so a client can sync with ``updated_since`` and the cursor."""
    after = _read_cursor(cursor)
    conditions = [LicenceRow.party_code == party, LicenceRow.log_index > after]
    if status:
        conditions.append(LicenceRow.status == status)
    if type_:
        conditions.append(LicenceRow.type == type_)
    if updated_since:
        conditions.append(LicenceRow.updated_at >= updated_since)
    rows = session.execute(
        select(LogEntry.statement, LogEntry.idx)
        .join(LicenceRow, LicenceRow.log_index == LogEntry.idx)
        .where(and_(*conditions))
        .order_by(LicenceRow.log_index)
        .limit(limit + 1)
    ).all()
    items = [_record(statement, index) for statement, index in rows[:limit]]
    more = len(rows) > limit
    return {"items": items, "next_cursor": _make_cursor(rows[limit - 1][1]) if more else None}


def _make_cursor(after: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")


def _read_cursor(cursor: str | None) -> int:
    if not cursor:
        return -1
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        after = value["after"]
        if not isinstance(after, int) or not -1 <= after <= statements.MAX_LOG_INDEX:
            raise ValueError
        return after
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError("cursor is not one this service gave out", {"cursor": ["invalid cursor"]}) from exc
