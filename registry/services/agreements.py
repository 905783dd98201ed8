"""Mutual recognition agreements: written by the administrator, signed by the registry, logged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..crypto import jws
from ..domain.agreement import AgreementVersion, expand_directions
from ..domain.timefmt import format_time
from ..errors import InvalidInputError, NotFoundError
from ..keyring import Keyring
from ..store.models import Agreement, LogEntry, Party
from ..store.models import AgreementVersion as AgreementVersionRow
from . import log, statements

_FILE_SCHEMA = statements.AgreementFileSchema()


def _record(loaded: dict[str, Any], version: int, effective_at: datetime) -> dict[str, Any]:
    """The stored record: every direction spelt out, ``mutual`` gone."""
    dumped = _FILE_SCHEMA.dump(loaded)
    return {
        "id": loaded["id"],
        "version": version,
        "title": loaded["title"],
        "status": loaded["status"],
        "in_force_from": dumped["in_force_from"],
        "in_force_until": dumped["in_force_until"],
        "recognition": expand_directions(loaded["recognition"], loaded["mutual"]),
        "benefits": sorted(set(loaded["benefits"])),
        "effective_at": format_time(effective_at),
    }


def put(session: Session, keyring: Keyring, data: Any, now: datetime) -> tuple[dict[str, Any], bool]:
    """Write a new version from the administrator's file; returns (entry, whether a version was added).

    The same content again adds nothing.
    """
    loaded = statements.load(_FILE_SCHEMA, data)
    with log.writing(session, keyring.log_signer, now) as writer:
        known = set(session.execute(select(Party.code)).scalars())
        directions = expand_directions(loaded["recognition"], loaded["mutual"])
        named = {party for d in directions for party in (d["verifier"], d["issuer"])}
        if named - known:
            raise InvalidInputError(f"unknown parties: {', '.join(sorted(named - known))}",
                               {"recognition": [f"unknown party {p}" for p in sorted(named - known)]})
        current = session.get(Agreement, loaded["id"])
        record = _record(loaded, current.version + 1 if current else 1, loaded["effective_at"] or now)
        if current is not None:
            entry = session.get(LogEntry, current.log_index)
            previous = jws.logged_payload(entry.statement)
            ignored = {"version"} if loaded["effective_at"] else {"version", "effective_at"}
            if {k: v for k, v in previous.items() if k not in ignored} == {
                    k: v for k, v in record.items() if k not in ignored}:
                return _entry_json(entry), False
        statement = jws.sign(record, keyring.answer_key, jws.TYP_AGREEMENT)
        (index,) = writer.append([log.NewEntry("agreement", None, record["id"], record["version"],
                                               keyring.answer_key.kid, statement)])
        if current is None:
            session.add(Agreement(id=record["id"], version=record["version"], log_index=index))
            session.flush()
        else:
            current.version, current.log_index = record["version"], index
        session.add(AgreementVersionRow(agreement_id=record["id"], version=record["version"], log_index=index))
    return {"agreement": record, "statement": statement, "log_index": index}, True


def _entry_json(entry: LogEntry) -> dict[str, Any]:
    return {"agreement": jws.logged_payload(entry.statement), "statement": entry.statement, "log_index": entry.idx}


def _history(session: Session, agreement_id: str | None = None) -> dict[str, list[dict[str, Any]]]:
    query = (select(AgreementVersionRow.agreement_id, LogEntry)
             .join(LogEntry, LogEntry.idx == AgreementVersionRow.log_index)
             .order_by(AgreementVersionRow.agreement_id, AgreementVersionRow.version))
    if agreement_id is not None:
        query = query.where(AgreementVersionRow.agreement_id == agreement_id)
    history: dict[str, list[dict[str, Any]]] = {}
    for identifier, entry in session.execute(query):
        history.setdefault(identifier, []).append(_entry_json(entry))
    return history


def listing(session: Session) -> list[dict[str, Any]]:
    return [{**versions[-1], "history": versions} for versions in _history(session).values()]


def detail(session: Session, agreement_id: str) -> dict[str, Any]:
    versions = _history(session, agreement_id).get(agreement_id)
    if not versions:
        raise NotFoundError(f"no agreement {agreement_id}")
    return {**versions[-1], "history": versions}


def domain_versions(session: Session, tree_size: int) -> list[AgreementVersion]:
    """Every agreement version logged below ``tree_size``, for the recognition rules."""
    rows = session.execute(
        select(LogEntry.idx, LogEntry.statement, LogEntry.logged_at)
        .where(LogEntry.kind == "agreement", LogEntry.idx < tree_size)
        .order_by(LogEntry.idx)
    )
    return [AgreementVersion.from_payload(jws.logged_payload(statement), log_index=idx, logged_at=logged_at,
                                          statement=statement) for idx, statement, logged_at in rows]
