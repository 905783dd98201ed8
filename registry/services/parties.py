"""Parties and their keys: enrolment by the administrator, rotation by the party.

Every key change is a logged statement of typ ``aeo-party-key+jws``. The
administrator's enrolment of a party's first key is signed with the
registry's answer key, so the log shows which keys the operator added; every
later change must be signed by a current key of the party itself.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from joserfc.jwk import OKPKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..crypto import ijson, jws, keys
from ..domain import identifiers
from ..domain.party_keys import ACTIONS, KeyHistory, KeyLedger, KeyStatement, KeyValidity, replay, voids_its_signer
from ..domain.timefmt import format_time, parse_time
from ..errors import ConflictError, ForbiddenError, InvalidInputError, NotFoundError, SignatureError, field_errors
from ..keyring import Keyring
from ..store.models import LogEntry, Party, PartyKey
from . import log, standing


def key_validity(row: PartyKey) -> KeyValidity:
    """A key's validity as the table keeps it (``project_keys`` wrote it from the log)."""
    return KeyValidity(row.kid, row.party_code, row.valid_from, row.added_log_index, row.retired_log_index,
                       row.revoked_at, retired_at=row.retired_at, revoked_index=row.revoked_log_index,
                       void=row.status == "void")


_KEY_STATEMENT_COLUMNS = (LogEntry.idx, LogEntry.logged_at, LogEntry.kid, LogEntry.statement)


def key_statement(index: int, logged_at: datetime, signer: str, statement: str) -> KeyStatement:
    """A logged party-key statement as the key rules read it."""
    payload = jws.logged_payload(statement)
    return KeyStatement.from_payload(payload, index=index, logged_at=logged_at, signer=signer,
                                     kid=keys.public_from_jwk(payload["jwk"]).kid)


def key_ledger(session: Session, *, party: str | None = None, below: int | None = None) -> KeyLedger:
    """The logged key statements (of ``party``; below the log index ``below``), as the rules replay them."""
    query = select(*_KEY_STATEMENT_COLUMNS).where(LogEntry.kind == "party_key")
    if party is not None:
        query = query.where(LogEntry.party_code == party)
    if below is not None:
        query = query.where(LogEntry.idx < below)
    return KeyLedger([key_statement(*row) for row in session.execute(query)])


def key_history(session: Session, below: int | None = None) -> KeyHistory:
    """Every party's keys, and what is void, as the log below ``below`` has them."""
    return key_ledger(session, below=below).final


def project_keys(session: Session, party: str, history: KeyHistory) -> None:
    """Write the party's key rows as the log's non-void statements leave them."""
    for validity in history.of_party(party):
        row = session.get(PartyKey, validity.kid)
        if row is None:
            continue  # enrolled by the statement being logged now; its row comes with it
        row.status = validity.status
        row.valid_from, row.added_log_index = validity.valid_from, validity.added_index
        row.retired_at, row.retired_log_index = validity.retired_at, validity.retired_index
        row.revoked_at, row.revoked_log_index = validity.revoked_at, validity.revoked_index


def get_party(session: Session, code: str) -> Party:
    party = session.get(Party, code)
    if party is None:
        raise NotFoundError(f"no party {code}")
    return party


def add_party(session: Session, keyring: Keyring, code: str, name: str, authority: str,
              *, hosted_key: bool, now: datetime) -> tuple[Party, PartyKey | None]:
    try:
        identifiers.party_code(code)
    except identifiers.IdentifierError as exc:
        raise InvalidInputError(f"party code {code!r}: {exc}", field_errors("code", str(exc))) from exc
    with log.writing(session, keyring.log_signer, now) as writer:
        if session.get(Party, code) is not None:
            raise ConflictError(f"party {code} exists already")
        party = Party(code=code, name=name, authority=authority, created_at=now)
        session.add(party)
        session.flush()
        key_row = None
        if hosted_key:
            public = keys.public_only(keyring.create_hosted(code))
            key_row = _enrol(session, writer, keyring, code, public, hosted=True)
    return party, key_row


def enrol_key(session: Session, keyring: Keyring, code: str, public: OKPKey, *, now: datetime) -> PartyKey:
    """The administrator enrols a key, after checking its fingerprint out of band."""
    with log.writing(session, keyring.log_signer, now) as writer:
        get_party(session, code)
        return _enrol(session, writer, keyring, code, public, hosted=False)


def _enrol(session: Session, writer: log.Writer, keyring: Keyring, code: str, public: OKPKey,
           *, hosted: bool) -> PartyKey:
    existing = session.get(PartyKey, public.kid)
    if existing is not None:
        raise ConflictError(f"key {public.kid} is enrolled already, for {existing.party_code}")
    jwk = keys.public_jwk(public)
    payload = {"party": code, "action": "add", "jwk": jwk, "valid_from": format_time(writer.now),
               "revoked_at": None}
    statement = jws.sign(payload, keyring.answer_key, jws.TYP_PARTY_KEY)
    (index,) = writer.append([log.NewEntry("party_key", code, code, 0, keyring.answer_key.kid, statement)])
    row = PartyKey(kid=public.kid, party_code=code, jwk=json.dumps(jwk), status="active", hosted=hosted,
                   valid_from=writer.now, added_log_index=index)
    session.add(row)
    return row


def hosted_signing_key(session: Session, keyring: Keyring, code: str) -> OKPKey | None:
    """The party's newest active hosted key, or None when it signs everything itself."""
    row = session.execute(
        select(PartyKey)
        .where(PartyKey.party_code == code, PartyKey.hosted.is_(True), PartyKey.status == "active")
        .order_by(PartyKey.added_log_index.desc())
        .limit(1)
    ).scalar_one_or_none()
    return keyring.hosted_key(code, row.kid) if row else None


def change_key(session: Session, keyring: Keyring, caller_party: str, code: str, statement: str,
               now: datetime) -> PartyKey:
    """A party adds, retires or revokes one of its keys with a statement signed by a current key.

    A revocation may date the compromise back; it then voids what the key
    signed since, and what the keys it enrolled since signed (``domain.party_keys``).
    One that would void its own signer is refused: the party then needs a key
    that the administrator enrols after an out-of-band check.
    """
    if caller_party != code:
        raise ForbiddenError(f"an authority of {caller_party} cannot change the keys of {code}")
    get_party(session, code)
    try:
        envelope, payload = ijson.open_statement(statement, jws.TYP_PARTY_KEY)
    except jws.JWSError as exc:
        raise SignatureError(str(exc), field_errors("statement", str(exc))) from exc
    with log.writing(session, keyring.log_signer, now) as writer:
        ledger = key_ledger(session, party=code)
        history = ledger.final
        signer = session.get(PartyKey, envelope.kid)
        if signer is None or signer.party_code != code:
            whose = f"a key of {signer.party_code}" if signer else "not a key of any party"
            raise SignatureError(f"statement must be signed by a current key of {code}; {envelope.kid} is {whose}",
                                 field_errors("statement", f"signing key is {whose}"))
        refusal = history.refusal(signer.kid, code, writer.size, now) or (
            None if signer.status == "active" else f"key {signer.kid} is {signer.status}")
        if refusal:
            raise SignatureError(refusal, field_errors("statement", refusal))
        try:
            jws.verify_envelope(envelope, keys.public_from_jwk(json.loads(signer.jwk)))
        except jws.JWSError as exc:
            raise SignatureError(str(exc), field_errors("statement", str(exc))) from exc
        action, target = _check_key_payload(session, history, code, payload, now)
        change = KeyStatement.from_payload(payload, index=writer.size, logged_at=now, signer=signer.kid,
                                           kid=target.kid)
        after = replay([*ledger.statements, change])
        if action == "revoke" and voids_its_signer(after, change):
            message = (f"this revocation would void the key that signs it ({signer.kid}); "
                       "have the administrator enrol a fresh key, then revoke with that one")
            raise ConflictError(message, field_errors("statement.revoked_at", message))
        (index,) = writer.append([log.NewEntry("party_key", code, code, 0, signer.kid, statement)])
        if action == "add":
            validity = after.keys[target.kid]
            target = PartyKey(kid=target.kid, party_code=code, jwk=json.dumps(keys.public_jwk(target)),
                              status=validity.status, hosted=False, added_log_index=index,
                              valid_from=validity.valid_from)
            session.add(target)
        project_keys(session, code, after)
        if action == "revoke":
            standing.refresh_current(session, history, after, now)
    return target


def _time(value: Any) -> datetime | None:
    return parse_time(value) if value else None


def _check_key_payload(session: Session, history: KeyHistory, code: str, payload: dict[str, Any], now: datetime):
    def bad(field: str, message: str) -> InvalidInputError:
        return InvalidInputError(message, field_errors(f"statement.{field}", message))

    unknown = set(payload) - {"party", "action", "jwk", "valid_from", "revoked_at"}
    if unknown:
        raise bad(sorted(unknown)[0], "unknown field")
    if payload.get("party") != code:
        raise bad("party", f"must be {code}")
    action = payload.get("action")
    if action not in ACTIONS:
        raise bad("action", f"must be {', '.join(ACTIONS[:-1])} or {ACTIONS[-1]}")
    try:
        key = keys.public_from_jwk(payload.get("jwk"))
    except keys.KeyFileError as exc:
        raise bad("jwk", str(exc)) from exc
    moments = {}
    for field in ("valid_from", "revoked_at"):
        try:
            moments[field] = _time(payload.get(field))
        except ValueError as exc:
            raise bad(field, str(exc)) from exc
    revoked_at = moments["revoked_at"]
    if revoked_at is not None and revoked_at > now:
        raise bad("revoked_at", "must not be in the future")
    existing = session.get(PartyKey, key.kid)
    if action == "add":
        if existing is not None:
            raise ConflictError(f"key {key.kid} is enrolled already")
        return action, key
    validity = history.keys.get(key.kid)
    if existing is None or validity is None or validity.party != code:
        raise bad("jwk", f"key {key.kid} is not a key of {code}")
    if validity.status in ("revoked", "void") or (action == "retire" and validity.status == "retired"):
        raise ConflictError(f"key {key.kid} is {validity.status} already")
    if action == "revoke" and revoked_at is not None and revoked_at < (validity.enrolled_at or revoked_at):
        raise bad("revoked_at", f"must not be before the key was enrolled ({format_time(validity.enrolled_at)})")
    return action, existing


def key_json(row: PartyKey) -> dict[str, Any]:
    return {
        "kid": row.kid,
        "jwk": json.loads(row.jwk),
        "status": row.status,
        "valid_from": format_time(row.valid_from),
        "retired_at": format_time(row.retired_at) if row.retired_at else None,
        "revoked_at": format_time(row.revoked_at) if row.revoked_at else None,
        "hosted": row.hosted,
        "log_index": row.added_log_index,
        "retired_log_index": row.retired_log_index,
        "revoked_log_index": row.revoked_log_index,
    }


def party_json(party: Party, key_rows: list[PartyKey]) -> dict[str, Any]:
    return {
        "code": party.code,
        "name": party.name,
        "authority": party.authority,
        "keys": [key_json(row) for row in key_rows],
    }


def parties_json(session: Session, code: str | None = None) -> list[dict[str, Any]]:
    query = select(Party).order_by(Party.code)
    if code is not None:
        query = query.where(Party.code == get_party(session, code).code)
    rows = session.execute(select(PartyKey).order_by(PartyKey.added_log_index)).scalars()
    by_party: dict[str, list[PartyKey]] = {}
    for row in rows:
        by_party.setdefault(row.party_code, []).append(row)
    return [party_json(party, by_party.get(party.code, [])) for party in session.execute(query).scalars()]


def party_jwks(session: Session, code: str) -> dict[str, Any]:
    """Every key the party ever had: old statements must stay verifiable."""
    get_party(session, code)
    rows = session.execute(
        select(PartyKey).where(PartyKey.party_code == code).order_by(PartyKey.added_log_index)
    ).scalars()
    return {"keys": [{**json.loads(row.jwk), "use": "sig", "alg": "Ed25519"} for row in rows]}
