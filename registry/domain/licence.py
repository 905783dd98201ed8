"""The AEO licence: its versions, statuses and the changes allowed between them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from . import identifiers
from .timefmt import format_time, parse_date, parse_time

TYPES = ("AEOC", "AEOS", "AEOF")
STATUSES = ("active", "suspended", "revoked", "annulled")
FINAL_STATUSES = frozenset({"revoked", "annulled"})
SUSPENDABLE_PARTS = ("AEOC", "AEOS")

# (from, to). Staying active or suspended is an amendment (new address, new
# alias, another suspended part). revoked and annulled are final, except that
# a revoked licence can still be annulled.
ALLOWED_TRANSITIONS = frozenset(
    {
        ("active", "active"),
        ("active", "suspended"),
        ("suspended", "active"),
        ("suspended", "suspended"),
        ("active", "revoked"),
        ("suspended", "revoked"),
        ("active", "annulled"),
        ("suspended", "annulled"),
        ("revoked", "annulled"),
    }
)


class LifecycleError(ValueError):
    """A change the licence rules forbid; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def check_transition(previous: str, new: str) -> None:
    if (previous, new) not in ALLOWED_TRANSITIONS:
        if previous in FINAL_STATUSES:
            raise LifecycleError("status", f"the licence is {previous}, which is final; it cannot become {new}")
        raise LifecycleError("status", f"a licence cannot go from {previous} to {new}")


def rule_errors(payload: dict[str, Any]) -> dict[str, str]:
    """Rules across fields of one version, as field -> message."""
    errors = {}
    scope = payload.get("suspended_scope")
    if scope is not None:
        if payload.get("status") != "suspended":
            errors["suspended_scope"] = "only a suspended licence has a suspended scope"
        elif payload.get("type") != "AEOF":
            errors["suspended_scope"] = "only an AEOF licence can be suspended in one part"
    valid_from, valid_until = payload.get("valid_from"), payload.get("valid_until")
    if valid_until is not None and valid_from is not None and valid_until < valid_from:
        errors["valid_until"] = "must not be before valid_from"
    certificate, party = payload.get("certificate"), payload.get("party")
    if certificate and party and not certificate.startswith(party):
        errors["certificate"] = f"must begin with the issuing party's code {party}"
    return errors


def effective_type(licence_type: str, suspended_scope: str | None) -> str:
    """An AEOF licence suspended in one part counts as the other part alone."""
    if licence_type == "AEOF" and suspended_scope:
        return "AEOS" if suspended_scope == "AEOC" else "AEOC"
    return licence_type


def type_covered(licence_type: str, covered: frozenset[str] | tuple[str, ...]) -> bool:
    """Whether an agreement's types cover a licence of this (effective) type.

    An agreement lists licence types. An AEOF licence holds both parts, so an
    agreement that covers AEOS (or AEOC) alone still recognises it for that part.
    """
    if licence_type in covered:
        return True
    return licence_type == "AEOF" and bool({"AEOC", "AEOS"} & set(covered))


# The payload fields a LicenceVersion is made of; the rest (address, reason)
# only the statement carries.
_FACT_FIELDS = ("certificate", "party", "version", "type", "status", "suspended_scope", "valid_from",
                "valid_until", "effective_at", "consent")


def facts(payload: dict[str, Any], *, logged_at: datetime, kid: str) -> dict[str, Any]:
    """What ``LicenceVersion`` needs of a logged statement, and of its log entry, as JSON values.

    Kept beside each version (a few hundred bytes) so that answering reads
    neither the signed statement nor its log entry; the audit holds the two
    to each other. ``LicenceVersion.from_facts`` reads it back.
    """
    projected = {name: payload[name] for name in _FACT_FIELDS if name in payload}
    operator = payload["operator"]
    projected["operator"] = {"id": operator["id"], "name": operator["name"], "aliases": operator.get("aliases") or []}
    projected["logged_at"] = format_time(logged_at)
    projected["kid"] = kid
    return projected


@dataclass(frozen=True)
class LicenceVersion:
    """One logged version of a licence, as the recognition rules need it."""

    certificate: str
    party: str
    version: int
    type: str
    status: str
    suspended_scope: str | None
    valid_from: date
    valid_until: date | None
    effective_at: datetime
    consent_partners: bool
    consent_public: bool
    operator_id: str
    operator_name: str
    identifiers: frozenset[str]
    log_index: int
    logged_at: datetime
    kid: str
    statement: str | None = None

    def __post_init__(self) -> None:
        # The fields an answer shows as they came: answers are encoded without
        # a look at every value (crypto.canonical.canonical_json_typed), so a
        # float or another type here must stop the version being made at all.
        if not (type(self.certificate) is str and type(self.party) is str and type(self.type) is str
                and type(self.status) is str and type(self.operator_name) is str and type(self.version) is int
                and (self.suspended_scope is None or type(self.suspended_scope) is str)):
            raise ValueError(f"licence version {self.certificate!r}: a field is not of its JSON type")

    @classmethod
    def from_payload(
        cls,
        payload: dict[str, Any],
        *,
        log_index: int,
        logged_at: datetime,
        kid: str,
        statement: str | None = None,
    ) -> LicenceVersion:
        """From a logged, already validated statement payload."""
        operator = payload["operator"]
        operator_id = identifiers.normalise(operator["id"])
        aliases = operator.get("aliases")
        effective = payload.get("effective_at")
        valid_until = payload.get("valid_until")
        consent = payload.get("consent") or {}
        # A dict literal, set as the instance's __dict__: the frozen dataclass
        # __init__ sets the 18 fields one object.__setattr__ at a time, most
        # of the cost of reading a version, and a 5,000-id answer reads thousands.
        fields = {
            "certificate": payload["certificate"],
            "party": payload["party"],
            "version": payload["version"],
            "type": payload["type"],
            "status": payload["status"],
            "suspended_scope": payload.get("suspended_scope"),
            "valid_from": parse_date(payload["valid_from"]),
            "valid_until": parse_date(valid_until) if valid_until else None,
            "effective_at": parse_time(effective) if effective else logged_at,
            "consent_partners": bool(consent.get("partners")),
            "consent_public": bool(consent.get("public")),
            "operator_id": operator_id,
            "operator_name": operator["name"],
            "identifiers": (frozenset([operator_id, *map(identifiers.normalise, aliases)]) if aliases
                            else frozenset((operator_id,))),
            "log_index": log_index,
            "logged_at": logged_at,
            "kid": kid,
            "statement": statement,
        }
        version = object.__new__(cls)
        object.__setattr__(version, "__dict__", fields)
        version.__post_init__()
        return version

    @classmethod
    def from_facts(cls, facts: dict[str, Any], *, log_index: int, statement: str | None = None) -> LicenceVersion:
        """From what ``facts`` kept: the same version ``from_payload`` gives from the statement."""
        return cls.from_payload(facts, log_index=log_index, logged_at=parse_time(facts["logged_at"]),
                                kid=facts["kid"], statement=statement)


def counts(version: LicenceVersion, void_from: Mapping[str, datetime]) -> bool:
    """Whether a version counts: not void (see ``party_keys.KeyHistory.void_from``)."""
    since = void_from.get(version.kid)
    return since is None or version.logged_at <= since


def standing(versions: Sequence[LicenceVersion], void_from: Mapping[str, datetime]) -> LicenceVersion | None:
    """The latest version that counts, which the lifecycle rules judge a new version against; None if all are void.

    Version numbers go on counting void versions, but a void statement
    changes nothing: the authority may state again, with a valid key, what
    it said.
    """
    for version in reversed(versions):
        if counts(version, void_from):
            return version
    return None
