"""The API's request and response shapes, in one place.

Input is validated here and, for what a statement says, in
``services.statements`` (whose schemas these build on) and ``domain``; views
and services receive loaded, typed values. The same classes document the API
in the OpenAPI spec. Unknown fields are refused everywhere (marshmallow's
default, RAISE).
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from ..crypto import tiles
from ..domain import identifiers, licence
from ..domain.agreement import STATUSES as AGREEMENT_STATUSES
from ..domain.recognition import REASONS
from ..domain.timefmt import parse_moment
from ..services.statements import (
    AGREEMENT_ID,
    MAX_LOG_INDEX,
    CertificateNumber,
    ConsentSchema,
    DirectionSchema,
    LicenceFieldsSchema,
    LicencePayloadSchema,
    PartyCode,
    StatementSchema,
    StrictBool,
    Timestamp,
)

MAX_NONCE_CHARS = 128


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


# --- path parameters ------------------------------------------------------------


# How each path parameter is documented wherever a route names it (see
# registry.http.api.Blueprint.route): a new route with <code> gets it for free.
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
