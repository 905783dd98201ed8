"""Bearer tokens: issued and revoked by the administrator, stored only hashed.

A token is 256 random bits, so a plain SHA-256 is enough to make a stolen
database useless for calling the API; no slow hash is needed.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import Session

from ..errors import ConflictError, InvalidInputError, NotFoundError, field_errors
from ..store.models import ApiToken, LogHead
from ..store.reads import Prepared, Reader
from .parties import get_party

ROLES = ("authority", "customs")
TOKEN_PREFIX = "aeo_"
PREFIX_CHARS = 12  # what `token list` shows of each token, and what is stored beside its hash


@dataclass(frozen=True)
class Caller:
    party: str
    role: str
    token_id: int


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(session: Session, party: str, role: str, now: datetime, label: str | None = None) -> str:
    if role not in ROLES:
        raise InvalidInputError(f"role must be one of {', '.join(ROLES)}", field_errors("role", "unknown role"))
    get_party(session, party)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(token_hash=token_hash(token), prefix=token[:PREFIX_CHARS], party_code=party, role=role,
                         label=label, created_at=now))
    session.commit()
    return token


def find(session: Session, reference: str) -> ApiToken:
    """The token named by its full text, its id, or an unambiguous prefix as ``token list`` shows it.

    A leaked token's text may be unknown to the administrator; its id and
    prefix are in ``token list``. A prefix names the one token not yet
    revoked that begins with it, else (all revoked) the one token at all.
    """
    reference = reference.strip().rstrip("…").rstrip(".")
    if reference.isascii() and reference.isdigit():
        row = session.get(ApiToken, int(reference)) if len(reference) < 19 else None
    elif len(reference) > PREFIX_CHARS:
        row = session.execute(select(ApiToken).where(ApiToken.token_hash == token_hash(reference))).scalar_one_or_none()
    elif len(reference) < len(TOKEN_PREFIX) + 1:
        raise InvalidInputError(f"give the token, its id, or a prefix longer than {TOKEN_PREFIX!r}",
                                field_errors("token", "too short to name one token"))
    else:
        rows = list(session.execute(select(ApiToken).where(ApiToken.prefix.startswith(reference, autoescape=True))
                                    .order_by(ApiToken.id)).scalars())
        candidates = [r for r in rows if r.revoked_at is None] or rows
        if len(candidates) > 1:
            listed = "; ".join(f"id {r.id} {r.prefix}… {r.party_code} {r.role}" for r in candidates)
            raise ConflictError(f"prefix {reference} matches {len(candidates)} tokens: {listed}; give the id",
                                field_errors("token", "ambiguous prefix"))
        row = candidates[0] if candidates else None
    if row is None:
        raise NotFoundError("no such token")
    return row


def revoke(session: Session, reference: str, now: datetime) -> ApiToken:
    """Revoke the token named by ``reference`` (see ``find``); revoking it again changes nothing."""
    row = find(session, reference)
    if row.revoked_at is None:
        row.revoked_at = now
        session.commit()
    return row


# Every authenticated request makes this lookup (unless a worker's verification
# cache holds the token: runtime/verify_cache.py), a Core statement compiled
# once and run on the thread's reader without the ORM. The same round trip
# reads the log's size, which a verification needs next.
_LOOKUP = Prepared(
    select(LogHead.tree_size, ApiToken.id, ApiToken.party_code, ApiToken.role)
    .select_from(LogHead)
    .outerjoin(ApiToken, and_(ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked_at.is_(None)))
    .where(LogHead.id == 1)
)


def authenticate(reader: Reader, token: str) -> tuple[Caller | None, int]:
    """The caller of ``token`` (None if unknown or revoked), and the log's size read in the same round trip."""
    tree_size, token_id, party, role = reader.one(_LOOKUP, token_hash=token_hash(token))
    return (Caller(party, role, token_id) if token_id is not None else None), tree_size


def listing(session: Session) -> list[ApiToken]:
    return list(session.execute(select(ApiToken).order_by(ApiToken.id)).scalars())
