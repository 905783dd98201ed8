"""What stands for each licence: the ``licence`` row, the latest version that no key revocation voided.

Publishing writes the row for the version it logs; a key revocation that
voids (or, by voiding another revocation, restores) statements rewrites the
rows of the licences it touches; audit recomputes every row the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from itertools import groupby
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..domain import licence
from ..domain.licence import LicenceVersion
from ..domain.party_keys import KeyHistory
from ..store.models import Licence as LicenceRow
from ..store.models import LicenceVersion as LicenceVersionRow
from ..store.models import LogEntry

_CHUNK = 500


def current_row(versions: Sequence[LicenceVersion], void_from: Mapping[str, datetime]) -> dict[str, Any]:
    """The ``licence`` row of a licence with these versions (oldest first): what stands, and its latest number.

    When every version is void nothing stands: the row shows the latest
    version and nothing is shared with partners, since no valid statement
    carries the operator's consent.
    """
    latest = versions[-1]
    stands = licence.standing(versions, void_from)
    shown = stands or latest
    return {"certificate": shown.certificate, "party_code": shown.party, "version": latest.version,
            "status": shown.status, "type": shown.type, "operator_id": shown.operator_id,
            "consent_partners": shown.consent_partners and stands is not None, "valid_from": shown.valid_from,
            "valid_until": shown.valid_until, "effective_at": shown.effective_at, "log_index": shown.log_index}


def versions_of(session: Session, certificates: Iterable[str]) -> Iterator[list[LicenceVersion]]:
    """Every version of each licence, oldest first, as the rules read them (from the facts kept beside each)."""
    certificates = sorted(set(certificates))
    for start in range(0, len(certificates), _CHUNK):
        rows = session.execute(
            select(LicenceVersionRow.certificate, LicenceVersionRow.log_index, LicenceVersionRow.facts)
            .where(LicenceVersionRow.certificate.in_(certificates[start:start + _CHUNK]))
            .order_by(LicenceVersionRow.certificate, LicenceVersionRow.version))
        for _, group in groupby(rows, key=lambda row: row[0]):
            yield [LicenceVersion.from_facts(orjson.loads(facts), log_index=index) for _, index, facts in group]


def refresh_current(session: Session, before: KeyHistory, after: KeyHistory, now: datetime) -> None:
    """After a key revocation: rewrite the rows of the licences whose standing version it changed.

    A revocation voids (or, by voiding another revocation, restores) the
    statements of a few keys; only licences with a version by one of them
    can change.
    """
    changed = {kid for kid in before.void_from.keys() | after.void_from.keys()
               if before.void_from.get(kid) != after.void_from.get(kid)}
    if not changed:
        return
    certificates = session.execute(
        select(LogEntry.subject).where(LogEntry.kind == "licence", LogEntry.kid.in_(sorted(changed))).distinct()
    ).scalars()
    rows = [current_row(versions, after.void_from) for versions in versions_of(session, certificates)]
    if rows:
        session.execute(update(LicenceRow), [{**row, "updated_at": now} for row in rows])


