"""Whether a verifying party recognises an operator as an AEO at a moment.

One pure function, ``recognise``, used by the service and by the offline
verifier alike, so that both give the same answer from the same statements.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from typing import Any

from .agreement import AgreementVersion, version_at
from .licence import LicenceVersion, counts, effective_type, type_covered
from .timefmt import format_time

# Nearest miss first: a licence that passed more of the checks is nearer to
# being recognised. The order of the checks in ``_assess`` follows it.
REASONS = (
    "recognised",
    "type_not_covered",
    "no_agreement",
    "suspended",
    "not_yet_valid",
    "expired",
    "revoked",
    "annulled",
    "no_consent",
    "unknown_operator",
)
_RANK = {reason: rank for rank, reason in enumerate(REASONS)}


@dataclass(frozen=True)
class Recognition:
    basis: str  # "national" or "agreement"
    agreement: str | None
    types: tuple[str, ...]
    benefits: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "basis": self.basis,
            "agreement": self.agreement,
            "types": list(self.types),
            "benefits": list(self.benefits),
        }


@dataclass(frozen=True)
class Assessment:
    reason: str
    shown: LicenceVersion | None  # None when nothing may be disclosed
    recognition: Recognition | None = None

    @property
    def rank(self) -> tuple[int, int, str]:
        benefits = len(self.recognition.benefits) if self.recognition else 0
        return (_RANK[self.reason], -benefits, self.shown.certificate if self.shown else "")


@dataclass(frozen=True)
class Result:
    operator_id: str
    reason: str
    recognition: Recognition | None = None
    operator: LicenceVersion | None = None
    licences: tuple[LicenceVersion, ...] = field(default=())
    error: str | None = None

    @property
    def recognised(self) -> bool:
        return self.reason == "recognised"

    def as_json(self, *, include_statements: bool = True) -> dict[str, Any]:
        result: dict[str, Any] = {
            "operator_id": self.operator_id,
            "recognised": self.recognised,
            "reason": self.reason,
            "operator": (
                {"id": self.operator.operator_id, "name": self.operator.operator_name}
                if self.operator
                else None
            ),
            "recognition": self.recognition.as_json() if self.recognition else None,
            "licences": [licence_json(v, include_statement=include_statements) for v in self.licences],
        }
        if self.error is not None:
            result["error"] = self.error
        return result


def licence_json(version: LicenceVersion, *, include_statement: bool = True) -> dict[str, Any]:
    item: dict[str, Any] = {
        "certificate": version.certificate,
        "party": version.party,
        "type": version.type,
        "status": version.status,
        "suspended_scope": version.suspended_scope,
        "valid_from": version.valid_from.isoformat(),
        "valid_until": version.valid_until.isoformat() if version.valid_until else None,
        "effective_at": format_time(version.effective_at),
        "version": version.version,
        "log_index": version.log_index,
    }
    if include_statement:
        item["statement"] = version.statement
    return item


def histories(versions: Iterable[LicenceVersion]) -> list[list[LicenceVersion]]:
    """Versions grouped per certificate, each group oldest first."""
    versions = list(versions)
    if len(versions) == 1:  # most operators: one licence in one version
        return [versions]
    ordered = sorted(versions, key=lambda v: (v.certificate, v.version))
    return [list(group) for _, group in groupby(ordered, key=lambda v: v.certificate)]


class AgreementsInEffect:
    """The version of each agreement in effect at ``at``, and what they give each licence type.

    Whether agreements recognise a type issued by one party for a verifier
    is the same for every operator of that party: a batch of answers works
    it out once per (verifier, issuer, type), not once per operator.
    """

    def __init__(self, agreement_versions: Iterable[AgreementVersion], at: datetime):
        self.at = at
        self.versions = agreements_at(agreement_versions, at)
        self._outcomes: dict[tuple[str, str, str], tuple[str, Recognition | None]] = {}

    def outcome(self, verifier: str, issuer: str, licence_type: str) -> tuple[str, Recognition | None]:
        """``("recognised", best)``, ``("type_not_covered", None)`` or ``("no_agreement", None)``."""
        key = (verifier, issuer, licence_type)
        found = self._outcomes.get(key)
        if found is None:
            found = self._outcomes[key] = self._work_out(verifier, issuer, licence_type)
        return found

    def _work_out(self, verifier: str, issuer: str, licence_type: str) -> tuple[str, Recognition | None]:
        day = self.at.date()
        directions = [
            (agreement, direction)
            for agreement in self.versions
            if agreement.in_force(day) and (direction := agreement.direction(verifier, issuer)) is not None
        ]
        if not directions:
            return "no_agreement", None
        covering = [
            Recognition("agreement", agreement.id, direction.types, agreement.benefits)
            for agreement, direction in directions
            if type_covered(licence_type, direction.types)
        ]
        if not covering:
            return "type_not_covered", None
        return "recognised", min(covering, key=lambda r: (-len(r.benefits), r.agreement))


def _assess(
    history: Sequence[LicenceVersion],
    verifier: str,
    at: datetime,
    agreements: AgreementsInEffect,
) -> Assessment:
    latest = history[-1]
    partner = verifier != latest.party
    # Consent is the operator's current wish, so the latest version decides,
    # also about the past.
    if partner and not latest.consent_partners:
        return Assessment("no_consent", None)
    annulment = next((v for v in history if v.status == "annulled"), None)
    if annulment is not None:
        return Assessment("annulled", annulment)
    in_effect = None
    for version in history:
        if version.effective_at <= at:
            in_effect = version
    if in_effect is None:
        return Assessment("not_yet_valid", history[0])
    day = at.date()
    if in_effect.status == "revoked":
        return Assessment("revoked", in_effect)
    if day < in_effect.valid_from:
        return Assessment("not_yet_valid", in_effect)
    if in_effect.valid_until is not None and day > in_effect.valid_until:
        return Assessment("expired", in_effect)
    if in_effect.status == "suspended" and in_effect.suspended_scope is None:
        return Assessment("suspended", in_effect)
    licence_type = effective_type(in_effect.type, in_effect.suspended_scope)
    if not partner:
        return Assessment("recognised", in_effect, Recognition("national", None, (licence_type,), ()))
    reason, recognition = agreements.outcome(verifier, in_effect.party, licence_type)
    return Assessment(reason, in_effect, recognition)


def agreements_at(agreement_versions: Iterable[AgreementVersion], at: datetime) -> list[AgreementVersion]:
    """The version of each agreement in effect at ``at``."""
    by_agreement: dict[str, list[AgreementVersion]] = {}
    for agreement in agreement_versions:
        by_agreement.setdefault(agreement.id, []).append(agreement)
    return [a for a in (version_at(vs, at) for vs in by_agreement.values()) if a is not None]


def undisclosed_digest(salt: str, identifier: str) -> str:
    """How a snapshot names an id whose licences it may not show."""
    return hashlib.sha256(f"{salt}:{identifier}".encode()).hexdigest()


def claiming(operator_id: str, histories_: Iterable[Sequence[LicenceVersion]], at: datetime,
             parties: Collection[str]) -> list[Sequence[LicenceVersion]]:
    """The licence histories that ``operator_id`` finds at ``at``: all of one party, or none.

    An identifier finds a licence only through the version in effect at
    ``at`` (the first version, before any is in effect), so an alias counts
    from the version that lists it until one drops it. One that begins with
    a party's code finds only that party's licences. Any other (an EU EORI,
    a partner's code) may be listed by licences of two parties at one
    moment only through back-dated versions; then the claim made first in
    the log counts. So no party can change what partners learn about an
    operator of another.
    """
    prefix = operator_id[:2]
    found: list[tuple[int, str, Sequence[LicenceVersion]]] = []
    for history in histories_:
        party = history[0].party
        if prefix != party and prefix in parties:
            continue
        claimed_at = _claimed_at(history, operator_id, at)
        if claimed_at is not None:
            found.append((claimed_at, party, history))
    if len({party for _, party, _ in found}) > 1:
        first = min(found, key=lambda claim: claim[0])[1]
        found = [claim for claim in found if claim[1] == first]
    return [history for _, _, history in found]


def _claimed_at(history: Sequence[LicenceVersion], operator_id: str, at: datetime) -> int | None:
    """The log index from which the versions listing ``operator_id`` run unbroken to the one in effect."""
    position = 0
    for index, version in enumerate(history):
        if version.effective_at <= at:
            position = index
    if operator_id not in history[position].identifiers:
        return None
    while position > 0 and operator_id in history[position - 1].identifiers:
        position -= 1
    return history[position].log_index


def recognise(
    operator_id: str,
    verifier: str,
    at: datetime,
    licence_versions: Iterable[LicenceVersion],
    agreement_versions: Iterable[AgreementVersion],
    void_from: Mapping[str, datetime] | None = None,
    undisclosed: tuple[str, Collection[str]] | None = None,
    *,
    parties: Collection[str],
    in_effect: AgreementsInEffect | None = None,
) -> Result:
    """Answer for ``operator_id`` (already normalised) from the logged statements.

    ``licence_versions`` may hold any versions; only those ``claiming``
    finds count, and none that is void (``void_from``, see
    ``party_keys.KeyHistory``). ``parties`` are the codes of the registry's
    parties, whose identifiers only they may claim. ``agreement_versions``
    holds every logged version of every agreement; a caller answering many
    ids at one ``at`` may pass ``in_effect=AgreementsInEffect(agreement_versions, at)``
    once instead. ``undisclosed`` is a snapshot's (salt, digests) of ids whose
    licences the verifier may not see.
    """
    if void_from:
        valid = [v for v in licence_versions if counts(v, void_from)]
    else:
        valid = list(licence_versions)
    mine = claiming(operator_id, histories(valid), at, parties) if valid else []
    if not mine:
        if undisclosed and undisclosed_digest(undisclosed[0], operator_id) in undisclosed[1]:
            return Result(operator_id, "no_consent")
        return Result(operator_id, "unknown_operator")
    agreements = in_effect if in_effect is not None else AgreementsInEffect(agreement_versions, at)
    if len(mine) == 1:  # most operators: one licence
        assessments = [_assess(mine[0], verifier, at, agreements)]
    else:
        assessments = sorted((_assess(h, verifier, at, agreements) for h in mine), key=lambda a: a.rank)
    best = assessments[0]
    disclosed = tuple(a.shown for a in assessments if a.shown is not None)
    return Result(operator_id, best.reason, best.recognition, best.shown, disclosed)
