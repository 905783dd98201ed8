"""Operator ids, certificate numbers and party codes; national tax numbers.

An operator id is EORI-like: a two-letter party prefix and a national part.
Where python-stdnum has a validator for that party's tax number, the national
part must be a valid number in its compact form, so one operator cannot hide
behind two spellings of the same number.
"""

from __future__ import annotations

import functools
import re
from types import ModuleType

from stdnum.al import nipt
from stdnum.exceptions import ValidationError
from stdnum.md import idno
from stdnum.me import pib as me_pib
from stdnum.mk import edb
from stdnum.rs import pib as rs_pib

OPERATOR_ID = re.compile(r"^[A-Z]{2}[0-9A-Z]{1,15}$")
CERTIFICATE = re.compile(r"^[A-Z]{2}[0-9A-Z]{1,33}$")
PARTY_CODE = re.compile(r"^[A-Z]{2}$")
MAX_RAW_LENGTH = 64

# What a client may send for the two ids: the forms above with letters in
# either case and whitespace or hyphens anywhere. The OpenAPI spec publishes
# these; the code itself checks by normalising.
_SEPARATORS = r"[\s-]*"
OPERATOR_ID_INPUT = rf"^{_SEPARATORS}(?:[A-Za-z]{_SEPARATORS}){{2}}(?:[0-9A-Za-z]{_SEPARATORS}){{1,15}}$"
CERTIFICATE_INPUT = rf"^{_SEPARATORS}(?:[A-Za-z]{_SEPARATORS}){{2}}(?:[0-9A-Za-z]{_SEPARATORS}){{1,33}}$"

NATIONAL_VALIDATORS: dict[str, tuple[ModuleType, str]] = {
    "AL": (nipt, "NIPT"),
    "MD": (idno, "IDNO"),
    "ME": (me_pib, "PIB"),
    "MK": (edb, "EDB"),
    "RS": (rs_pib, "PIB"),
}

_REMOVED = re.compile(r"[\s\-]")


class IdentifierError(ValueError):
    """An identifier that is malformed; the message says how."""


def normalise(raw: str) -> str:
    """Trimmed, upper-cased, spaces and hyphens removed.

    Non-ASCII characters are kept as they are, so that the pattern check
    refuses them: ``str.upper`` would turn "ß" into "SS" and "ﬁ" into "FI",
    letting a different spelling pass for an operator's id.
    """
    if raw.isascii() and raw.isalnum() and raw.isupper():
        return raw  # already normalised, as nearly every id read back from the registry is
    value = _REMOVED.sub("", raw.strip())
    return value.upper() if value.isascii() else value


def check_national_part(prefix: str, national: str) -> None:
    entry = NATIONAL_VALIDATORS.get(prefix)
    if entry is None:
        return
    module, name = entry
    try:
        valid = module.validate(national)
    except ValidationError as exc:
        raise IdentifierError(f"{national} is not a valid {prefix} {name}: {exc}") from exc
    if valid != national:
        raise IdentifierError(f"{national} is not a {prefix} {name} in its compact form ({valid})")


def _normalised(raw: str, pattern: re.Pattern, form: str) -> str:
    if raw is None:
        raise IdentifierError("Missing data for required field.")
    if not isinstance(raw, str):
        raise IdentifierError("must be a string")
    if len(raw) > MAX_RAW_LENGTH:
        raise IdentifierError(f"longer than {MAX_RAW_LENGTH} characters")
    value = normalise(raw)
    if not pattern.match(value):
        raise IdentifierError(f"must be {form}")
    return value


def operator_id(raw: str) -> str:
    """The normalised operator id, or IdentifierError."""
    if not isinstance(raw, str):
        return _checked_operator_id(raw)
    value, problem = _operator_id_memo(raw)
    if problem is not None:
        raise IdentifierError(problem)
    return value


def operator_id_form(raw: str) -> str:
    """The normalised operator id, its form checked but not yet its national number.

    For a caller that looks the id up first: an id the registry holds passed
    the national check when it was published, so only ids not found need it.
    """
    return _normalised(raw, OPERATOR_ID,
                       "two letters of a party code and 1 to 15 letters or digits, e.g. MK4030000375897")


def _checked_operator_id(raw: str) -> str:
    value = operator_id_form(raw)
    check_national_part(value[:2], value[2:])
    return value


@functools.lru_cache(maxsize=32_768)
def _operator_id_memo(raw: str) -> tuple[str | None, str | None]:
    # Partners verify the same operators again and again; the tax-number
    # checks are pure, so each spelling is worked out once per process.
    try:
        return _checked_operator_id(raw), None
    except IdentifierError as exc:
        return None, str(exc)


def certificate(raw: str) -> str:
    """The normalised certificate number, or IdentifierError."""
    return _normalised(raw, CERTIFICATE, "the issuing party's code and 1 to 33 letters or digits")


def party_code(raw: str) -> str:
    if not isinstance(raw, str) or not PARTY_CODE.match(raw):
        raise IdentifierError("must be an ISO 3166-1 alpha-2 code in capitals (XK for Kosovo)")
    return raw
