"""When a party's key may sign, and which statements a revocation voids.

The rules that publishing, answering, audit and the offline verifier share:
each replays the same logged key statements through ``KeyHistory`` and so
reaches the same verdict on every statement.

A revocation may date a key's compromise back (``revoked_at`` before the
revocation was logged). It then voids every statement the key signed that
was logged after ``revoked_at``, and, in turn, everything signed by a key
that a void statement enrolled, since whoever held the stolen key may have
enrolled a key of their own. A void retirement or revocation has no effect.
Void statements stay in the log; answers and the lifecycle rules skip them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from .timefmt import format_time, parse_time

ACTIONS = ("add", "retire", "revoke")
# Statements by a key that a void statement enrolled are void whenever they were logged.
NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class KeyStatement:
    """One logged party-key statement, as the rules need it; its signature is checked elsewhere."""

    index: int  # its place in the log
    logged_at: datetime
    party: str
    signer: str  # the KID that signed it
    action: str  # add, retire or revoke
    kid: str  # the key it adds, retires or revokes
    valid_from: datetime | None = None
    revoked_at: datetime | None = None

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], *, index: int, logged_at: datetime, signer: str,
                     kid: str) -> KeyStatement:
        """From a logged statement's payload; ``kid`` is the thumbprint of its ``jwk``, ``signer`` the leaf's kid."""
        valid_from, revoked_at = payload.get("valid_from"), payload.get("revoked_at")
        return cls(index, logged_at, payload["party"], signer, payload["action"], kid,
                   parse_time(valid_from) if valid_from else None,
                   parse_time(revoked_at) if revoked_at else None)


@dataclass(frozen=True)
class KeyValidity:
    kid: str
    party: str
    valid_from: datetime
    added_index: int  # the log entry that enrolled the key
    retired_index: int | None = None  # the log entry that retired it
    revoked_at: datetime | None = None  # compromise time; may be before it was logged
    enrolled_at: datetime | None = None  # when the enrolment was logged
    retired_at: datetime | None = None
    revoked_index: int | None = None  # the log entry that revoked it
    void: bool = False  # enrolled by a void statement: nothing it signs counts

    @property
    def status(self) -> str:
        if self.void:
            return "void"
        if self.revoked_at is not None:
            return "revoked"
        return "retired" if self.retired_index is not None else "active"

    def refusal(self, log_index: int, logged_at: datetime) -> str | None:
        """Why a statement logged at (``log_index``, ``logged_at``) may not use this key, or None.

        Retirement counts from its place in the log, so a retired key keeps
        every statement logged before it; revocation counts from ``revoked_at``,
        so statements logged after a compromise fall even if the revocation
        was logged later.
        """
        if log_index <= self.added_index:
            return f"key {self.kid} was not yet enrolled"
        if self.void:
            return f"key {self.kid} was enrolled by a statement that a key revocation voided"
        if logged_at < self.valid_from:
            return f"key {self.kid} is valid only from {format_time(self.valid_from)}"
        if self.revoked_at is not None and logged_at > self.revoked_at:
            return f"key {self.kid} was revoked at {format_time(self.revoked_at)}"
        if self.retired_index is not None and log_index > self.retired_index:
            return f"key {self.kid} was retired"
        return None


@dataclass(frozen=True)
class KeyHistory:
    """The keys that the non-void statements among ``statements`` leave, and what is void."""

    statements: tuple[KeyStatement, ...]
    keys: Mapping[str, KeyValidity]
    void: frozenset[int]  # log indices of void key statements
    void_from: Mapping[str, datetime]  # a statement by this KID logged after this moment is void

    def is_void(self, kid: str, logged_at: datetime) -> bool:
        """Whether a statement signed by ``kid`` and logged at ``logged_at`` is void."""
        since = self.void_from.get(kid)
        return since is not None and logged_at > since

    def refusal(self, kid: str, party: str, log_index: int, logged_at: datetime) -> str | None:
        """Why a party's statement by ``kid`` at that place in the log may not count, or None."""
        validity = self.keys.get(kid)
        if validity is None or validity.party != party:
            whose = f"a key of {validity.party}" if validity else "not a key the registry knows"
            return f"signing key {kid} is {whose}, not a key of {party}"
        return validity.refusal(log_index, logged_at)

    def of_party(self, party: str) -> list[KeyValidity]:
        """The party's keys in the order they were enrolled."""
        return sorted((k for k in self.keys.values() if k.party == party), key=lambda k: k.added_index)


def replay(statements: Iterable[KeyStatement]) -> KeyHistory:
    """The key history that these statements (of any parties, any order) make.

    Revocations are weighed from the newest back: a revocation counts unless
    a newer one that counts voided it. (Both the registry and audit refuse a
    revocation that a counting one had voided before it was logged, so in a
    log the registry wrote this is also what each revocation found when it
    was made.)
    """
    ordered = tuple(sorted(statements, key=lambda s: s.index))
    by_signer: dict[str, list[KeyStatement]] = {}
    for statement in ordered:
        by_signer.setdefault(statement.signer, []).append(statement)
    void: set[int] = set()
    for revocation in reversed([s for s in ordered if s.action == "revoke"]):
        if revocation.index in void or revocation.revoked_at is None:
            continue
        voided = _voided_by(by_signer, revocation.kid, revocation.revoked_at)
        # A revocation that would void itself cannot count without undoing itself: it counts for nothing.
        void |= {revocation.index} if revocation.index in voided else voided
    keys: dict[str, KeyValidity] = {}
    for statement in ordered:
        _apply(keys, statement, void=statement.index in void)
    void_from: dict[str, datetime] = {}
    for validity in keys.values():
        if validity.void:
            void_from[validity.kid] = NEVER
        elif validity.revoked_at is not None:
            void_from[validity.kid] = validity.revoked_at
    return KeyHistory(ordered, keys, frozenset(void), void_from)


def _voided_by(by_signer: Mapping[str, list[KeyStatement]], kid: str, since: datetime) -> set[int]:
    """The key statements a compromise of ``kid`` since ``since`` voids, through the keys they enrolled.

    Only statements signed by a party's keys can fall: the administrator's
    enrolments are signed by the registry's key, which no party revokes.
    """
    void: set[int] = set()
    pending = [(kid, since)]
    while pending:
        signer, moment = pending.pop()
        for statement in by_signer.get(signer, ()):
            if statement.logged_at > moment and statement.index not in void:
                void.add(statement.index)
                if statement.action == "add":
                    pending.append((statement.kid, NEVER))
    return void


def _apply(keys: dict[str, KeyValidity], statement: KeyStatement, *, void: bool) -> None:
    if statement.action == "add":
        if statement.kid in keys:
            return  # enrolled twice: the first enrolment stands (audit reports the second)
        valid_from = max(statement.valid_from or statement.logged_at, statement.logged_at)
        keys[statement.kid] = KeyValidity(statement.kid, statement.party, valid_from, statement.index,
                                          enrolled_at=statement.logged_at, void=void)
        return
    old = keys.get(statement.kid)
    if void or old is None:
        return
    if statement.action == "retire" and old.retired_index is None:
        keys[statement.kid] = replace(old, retired_index=statement.index, retired_at=statement.logged_at)
    elif statement.action == "revoke":
        # Revoked twice (the registry refuses that, but a log may hold it): the earlier compromise counts.
        revoked_at = statement.revoked_at or statement.logged_at
        if old.revoked_at is None or revoked_at < old.revoked_at:
            keys[statement.kid] = replace(old, revoked_at=revoked_at, revoked_index=statement.index)


@dataclass
class KeyLedger:
    """Key histories of a log's prefixes: what was in force when each statement was logged.

    Publishing judges a new statement by the history of everything logged
    before it; audit and the offline verifier judge each logged statement the
    same way, so a statement the registry could not have accepted shows as
    tampering, while one a later revocation voided is merely void.
    """

    statements: Sequence[KeyStatement]
    _indices: list[int] = field(init=False)
    _prefixes: dict[int, KeyHistory] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.statements = tuple(sorted(self.statements, key=lambda s: s.index))
        self._indices = [s.index for s in self.statements]

    @property
    def final(self) -> KeyHistory:
        return self.before(self._indices[-1] + 1 if self._indices else 0)

    def before(self, index: int) -> KeyHistory:
        """The history of the key statements logged below ``index``."""
        count = bisect.bisect_left(self._indices, index)
        found = self._prefixes.get(count)
        if found is None:
            found = self._prefixes[count] = replay(self.statements[:count])
        return found


def voids_its_signer(history: KeyHistory, statement: KeyStatement) -> bool:
    """Whether ``statement``, once logged (``history`` holds it), is void or voids the key that signed it."""
    return statement.index in history.void or history.is_void(statement.signer, statement.logged_at)
