"""The change feed and signed snapshots: what a partner may see of the log.

A caller sees every agreement and key statement, its own party's licence
statements, and another party's licence statements when the operator's
current consent allows partners to see them; of the rest, only the leaf,
which holds no operator data. A statement that a key revocation voided is
shown as it was logged, marked ``"void": true``: the log never forgets, but
answers skip it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from ..crypto import jws, merkle
from ..domain.party_keys import KeyHistory
from ..domain.recognition import undisclosed_digest
from ..domain.timefmt import format_time
from ..keyring import Keyring
from ..store.models import Licence, LicenceIdentifier, LogEntry, Party, PartyKey
from ..store.reads import Reader
from . import log, parties, witnesses
from .verification import current, load_snapshot


def _visible(caller: str):
    """SQL condition: the caller may read this entry's statement."""
    return or_(
        LogEntry.kind != "licence",
        LogEntry.party_code == caller,
        Licence.consent_partners.is_(True),
    )


def _with_consent(query):
    return query.outerjoin(Licence, and_(LogEntry.kind == "licence", Licence.certificate == LogEntry.subject))


def feed(session: Session, caller: str, after: int, limit: int) -> dict[str, Any]:
    size = log.tree_size(Reader.of(session))
    keys_now = parties.key_history(session, size)
    rows = session.execute(
        _with_consent(select(LogEntry, _visible(caller).label("visible")))
        .where(LogEntry.idx > after, LogEntry.idx < size)
        .order_by(LogEntry.idx)
        .limit(limit)
    ).all()
    items = []
    for entry, visible in rows:
        item = {
            "index": entry.idx,
            "kind": entry.kind,
            "leaf": entry.leaf,
            "leaf_hash": log.b64(merkle.leaf_hash(entry.leaf.encode())),
        }
        if visible:
            item["statement"] = entry.statement
        if _void(keys_now, entry):
            item["void"] = True
        items.append(item)
    last = items[-1]["index"] if items else after
    return {"items": items, "next_after": last if last + 1 < size else None, "tree_size": size}


def _void(keys_now: KeyHistory, entry: LogEntry) -> bool:
    if entry.kind == "party_key":
        return entry.idx in keys_now.void
    return entry.kind == "licence" and keys_now.is_void(entry.kid, entry.logged_at)


def _entries(rows: Iterable[LogEntry], keys_now: KeyHistory) -> list[dict[str, Any]]:
    entries = []
    for entry in rows:
        item = {"log_index": entry.idx, "statement": entry.statement, "leaf": entry.leaf}
        if _void(keys_now, entry):
            item["void"] = True
        entries.append(item)
    return entries


def _undisclosed(session: Session, caller: str, party: str | None, salt: str) -> list[str]:
    """Salted digests of the ids of licences hidden from the caller.

    The service answers ``no_consent`` for them, so the offline verifier must
    too, without learning more than the service would tell: that the id is
    known. (Short national numbers can be guessed back from a digest, which
    tells no more than asking the service would.)
    """
    query = (select(LicenceIdentifier.identifier, Licence.party_code)
             .join(Licence, Licence.certificate == LicenceIdentifier.certificate)
             .where(Licence.party_code != caller, Licence.consent_partners.is_(False)))
    if party is not None:
        query = query.where(Licence.party_code == party)
    codes = set(session.execute(select(Party.code)).scalars())
    # An identifier of another party never finds the licence (domain.recognition.claiming).
    return sorted({undisclosed_digest(salt, identifier) for identifier, issuer in session.execute(query)
                   if identifier[:2] == issuer or identifier[:2] not in codes})


def snapshot(session: Session, keyring: Keyring, caller: str, party: str | None, now: datetime,
             size: int | None = None) -> dict[str, Any]:
    """Everything a border post needs to verify offline, signed with the answer key.

    Entries are those below the checkpoint's size (the latest, or ``size``,
    one the registry signed), so the snapshot is exactly the log up to the
    checkpoint it carries (for what the caller may see). The checkpoint's
    note comes with the witnesses' cosignatures the registry holds.
    """
    checkpoint = (load_snapshot(session, size) if size is not None else current(session)).checkpoint
    size = checkpoint.tree_size
    keys_now = parties.key_history(session, size)
    query = _with_consent(select(LogEntry)).where(LogEntry.idx < size, _visible(caller))
    if party is not None:
        parties.get_party(session, party)
        query = query.where(or_(LogEntry.kind != "licence", LogEntry.party_code == party))
    by_subject: dict[tuple[str, str], list[LogEntry]] = {}
    for entry in session.execute(query.order_by(LogEntry.idx)).scalars():
        by_subject.setdefault((entry.kind, entry.subject), []).append(entry)
    licences = [
        {"certificate": subject, "party": rows[0].party_code, "versions": _entries(rows, keys_now)}
        for (kind, subject), rows in sorted(by_subject.items()) if kind == "licence"
    ]
    agreements = [
        {"id": subject, "versions": _entries(rows, keys_now)}
        for (kind, subject), rows in sorted(by_subject.items()) if kind == "agreement"
    ]
    # Every key statement, in log order: the verifier replays them with the service's rules
    # (what a revocation voided included) instead of trusting the key list below.
    key_statements = _entries([e for (kind, _), rows in by_subject.items() if kind == "party_key" for e in rows],
                              keys_now)
    key_rows = session.execute(select(PartyKey).where(PartyKey.added_log_index < size)).scalars()
    enrolled = {row.kid for row in key_rows}
    party_list = [
        {**p, "keys": [k for k in p["keys"] if k["kid"] in enrolled]} for p in parties.parties_json(session)
    ]
    salt = secrets.token_hex(16)
    payload = {
        "generated_at": format_time(now),
        "for": caller,
        "party": party,
        "registry": {
            "origin": keyring.log_origin,
            "log_verifier_key": keyring.log_verifier.vkey(),
            "keys": keyring.registry_jwks()["keys"],
        },
        "checkpoint": {"tree_size": size, "root_hash": log.b64(checkpoint.root_hash),
                       "note": witnesses.cosigned_note(session, checkpoint)},
        "parties": party_list,
        "party_keys": sorted(key_statements, key=lambda e: e["log_index"]),
        "agreements": agreements,
        "licences": licences,
        "undisclosed": {"salt": salt, "digests": _undisclosed(session, caller, party, salt)},
    }
    return {"jws": jws.sign(payload, keyring.answer_key, jws.TYP_SNAPSHOT)}
