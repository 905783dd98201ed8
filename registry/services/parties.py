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
from ..domain.party_keys import KeyValidity
from ..domain.timefmt import format_time, parse_time
from ..errors import ConflictError, ForbiddenError, InvalidInputError, NotFoundError, SignatureError, field_errors
from ..keyring import Keyring
from ..models import Party, PartyKey
from . import log


def key_validity(row: PartyKey) -> KeyValidity:
    return KeyValidity(row.kid, row.party_code, row.valid_from, row.added_log_index,
                       row.retired_log_index, row.revoked_at)


def key_validities(session: Session) -> dict[str, KeyValidity]:
    return {row.kid: key_validity(row) for row in session.execute(select(PartyKey)).scalars()}


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
    """A party adds, retires or revokes one of its keys with a statement signed by a current key."""
    if caller_party != code:
        raise ForbiddenError(f"an authority of {caller_party} cannot change the keys of {code}")
    get_party(session, code)
    try:
        envelope, payload = ijson.open_statement(statement, jws.TYP_PARTY_KEY)
    except jws.JWSError as exc:
        raise SignatureError(str(exc), field_errors("statement", str(exc))) from exc
    with log.writing(session, keyring.log_signer, now) as writer:
        signer = session.get(PartyKey, envelope.kid)
        if signer is None or signer.party_code != code:
            whose = f"a key of {signer.party_code}" if signer else "not a key of any party"
            raise SignatureError(f"statement must be signed by a current key of {code}; {envelope.kid} is {whose}",
                                 field_errors("statement", f"signing key is {whose}"))
        refusal = key_validity(signer).refusal(writer.size, now) or (
            None if signer.status == "active" else f"key {signer.kid} is {signer.status}")
        if refusal:
            raise SignatureError(refusal, field_errors("statement", refusal))
        try:
            jws.verify_envelope(envelope, keys.public_from_jwk(json.loads(signer.jwk)))
        except jws.JWSError as exc:
            raise SignatureError(str(exc), field_errors("statement", str(exc))) from exc
        action, target = _check_key_payload(session, code, payload, now)
        (index,) = writer.append([log.NewEntry("party_key", code, code, 0, signer.kid, statement)])
        if action == "add":
            target = PartyKey(kid=target.kid, party_code=code, jwk=json.dumps(keys.public_jwk(target)),
                              status="active", hosted=False, added_log_index=index,
                              valid_from=max(now, _time(payload.get("valid_from")) or now))
            session.add(target)
        elif action == "retire":
            target.status, target.retired_at, target.retired_log_index = "retired", now, index
        else:
            target.status, target.revoked_log_index = "revoked", index
            target.revoked_at = _time(payload.get("revoked_at")) or now
    return target


def _time(value: Any) -> datetime | None:
    return parse_time(value) if value else None


def _check_key_payload(session: Session, code: str, payload: dict[str, Any], now: datetime):
    def bad(field: str, message: str) -> InvalidInputError:
        return InvalidInputError(message, field_errors(f"statement.{field}", message))

    unknown = set(payload) - {"party", "action", "jwk", "valid_from", "revoked_at"}
    if unknown:
        raise bad(sorted(unknown)[0], "unknown field")
    if payload.get("party") != code:
        raise bad("party", f"must be {code}")
    action = payload.get("action")
    if action not in ("add", "retire", "revoke"):
        raise bad("action", "must be add, retire or revoke")
    try:
        key = keys.public_from_jwk(payload.get("jwk"))
    except keys.KeyFileError as exc:
        raise bad("jwk", str(exc)) from exc
    for field in ("valid_from", "revoked_at"):
        try:
            moment = _time(payload.get(field))
        except ValueError as exc:
            raise bad(field, str(exc)) from exc
        if field == "revoked_at" and moment is not None and moment > now:
            raise bad(field, "must not be in the future")
    existing = session.get(PartyKey, key.kid)
    if action == "add":
        if existing is not None:
            raise ConflictError(f"key {key.kid} is enrolled already")
        return action, key
    if existing is None or existing.party_code != code:
        raise bad("jwk", f"key {key.kid} is not a key of {code}")
    if existing.status == "revoked" or (action == "retire" and existing.status == "retired"):
        raise ConflictError(f"key {key.kid} is {existing.status} already")
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
