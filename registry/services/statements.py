"""What the use cases accept: licence statements and fields, agreement files.

The rules a licence statement's payload must meet whoever sends it (a
partner's signed JWS, plain fields through the API, a CSV row, the CLI's
``sign``), as marshmallow schemas, and the limits on each field, defined once.
They know nothing of HTTP: ``registry.http.schemas`` builds the API's request
and response shapes on them. Unknown fields are refused everywhere
(marshmallow's default, RAISE).
"""

from __future__ import annotations

import unicodedata
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..domain import identifiers, licence
from ..domain.agreement import STATUSES as AGREEMENT_STATUSES
from ..domain.timefmt import format_time, parse_date, parse_time
from ..errors import InvalidInputError, flatten

MAX_STATEMENT_CHARS = 64 * 1024
# Log indices and tree sizes are BIGINT columns: a larger number would not
# fit a query parameter of the database and must be refused as input.
MAX_LOG_INDEX = 2**63 - 1
# One line of human text each, in characters.
NAME_MAX = 300
STREET_MAX = 200
CITY_MAX = 100
POSTCODE_MAX = 20
REASON_MAX = 500
TITLE_MAX = 300
BENEFIT_MAX = 64
ALIASES_MAX = 50
AGREEMENT_ID = r"^[A-Z0-9][A-Z0-9._-]{1,63}$"


# --- fields -----------------------------------------------------------------


class StrictDate(fields.Date):
    """``YYYY-MM-DD`` and nothing else."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_date(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc

    def _serialize(self, value, attr, obj, **kwargs):
        return value if value is None or isinstance(value, str) else value.isoformat()


class Timestamp(fields.DateTime):
    """RFC 3339 with an explicit offset, held in UTC, written with ``Z``."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_time(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc

    def _serialize(self, value, attr, obj, **kwargs):
        return value if value is None or isinstance(value, str) else format_time(value)


class _Identifier(fields.String):
    parser = staticmethod(identifiers.operator_id)
    pattern = identifiers.OPERATOR_ID_INPUT
    max_length: int | None = identifiers.MAX_RAW_LENGTH

    def __init__(self, **kwargs):
        # Documented in the spec; the parser is what checks.
        documented = {"pattern": self.pattern, "maxLength": self.max_length}
        metadata = {k: v for k, v in documented.items() if v is not None} | kwargs.pop("metadata", {})
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return self.parser(value)
        except identifiers.IdentifierError as exc:
            raise ValidationError(str(exc)) from exc


class OperatorId(_Identifier):
    parser = staticmethod(identifiers.operator_id)


class CertificateNumber(_Identifier):
    parser = staticmethod(identifiers.certificate)
    pattern = identifiers.CERTIFICATE_INPUT


class PartyCode(_Identifier):
    parser = staticmethod(identifiers.party_code)
    pattern = identifiers.PARTY_CODE.pattern
    max_length = None


class _JsonBoolean(fields.Boolean):
    """JSON ``true`` or ``false`` only.

    ``truthy={True}`` alone is not enough: 0 and 1 are equal to False and True
    in Python, so a set lookup would take them for booleans.
    """

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


def StrictBool(**kwargs) -> fields.Boolean:  # noqa: N802 - reads like a field class
    return _JsonBoolean(**kwargs)


# Control characters (Cc: C0, DEL, C1; TAB and line breaks too: a name, an
# address line or a reason is one line), format characters (Cf: the
# bidirectional overrides and isolates such as U+202E, which make a page show
# "Vardar ‮LEEDOOD" as something else, and invisible ones such as U+200B or
# U+00AD that make two names look alike), surrogates (Cs: not characters) and
# the line and paragraph separators (Zl, Zp).
REFUSED_TEXT_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be a name, an address line or a reason; None if it can.

    ``str.isprintable`` is true of almost every real value and costs next to
    nothing; it is false also of some characters that are fine here (U+00A0,
    private use), so only then is each character's category looked at.
    """
    if value.isprintable():
        return None
    for position, char in enumerate(value):
        if unicodedata.category(char) in REFUSED_TEXT_CATEGORIES:
            return (f"must not contain control or formatting characters (U+{ord(char):04X} "
                    f"at position {position + 1})")
    return None


def _plain_text(value: str) -> None:
    problem = text_problem(value)
    if problem:
        raise ValidationError(problem)


def Text(max_length: int, **kwargs) -> fields.String:  # noqa: N802
    """One line of human text: names, address lines, reasons, titles."""
    return fields.String(validate=[validate.Length(min=1, max=max_length), _plain_text], **kwargs)


# --- licences -----------------------------------------------------------------


class AddressSchema(Schema):
    street = Text(STREET_MAX, load_default=None, allow_none=True)
    city = Text(CITY_MAX, load_default=None, allow_none=True)
    postcode = Text(POSTCODE_MAX, load_default=None, allow_none=True)
    country = PartyCode(load_default=None, allow_none=True)


class OperatorSchema(Schema):
    id = OperatorId(required=True, metadata={"example": "MK7603137215901"})
    name = Text(NAME_MAX, required=True)
    aliases = fields.List(OperatorId(), load_default=list, validate=validate.Length(max=ALIASES_MAX))
    address = fields.Nested(AddressSchema, load_default=None, allow_none=True)

    @validates_schema
    def _distinct(self, data, **kwargs):
        aliases = data.get("aliases") or []
        if len(set(aliases)) != len(aliases) or data.get("id") in aliases:
            raise ValidationError("aliases must differ from each other and from the id", "aliases")


class ConsentSchema(Schema):
    partners = StrictBool(required=True, metadata={"description": "partner customs may see this licence"})
    public = StrictBool(required=True, metadata={"description": "anyone may see this licence"})


class LicenceFieldsSchema(Schema):
    """What an authority says about a licence; the registry adds the rest."""

    operator = fields.Nested(OperatorSchema, required=True)
    type = fields.String(required=True, validate=validate.OneOf(licence.TYPES))
    status = fields.String(required=True, validate=validate.OneOf(licence.STATUSES))
    suspended_scope = fields.String(
        load_default=None, allow_none=True, validate=validate.OneOf(licence.SUSPENDABLE_PARTS)
    )
    consent = fields.Nested(ConsentSchema, required=True)
    valid_from = StrictDate(required=True)
    valid_until = StrictDate(load_default=None, allow_none=True)
    effective_at = Timestamp(
        load_default=None, allow_none=True, metadata={"description": "default: when it is published"}
    )
    reason = Text(REASON_MAX, load_default=None, allow_none=True)

    @validates_schema
    def _rules(self, data, **kwargs):
        errors = licence.rule_errors(data)
        if errors:
            raise ValidationError({field: [message] for field, message in errors.items()})


class LicencePayloadSchema(LicenceFieldsSchema):
    """The payload of a licence statement (typ ``aeo-licence+jws``)."""

    certificate = CertificateNumber(required=True)
    party = PartyCode(required=True)
    version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))


class StatementSchema(Schema):
    statement = fields.String(
        required=True,
        validate=validate.Length(min=1, max=MAX_STATEMENT_CHARS),
        metadata={"description": "compact JWS signed by one of the party's keys"},
    )


def licence_payload_json(payload: dict[str, Any]) -> dict[str, Any]:
    """A loaded payload as the JSON object that is signed: every key, nulls included.

    Written out by hand rather than with ``LicencePayloadSchema().dump``, which
    cost as much as the signature when publishing in bulk; tests/test_schemas_dump.py
    holds the two equal for loaded payloads of every shape.
    """
    operator, consent, address = payload["operator"], payload["consent"], payload["operator"]["address"]
    valid_until, effective_at = payload["valid_until"], payload["effective_at"]
    return {
        "operator": {
            "id": operator["id"],
            "name": operator["name"],
            "aliases": list(operator["aliases"]),
            "address": None if address is None else {
                "street": address["street"], "city": address["city"], "postcode": address["postcode"],
                "country": address["country"]},
        },
        "type": payload["type"],
        "status": payload["status"],
        "suspended_scope": payload["suspended_scope"],
        "consent": {"partners": consent["partners"], "public": consent["public"]},
        "valid_from": payload["valid_from"].isoformat(),
        "valid_until": None if valid_until is None else valid_until.isoformat(),
        "effective_at": None if effective_at is None else format_time(effective_at),
        "reason": payload["reason"],
        "certificate": payload["certificate"],
        "party": payload["party"],
        "version": int(payload["version"]),
    }


_LICENCE_FIELDS = LicenceFieldsSchema()
_FIELD_KEYS = frozenset(_LICENCE_FIELDS.fields)
_OPERATOR_KEYS = frozenset(("id", "name", "aliases", "address"))
_ADDRESS_TEXT = (("street", STREET_MAX), ("city", CITY_MAX), ("postcode", POSTCODE_MAX))
_ADDRESS_KEYS = frozenset(("street", "city", "postcode", "country"))


def load_licence_fields(data: Any, prefix: str = "") -> dict[str, Any]:
    """``load(LicenceFieldsSchema(), data)``, with well-formed input read without marshmallow.

    Bulk publishing loads one body a licence, and marshmallow's field-by-field
    machinery over the nested operator, address and consent was a large part of
    the cost of publishing. Input of the plain shape a CSV row or a typical
    client gives is read by ``plain_licence_fields``; anything it does not
    take (a wrong type, an unknown key, a failed rule) goes to the schema,
    which gives the same result or the error naming the field.
    tests/test_schemas_dump.py holds the two equal wherever the fast one answers.
    """
    loaded = plain_licence_fields(data)
    return load(_LICENCE_FIELDS, data, prefix) if loaded is None else loaded


def _text(value: Any, max_length: int) -> bool:
    """``Text(max_length)``'s rule; whatever fails goes to the schema for its error."""
    return type(value) is str and 1 <= len(value) <= max_length and text_problem(value) is None


def plain_licence_fields(data: Any) -> dict[str, Any] | None:
    """The loaded fields of plain, valid input (as a CSV row or a typical client gives), read without
    marshmallow; None for whatever needs the schema (errors included). ``load_licence_fields`` uses it."""
    if type(data) is not dict or not data.keys() <= _FIELD_KEYS:
        return None
    operator, consent = data.get("operator"), data.get("consent")
    if type(operator) is not dict or not operator.keys() <= _OPERATOR_KEYS or type(consent) is not dict:
        return None
    if consent.keys() != {"partners", "public"} or type(consent["partners"]) is not bool \
            or type(consent["public"]) is not bool:
        return None
    name, raw_aliases, address = operator.get("name"), operator.get("aliases", []), operator.get("address")
    if not _text(name, NAME_MAX) or type(raw_aliases) is not list or len(raw_aliases) > ALIASES_MAX:
        return None
    try:
        operator_id = identifiers.operator_id(operator.get("id"))
        aliases = [identifiers.operator_id(alias) for alias in raw_aliases]
        if address is not None:
            if type(address) is not dict or not address.keys() <= _ADDRESS_KEYS:
                return None
            country = address.get("country")
            address = {"street": address.get("street"), "city": address.get("city"),
                       "postcode": address.get("postcode"),
                       "country": None if country is None else identifiers.party_code(country)}
            if not all(address[key] is None or _text(address[key], limit) for key, limit in _ADDRESS_TEXT):
                return None
    except identifiers.IdentifierError:
        return None
    if len(set(aliases)) != len(aliases) or operator_id in aliases:
        return None
    licence_type, status = data.get("type"), data.get("status")
    scope, reason = data.get("suspended_scope"), data.get("reason")
    if type(licence_type) is not str or licence_type not in licence.TYPES or type(status) is not str \
            or status not in licence.STATUSES or not (scope is None or (type(scope) is str and scope in
                                                                      licence.SUSPENDABLE_PARTS)):
        return None
    if not (reason is None or _text(reason, REASON_MAX)):
        return None
    valid_from, valid_until, effective_at = data.get("valid_from"), data.get("valid_until"), data.get("effective_at")
    try:
        loaded = {
            "operator": {"id": operator_id, "name": name, "aliases": aliases, "address": address},
            "type": licence_type,
            "status": status,
            "suspended_scope": scope,
            "consent": {"partners": consent["partners"], "public": consent["public"]},
            "valid_from": parse_date(valid_from),
            "valid_until": None if valid_until is None else parse_date(valid_until),
            "effective_at": None if effective_at is None else parse_time(effective_at),
            "reason": reason,
        }
    except (TypeError, ValueError):
        return None
    return None if licence.rule_errors(loaded) else loaded


def load(schema: Schema, data: Any, prefix: str = "") -> dict[str, Any]:
    """Load with a schema, turning its errors into one InvalidInputError naming each field."""
    try:
        return schema.load(data)
    except ValidationError as exc:
        errors = flatten(exc.messages, prefix)
        raise InvalidInputError(f"invalid fields: {', '.join(sorted(errors))}", errors) from exc


# --- agreement files -------------------------------------------------------------------


class DirectionSchema(Schema):
    verifier = PartyCode(required=True)
    issuer = PartyCode(required=True)
    types = fields.List(fields.String(validate=validate.OneOf(licence.TYPES)), required=True,
                        validate=validate.Length(min=1))


class MutualSchema(Schema):
    parties = fields.List(PartyCode(), required=True, validate=validate.Length(min=2))
    types = fields.List(fields.String(validate=validate.OneOf(licence.TYPES)), required=True,
                        validate=validate.Length(min=1))


class AgreementFileSchema(Schema):
    """What the administrator writes; ``mutual`` is spelt out before signing."""

    id = fields.String(required=True, validate=validate.Regexp(AGREEMENT_ID))
    title = Text(TITLE_MAX, required=True)
    status = fields.String(required=True, validate=validate.OneOf(AGREEMENT_STATUSES))
    in_force_from = StrictDate(required=True)
    in_force_until = StrictDate(load_default=None, allow_none=True)
    recognition = fields.List(fields.Nested(DirectionSchema), load_default=list)
    mutual = fields.Nested(MutualSchema, load_default=None, allow_none=True)
    benefits = fields.List(Text(BENEFIT_MAX), load_default=list)
    effective_at = Timestamp(load_default=None, allow_none=True,
                             metadata={"description": "when this version takes effect; default now"})

    @validates_schema
    def _rules(self, data, **kwargs):
        if not data.get("recognition") and not data.get("mutual"):
            raise ValidationError("list recognition directions or give mutual", "recognition")
        until = data.get("in_force_until")
        if until is not None and until < data["in_force_from"]:
            raise ValidationError("must not be before in_force_from", "in_force_until")
        for direction in data.get("recognition") or []:
            if direction["verifier"] == direction["issuer"]:
                raise ValidationError("a party does not recognise itself by agreement", "recognition")
