"""Mutual recognition agreements: directions, types, the version in effect."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from .licence import TYPES
from .timefmt import parse_date, parse_time

STATUSES = ("in_force", "suspended", "terminated")


@dataclass(frozen=True)
class Direction:
    verifier: str
    issuer: str
    types: tuple[str, ...]

    def __post_init__(self) -> None:
        # Shown in answers as they came (see LicenceVersion.__post_init__).
        if not all(type(t) is str for t in self.types):
            raise ValueError("a direction's types must be strings")


@dataclass(frozen=True)
class AgreementVersion:
    id: str
    version: int
    title: str
    status: str
    in_force_from: date
    in_force_until: date | None
    recognition: tuple[Direction, ...]
    benefits: tuple[str, ...]
    effective_at: datetime
    log_index: int
    statement: str | None = None

    def __post_init__(self) -> None:
        # Shown in answers as they came (see LicenceVersion.__post_init__).
        if type(self.id) is not str or not all(type(b) is str for b in self.benefits):
            raise ValueError(f"agreement {self.id!r}: id and benefits must be strings")

    @classmethod
    def from_payload(cls, payload: dict[str, Any], *, log_index: int, logged_at: datetime,
                     statement: str | None = None) -> AgreementVersion:
        until = payload.get("in_force_until")
        effective = payload.get("effective_at")
        return cls(
            id=payload["id"],
            version=payload["version"],
            title=payload["title"],
            status=payload["status"],
            in_force_from=parse_date(payload["in_force_from"]),
            in_force_until=parse_date(until) if until else None,
            recognition=tuple(
                Direction(d["verifier"], d["issuer"], tuple(d["types"])) for d in payload["recognition"]
            ),
            benefits=tuple(payload.get("benefits") or ()),
            effective_at=parse_time(effective) if effective else logged_at,
            log_index=log_index,
            statement=statement,
        )

    def in_force(self, day: date) -> bool:
        return (
            self.status == "in_force"
            and self.in_force_from <= day
            and (self.in_force_until is None or day <= self.in_force_until)
        )

    def direction(self, verifier: str, issuer: str) -> Direction | None:
        for direction in self.recognition:
            if direction.verifier == verifier and direction.issuer == issuer:
                return direction
        return None


def version_at(versions: Sequence[AgreementVersion], at: datetime) -> AgreementVersion | None:
    """The latest version in effect at ``at``.

    Before its first version took effect an agreement is described by that
    first version: an agreement registered today with ``in_force_from`` in 2021
    answers for 2021 by its own dates.
    """
    if not versions:
        return None
    ordered = sorted(versions, key=lambda v: v.version)
    current = ordered[0]
    for candidate in ordered[1:]:
        if candidate.effective_at <= at:
            current = candidate
    return current


def expand_directions(recognition: Sequence[dict[str, Any]], mutual: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every direction listed, with the ``mutual`` shorthand spelt out; sorted, no repeats.

    A direction named twice gets the union of its types.
    """
    merged: dict[tuple[str, str], set[str]] = {}
    for item in recognition:
        merged.setdefault((item["verifier"], item["issuer"]), set()).update(item["types"])
    if mutual:
        for verifier in mutual["parties"]:
            for issuer in mutual["parties"]:
                if verifier != issuer:
                    merged.setdefault((verifier, issuer), set()).update(mutual["types"])
    order = {t: i for i, t in enumerate(TYPES)}
    return [
        {"verifier": v, "issuer": i, "types": sorted(types, key=order.__getitem__)}
        for (v, i), types in sorted(merged.items())
    ]
