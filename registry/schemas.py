"""Request and response schemas, in one place.

Input is validated here and in ``domain``; views and services receive loaded,
typed values. The same classes document the API in the OpenAPI spec.
Unknown fields are refused everywhere (marshmallow's default, RAISE).
"""

from __future__ import annotations

import unicodedata
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from .crypto import tiles
from .domain import identifiers, licence
from .domain.agreement import STATUSES as AGREEMENT_STATUSES
from .domain.recognition import REASONS
from .domain.timefmt import format_time, parse_date, parse_moment, parse_time
from .errors import InvalidInputError, flatten

MAX_STATEMENT_CHARS = 64 * 1024
MAX_NONCE_CHARS = 128
# Log indices and tree sizes are BIGINT columns: a larger number would not
# fit a query parameter of the database and must be refused as input.
MAX_LOG_INDEX = 2**63 - 1


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


class Moment(fields.DateTime):
    """``at``: an RFC 3339 timestamp, or a date meaning 00:00 UTC that day."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_moment(value)
        except ValueError as exc:
            raise ValidationError("not an RFC 3339 timestamp or a YYYY-MM-DD date") from exc


def _printable(value: str) -> None:
    if not value.isprintable():
        raise ValidationError("must hold printable characters only")


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


# --- path parameters ------------------------------------------------------------

AGREEMENT_ID = r"^[A-Z0-9][A-Z0-9._-]{1,63}$"

# How each path parameter is documented wherever a route names it (see
# registry.api.Blueprint.route): a new route with <code> gets it for free.
PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "certificate": {"description": "the licence's certificate number; case, spaces and hyphens are normalised",
                    "schema": {"type": "string", "pattern": identifiers.CERTIFICATE_INPUT,
                               "maxLength": identifiers.MAX_RAW_LENGTH},
                    "example": "MKAEOF000123"},
    "operator_id": {"description": "an operator id or alias; case, spaces and hyphens are normalised",
                    "schema": {"type": "string", "pattern": identifiers.OPERATOR_ID_INPUT,
                               "maxLength": identifiers.MAX_RAW_LENGTH},
                    "example": "MK4030000375897"},
    "code": {"description": "a party's ISO 3166-1 alpha-2 code (XK for Kosovo)",
             "schema": {"type": "string", "pattern": identifiers.PARTY_CODE.pattern}, "example": "MK"},
    "agreement_id": {"description": "an agreement's id",
                     "schema": {"type": "string", "pattern": AGREEMENT_ID}, "example": "CEFTA-AP5"},
    "level": {"description": "a tile's level (C2SP tlog-tiles), 0-63: level 0 holds leaf hashes, level L the"
                             " hashes of the full tiles of level L-1",
              "schema": {"type": "string", "pattern": f"^(?:{tiles.LEVEL_PATTERN})$"}, "example": "0"},
    "index": {"description": "a tile's index in three-digit groups, all but the last prefixed with x (1234067 is"
                             " x001/x234/067), then .p/W for a partial tile of W hashes or entries (1-255)",
              "schema": {"type": "string", "pattern": f"^(?:{tiles.INDEX_PATTERN})$", "maxLength": 40},
              "example": "000.p/1"},
}


# --- licences -----------------------------------------------------------------


class AddressSchema(Schema):
    street = Text(200, load_default=None, allow_none=True)
    city = Text(100, load_default=None, allow_none=True)
    postcode = Text(20, load_default=None, allow_none=True)
    country = PartyCode(load_default=None, allow_none=True)


class OperatorSchema(Schema):
    id = OperatorId(required=True, metadata={"example": "MK7603137215901"})
    name = Text(300, required=True)
    aliases = fields.List(OperatorId(), load_default=list, validate=validate.Length(max=50))
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
    reason = Text(500, load_default=None, allow_none=True)

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


class BatchStatementSchema(StatementSchema):
    """A batch item: a signed statement and the certificate it is for."""

    certificate = CertificateNumber(required=True)


class BatchLicenceFieldsSchema(LicenceFieldsSchema):
    """A batch item: plain fields, signed with the party's hosted key, and the certificate."""

    certificate = CertificateNumber(required=True)


class PublishBatchSchema(Schema):
    # Items are checked one by one in the service, so that every item's errors
    # come back keyed licences.N.field; the spec shows their two forms.
    licences = fields.List(
        fields.Dict(metadata={"oneOf": [{"$ref": "#/components/schemas/BatchStatement"},
                                        {"$ref": "#/components/schemas/BatchLicenceFields"}]}),
        required=True,
        validate=validate.Length(min=1),
        metadata={"description": "each item a statement or plain fields, with its certificate"},
    )


class LicenceQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf(licence.STATUSES))
    type = fields.String(validate=validate.OneOf(licence.TYPES))
    updated_since = Timestamp()
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    cursor = fields.String(validate=validate.Length(max=200))


class LicenceRecordSchema(Schema):
    licence = fields.Nested(LicencePayloadSchema, required=True)
    statement = fields.String(required=True)
    log_index = fields.Integer(required=True)
    void = fields.Boolean(metadata={"description": "present and true when a key revocation voided this statement: "
                                                   "it stays in the log, but counts for nothing"})


class LicenceDetailSchema(LicenceRecordSchema):
    history = fields.List(fields.Nested(LicenceRecordSchema), required=True, metadata={"description": "oldest first"})


class LicencePageSchema(Schema):
    items = fields.List(fields.Nested(LicenceRecordSchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class PublishBatchResultSchema(Schema):
    licences = fields.List(fields.Nested(LicenceRecordSchema), required=True)
    tree_size = fields.Integer(required=True)


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
_ADDRESS_TEXT = (("street", 200), ("city", 100), ("postcode", 20))
_ADDRESS_KEYS = frozenset(("street", "city", "postcode", "country"))


def load_licence_fields(data: Any, prefix: str = "") -> dict[str, Any]:
    """``load(LicenceFieldsSchema(), data)``, with well-formed input read without marshmallow.

    Bulk publishing loads one body a licence, and marshmallow's field-by-field
    machinery over the nested operator, address and consent was a fifth of
    the cost of publishing. Input of the plain shape a CSV row or a typical
    client gives is read by ``_licence_fields_fast``; anything it does not
    take (a wrong type, an unknown key, a failed rule) goes to the schema,
    which gives the same result or the error naming the field.
    tests/test_schemas_dump.py holds the two equal wherever the fast one answers.
    """
    loaded = _licence_fields_fast(data)
    return load(_LICENCE_FIELDS, data, prefix) if loaded is None else loaded


def _text(value: Any, max_length: int) -> bool:
    """``Text(max_length)``'s rule; whatever fails goes to the schema for its error."""
    return type(value) is str and 1 <= len(value) <= max_length and text_problem(value) is None


def _licence_fields_fast(data: Any) -> dict[str, Any] | None:
    """The loaded fields, or None for whatever needs the schema (errors included)."""
    if type(data) is not dict or not data.keys() <= _FIELD_KEYS:
        return None
    operator, consent = data.get("operator"), data.get("consent")
    if type(operator) is not dict or not operator.keys() <= _OPERATOR_KEYS or type(consent) is not dict:
        return None
    if consent.keys() != {"partners", "public"} or type(consent["partners"]) is not bool \
            or type(consent["public"]) is not bool:
        return None
    name, raw_aliases, address = operator.get("name"), operator.get("aliases", []), operator.get("address")
    if not _text(name, 300) or type(raw_aliases) is not list or len(raw_aliases) > 50:
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
    if not (reason is None or _text(reason, 500)):
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


# --- parties and keys ---------------------------------------------------------


class PublicJwkSchema(Schema):
    kty = fields.String(required=True, metadata={"example": "OKP"})
    crv = fields.String(required=True, metadata={"example": "Ed25519"})
    x = fields.String(required=True)
    kid = fields.String(required=True, metadata={"description": "RFC 7638 thumbprint"})


class PartyKeySchema(Schema):
    kid = fields.String(required=True)
    jwk = fields.Nested(PublicJwkSchema, required=True)
    status = fields.String(required=True, validate=validate.OneOf(("active", "retired", "revoked", "void")),
                           metadata={"description": "void: enrolled by a statement that a key revocation voided"})
    valid_from = Timestamp(required=True)
    retired_at = Timestamp(allow_none=True, required=True)
    revoked_at = Timestamp(allow_none=True, required=True)
    hosted = fields.Boolean(required=True, metadata={"description": "the registry holds the private key"})
    log_index = fields.Integer(required=True, metadata={"description": "log entry that enrolled it"})
    retired_log_index = fields.Integer(required=True, allow_none=True,
                                       metadata={"description": "log entry that retired it"})
    revoked_log_index = fields.Integer(required=True, allow_none=True,
                                       metadata={"description": "log entry that revoked it"})


class PartySchema(Schema):
    code = fields.String(required=True, metadata={"example": "MK"})
    name = fields.String(required=True)
    authority = fields.String(required=True)
    keys = fields.List(fields.Nested(PartyKeySchema), required=True)


class PartyListSchema(Schema):
    items = fields.List(fields.Nested(PartySchema), required=True)


class JwkSetSchema(Schema):
    keys = fields.List(fields.Dict(), required=True)


# --- the log --------------------------------------------------------------------


class LogEntriesQuerySchema(Schema):
    start = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_LOG_INDEX))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class LogEntrySchema(Schema):
    index = fields.Integer(required=True)
    leaf = fields.String(required=True, metadata={"description": "the exact logged text (RFC 8785 JSON)"})
    leaf_hash = fields.String(required=True, metadata={"description": "base64 SHA-256(0x00 || leaf)"})


class LogEntriesSchema(Schema):
    items = fields.List(fields.Nested(LogEntrySchema), required=True)


class InclusionQuerySchema(Schema):
    index = fields.Integer(required=True, validate=validate.Range(min=0, max=MAX_LOG_INDEX))
    tree_size = fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_LOG_INDEX))


class ProofFileQuerySchema(Schema):
    index = fields.Integer(required=True, validate=validate.Range(min=0, max=MAX_LOG_INDEX))


class InclusionProofSchema(Schema):
    index = fields.Integer(required=True)
    tree_size = fields.Integer(required=True)
    leaf_hash = fields.String(required=True)
    hashes = fields.List(fields.String(), required=True)


class ConsistencyQuerySchema(Schema):
    first = fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_LOG_INDEX))
    second = fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_LOG_INDEX))


class ConsistencyProofSchema(Schema):
    first = fields.Integer(required=True)
    second = fields.Integer(required=True)
    hashes = fields.List(fields.String(), required=True)


class CheckpointQuerySchema(Schema):
    tree_size = fields.Integer(required=True, validate=validate.Range(min=0, max=MAX_LOG_INDEX))


MAX_QUORUM = 64


def Cosigned(**kwargs) -> fields.Integer:  # noqa: N802
    return fields.Integer(validate=validate.Range(min=1, max=MAX_QUORUM), metadata={"description": (
        "the newest checkpoint cosigned by at least this many of the registry's witnesses; 409 (not-cosigned, "
        "with Retry-After) while none is, 400 if more witnesses are asked for than are configured")}, **kwargs)


class LatestCheckpointQuerySchema(Schema):
    cosigned = Cosigned()


class LogInfoSchema(Schema):
    origin = fields.String(required=True)
    tree_size = fields.Integer(required=True)
    root_hash = fields.String(required=True)
    verifier_key = fields.String(required=True, metadata={"description": "C2SP note verifier key of the log key"})
    log_key = fields.Dict(required=True, metadata={"description": "the log key as a public JWK"})


# --- agreements -------------------------------------------------------------------


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
    title = Text(300, required=True)
    status = fields.String(required=True, validate=validate.OneOf(AGREEMENT_STATUSES))
    in_force_from = StrictDate(required=True)
    in_force_until = StrictDate(load_default=None, allow_none=True)
    recognition = fields.List(fields.Nested(DirectionSchema), load_default=list)
    mutual = fields.Nested(MutualSchema, load_default=None, allow_none=True)
    benefits = fields.List(Text(64), load_default=list)
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


# --- errors and service -----------------------------------------------------------


class ProblemSchema(Schema):
    """RFC 9457 problem details."""

    type = fields.String(required=True, metadata={"example": "urn:aeo-registry:problem:invalid-input"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "messages per field path, e.g. licences.3.operator.id"},
    )


class WitnessStatusSchema(Schema):
    name = fields.String(required=True)
    state = fields.String(required=True, validate=validate.OneOf(("up_to_date", "behind", "failing")))
    cosigned_size = fields.Integer(required=True, allow_none=True,
                                   metadata={"description": "the newest tree size it cosigned"})
    behind = fields.Integer(required=True, metadata={"description": "entries logged since"})
    last_cosigned_at = fields.String(required=True, allow_none=True, metadata={"format": "date-time"})
    failures = fields.Integer(required=True, metadata={"description": "submissions failed in a row"})
    submissions = fields.Integer(required=True)
    failed_submissions = fields.Integer(required=True)
    next_attempt_at = fields.String(required=True, allow_none=True, metadata={
        "format": "date-time", "description": "no process submits to it before (backoff)"})
    problem = fields.String(required=True, allow_none=True, metadata={"description": "the last failure"})


class HealthSchema(Schema):
    status = fields.String(required=True)
    witnesses = fields.List(fields.Nested(WitnessStatusSchema), metadata={
        "description": "on /readyz: how each witness keeps up; never a reason for a 503"})


# --- verification ---------------------------------------------------------------------


def Nonce(**kwargs) -> fields.String:  # noqa: N802
    return fields.String(validate=[validate.Length(min=1, max=MAX_NONCE_CHARS), _printable],
                         metadata={"description": "echoed inside the signed answer"}, **kwargs)


class VerifyQuerySchema(Schema):
    at = Moment(metadata={"description": "RFC 3339 time or YYYY-MM-DD; default now"})
    nonce = Nonce()
    proofs = fields.Boolean(truthy={"true", "1"}, falsy={"false", "0"}, load_default=False,
                            metadata={"description": "add inclusion proofs and the cosigned checkpoint note"})
    cosigned = Cosigned()


class RawList(fields.List):
    """A JSON array whose items are taken as they are.

    ``fields.List(fields.Raw())`` deserialises each of up to 5,000 items
    through a field that changes nothing; the verification checks each id
    itself and answers a malformed one with an error in its result.
    """

    def __init__(self, **kwargs):
        super().__init__(fields.Raw(), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list):
            raise self.make_error("invalid")
        return value


class VerifyBatchSchema(Schema):
    # Any item, null included: a malformed id gets its own error in its result.
    operator_ids = RawList(required=True, validate=validate.Length(min=1),
                           metadata={"description": "a malformed id gets its own error in its result"})
    at = Moment(load_default=None, allow_none=True)
    nonce = Nonce(load_default=None, allow_none=True)
    include_statements = StrictBool(load_default=False)
    proofs = StrictBool(load_default=False)
    cosigned = Cosigned(load_default=None, allow_none=True, strict=True)  # JSON: a number, not "2"


class InclusionProofInAnswerSchema(Schema):
    leaf = fields.String(required=True, metadata={"description": "the exact logged leaf"})
    hashes = fields.List(fields.String(), required=True, metadata={"description": "base64 audit path"})


class LicenceInAnswerSchema(Schema):
    certificate = fields.String(required=True)
    party = fields.String(required=True)
    type = fields.String(required=True, validate=validate.OneOf(licence.TYPES))
    status = fields.String(required=True, validate=validate.OneOf(licence.STATUSES),
                           metadata={"description": "status of the version in effect at `at`"})
    suspended_scope = fields.String(required=True, allow_none=True)
    valid_from = fields.String(required=True, metadata={"format": "date"})
    valid_until = fields.String(required=True, allow_none=True, metadata={"format": "date"})
    effective_at = fields.String(required=True, metadata={"format": "date-time"})
    version = fields.Integer(required=True)
    log_index = fields.Integer(required=True)
    statement = fields.String(metadata={"description": "the issuer's JWS; left out of batches by default"})
    inclusion_proof = fields.Nested(InclusionProofInAnswerSchema, metadata={"description": "with proofs=true"})


class OperatorInAnswerSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)


class RecognitionSchema(Schema):
    basis = fields.String(required=True, validate=validate.OneOf(("national", "agreement")))
    agreement = fields.String(required=True, allow_none=True)
    types = fields.List(fields.String(), required=True)
    benefits = fields.List(fields.String(), required=True)


class ResultSchema(Schema):
    operator_id = fields.String(required=True, metadata={"description": "normalised, as looked up"})
    recognised = fields.Boolean(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(REASONS),
                           metadata={"description": "recognised, or the nearest miss"})
    operator = fields.Nested(OperatorInAnswerSchema, required=True, allow_none=True,
                             metadata={"description": "null when nothing may be disclosed"})
    recognition = fields.Nested(RecognitionSchema, required=True, allow_none=True)
    licences = fields.List(fields.Nested(LicenceInAnswerSchema), required=True)
    error = fields.String(metadata={"description": "only for a malformed id in a batch"})


class AnswerCheckpointSchema(Schema):
    tree_size = fields.Integer(required=True)
    root_hash = fields.String(required=True)
    note = fields.String(metadata={"description": (
        "with proofs or cosigned: the signed checkpoint note, with a further signature line for each "
        "cosignature (c2sp.org/tlog-cosignature) the registry holds at this size")})


class VerificationSchema(Schema):
    verifier = fields.String(required=True)
    at = fields.String(required=True, metadata={"format": "date-time"})
    nonce = fields.String(required=True, allow_none=True)
    produced_at = fields.String(required=True, metadata={"format": "date-time"})
    next_update = fields.String(required=True, metadata={"format": "date-time",
                                                         "description": "cache the answer until then"})
    checkpoint = fields.Nested(AnswerCheckpointSchema, required=True)
    results = fields.List(fields.Nested(ResultSchema), required=True)


class VerificationAnswerSchema(Schema):
    verification = fields.Nested(VerificationSchema, required=True)
    jws = fields.String(required=True, metadata={
        "description": "compact JWS, typ aeo-verification+jws, whose payload is exactly `verification`"})


class PublicCheckQuerySchema(Schema):
    # Checked in the service, so that a wrong number and an unknown one read alike.
    operator_id = fields.String(required=True, validate=validate.Length(min=1, max=64),
                                metadata={"pattern": identifiers.OPERATOR_ID_INPUT})
    certificate = fields.String(required=True, validate=validate.Length(min=1, max=64),
                                metadata={"pattern": identifiers.CERTIFICATE_INPUT})


class RecognisedBySchema(Schema):
    party = fields.String(required=True)
    agreement = fields.String(required=True, allow_none=True, metadata={"description": "null: the issuing party"})
    types = fields.List(fields.String(), required=True)


class PublicCheckSchema(Schema):
    certificate = fields.String(required=True)
    party = fields.String(required=True)
    operator = fields.Nested(OperatorInAnswerSchema, required=True, allow_none=True,
                             metadata={"description": "shown when the operator consented to publicity"})
    type = fields.String(required=True)
    status = fields.String(required=True)
    suspended_scope = fields.String(required=True, allow_none=True)
    valid_from = fields.String(required=True, metadata={"format": "date"})
    valid_until = fields.String(required=True, allow_none=True, metadata={"format": "date"})
    reason = fields.String(required=True, validate=validate.OneOf(REASONS),
                           metadata={"description": "the issuing party's own verification now"})
    consent = fields.Nested(ConsentSchema, required=True)
    shared_with_partners = fields.Boolean(required=True, metadata={
        "description": "false when the holder has not agreed to sharing: partners' verifications then answer "
                       "no_consent, and only the issuing party recognises the licence"})
    recognised_by = fields.List(fields.Nested(RecognisedBySchema), required=True, metadata={
        "description": "exactly the parties whose verification of this operator, made now, answers recognised "
                       "on the strength of this licence"})
    checked_at = fields.String(required=True, metadata={"format": "date-time"})
    checkpoint = fields.Nested(AnswerCheckpointSchema, required=True)


# --- agreements out --------------------------------------------------------------------


class AgreementRecordSchema(Schema):
    id = fields.String(required=True)
    version = fields.Integer(required=True)
    title = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(AGREEMENT_STATUSES))
    in_force_from = fields.String(required=True, metadata={"format": "date"})
    in_force_until = fields.String(required=True, allow_none=True, metadata={"format": "date"})
    recognition = fields.List(fields.Nested(DirectionSchema), required=True)
    benefits = fields.List(fields.String(), required=True)
    effective_at = fields.String(required=True, metadata={"format": "date-time"})


class AgreementVersionSchema(Schema):
    agreement = fields.Nested(AgreementRecordSchema, required=True)
    statement = fields.String(required=True, metadata={"description": "JWS by the registry's answer key"})
    log_index = fields.Integer(required=True)


class AgreementDetailSchema(AgreementVersionSchema):
    history = fields.List(fields.Nested(AgreementVersionSchema), required=True,
                          metadata={"description": "oldest first"})


class AgreementListSchema(Schema):
    items = fields.List(fields.Nested(AgreementDetailSchema), required=True)


# --- feed and snapshots ---------------------------------------------------------------


class FeedQuerySchema(Schema):
    after = fields.Integer(load_default=-1, validate=validate.Range(min=-1, max=MAX_LOG_INDEX),
                           metadata={"description": "the last index already seen; -1 for the start"})
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class FeedItemSchema(LogEntrySchema):
    kind = fields.String(required=True, validate=validate.OneOf(("licence", "party_key", "agreement")))
    statement = fields.String(metadata={"description": "present where the caller may see it"})
    void = fields.Boolean(metadata={"description": "present and true when a key revocation voided the statement"})


class FeedSchema(Schema):
    items = fields.List(fields.Nested(FeedItemSchema), required=True)
    next_after = fields.Integer(required=True, allow_none=True,
                                metadata={"description": "poll again with after=this; null when caught up"})
    tree_size = fields.Integer(required=True)


class SnapshotQuerySchema(Schema):
    party = PartyCode(metadata={"description": "only this party's licences"})
    cosigned = Cosigned()


class SnapshotSchema(Schema):
    jws = fields.String(required=True, metadata={
        "description": "JWS, typ aeo-snapshot+jws: generated_at, checkpoint, parties with keys, agreements "
                       "and every visible licence statement with its leaf, oldest first"})
