"""Bearer tokens: issued and revoked by the administrator, stored only hashed.

A token is 256 random bits, so a plain SHA-256 is enough to make a stolen
database useless for calling the API; no slow hash is needed.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, bindparam, select
from sqlalchemy.orm import Session

from ..db import Prepared, Reader
from ..errors import ConflictError, InvalidInputError, NotFoundError, field_errors
from ..models import ApiToken, LogHead
from .parties import get_party

ROLES = ("authority", "customs")
TOKEN_PREFIX = "aeo_"
PREFIX_CHARS = 12  # what `token list` shows of each token, and what is stored beside its hash


@dataclass(frozen=True)
class Caller:
    party: str
    role: str
    token_id: int
    tree_size: int | None = None  # the log's size when the token was checked (see authenticate)
    prefetched: Any = None  # what a view read in the token's round trip (see auth.require's lookup)


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


# Every authenticated request makes this lookup: a Core statement compiled
# once, run on the thread's reader without the ORM. It is not cached in the
# process, so a revocation (by the CLI, in another process) counts at once;
# only a single verification may find its token in the worker's verification
# cache instead, which every write to the token table retires (registry/hot.py).
# The same round trip reads the log's size, which a verification needs next:
# one query instead of two on the hottest path.
def lookup_select(*columns: Any) -> Select:
    """The token lookup with ``columns`` after its own; add joins, then ``where(LogHead.id == 1)``.

    Its first four columns are what ``caller_of`` reads.
    """
    return (
        select(LogHead.tree_size, ApiToken.id, ApiToken.party_code, ApiToken.role, *columns)
        .select_from(LogHead)
        .outerjoin(ApiToken, and_(ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked_at.is_(None)))
    )


_LOOKUP = Prepared(lookup_select().where(LogHead.id == 1))


def caller_of(row: Sequence[Any] | None, prefetched: Any = None) -> Caller | None:
    """The caller from a ``lookup_select`` row; None if the token is unknown or revoked."""
    if row is None or row[1] is None:
        return None
    tree_size, token_id, party, role = row[:4]
    return Caller(party=party, role=role, token_id=token_id, tree_size=tree_size, prefetched=prefetched)


def authenticate(reader: Reader, token: str) -> Caller | None:
    """Looked up on every request, not cached, so a revocation takes effect at once."""
    return caller_of(reader.one(_LOOKUP, token_hash=token_hash(token)))


def listing(session: Session) -> list[ApiToken]:
    return list(session.execute(select(ApiToken).order_by(ApiToken.id)).scalars())
