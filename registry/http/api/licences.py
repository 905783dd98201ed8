"""Publishing and reading a party's licences (role authority)."""

from flask import current_app

from ... import clock
from ...runtime.batches import BATCH_GC
from ...services import licences
from .. import context
from ..auth import current_caller, problem_ref, require
from ..schemas import (
    BatchLicenceFieldsSchema,
    BatchStatementSchema,
    LicenceDetailSchema,
    LicenceFieldsSchema,
    LicencePageSchema,
    LicenceQuerySchema,
    LicenceRecordSchema,
    PublishBatchResultSchema,
    PublishBatchSchema,
    StatementSchema,
)
from .base import API_PREFIX, Blueprint, json_body, keyring

blp = Blueprint("licences", __name__, url_prefix=API_PREFIX,
                description="AEO licences, published by their national authority")

# Two forms of one body; marshmallow cannot say "one of", the spec can.
PUBLISH_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"oneOf": [
        {"$ref": "#/components/schemas/Statement"},
        {"$ref": "#/components/schemas/LicenceFields"},
    ]}}},
}


# Refusals a publisher acts on, beside the invalid input every route may get.
PUBLISH_REFUSALS = {
    "409": problem_ref("not the next version, a status change the lifecycle forbids, a party without a hosted "
                       "key, or an alias another party's current version lists"),
    "422": problem_ref("an identifier of another party (operator.id must begin with the issuer's code)"),
}


@blp.route("/licences/<certificate>", methods=["PUT"])
@require("authority", party_bound=True)
@blp.doc(requestBody=PUBLISH_BODY, responses=PUBLISH_REFUSALS)
@blp.response(200, LicenceRecordSchema, description="a new version, or the same statement again")
@blp.alt_response(201, schema=LicenceRecordSchema, description="a new licence")
def put_licence(certificate):
    """Publish a licence version: a statement signed by the party, or plain fields signed with its hosted key."""
    (result,), _ = licences.publish(context.session(), keyring(), current_caller().party,
                                    [(certificate, json_body())], clock.now(), batch=False)
    return result.as_json(), 201 if result.created else 200


@blp.route("/licences:batch", methods=["POST"])
@BATCH_GC()  # thousands of licences: as for a verify batch
@require("authority")
@blp.doc(responses=PUBLISH_REFUSALS)
@blp.arguments(PublishBatchSchema)
@blp.response(200, PublishBatchResultSchema)
def publish_batch(body):
    """Publish many licence versions at once, all or nothing; errors are keyed licences.N.field."""
    limit = current_app.config["REGISTRY"].publish_batch_max
    items = [licences.split_certificate(item) for item in body["licences"]]
    results, size = licences.publish(context.session(), keyring(), current_caller().party, items, clock.now(),
                                     batch=True, limit=limit)
    return {"licences": [r.as_json() for r in results], "tree_size": size}


@blp.route("/licences/<certificate>")
@require("authority", party_bound=True)
@blp.response(200, LicenceDetailSchema)
def get_licence(certificate):
    """The current version of one of the party's licences, with every earlier version."""
    return licences.get(context.session(), current_caller().party, certificate)


@blp.route("/licences")
@require("authority")
@blp.arguments(LicenceQuerySchema, location="query", as_kwargs=True)
@blp.response(200, LicencePageSchema)
def list_licences(status=None, type=None, updated_since=None, limit=100, cursor=None):
    """The party's licences in log order, filtered and paged."""
    return licences.list_page(context.session(), current_caller().party, status=status, type_=type,
                              updated_since=updated_since, limit=limit, cursor=cursor)


def register_schemas(api) -> None:
    """Name the two body forms before any view refers to them."""
    api.spec.components.schema("Statement", schema=StatementSchema)
    api.spec.components.schema("LicenceFields", schema=LicenceFieldsSchema)
    api.spec.components.schema("BatchStatement", schema=BatchStatementSchema)
    api.spec.components.schema("BatchLicenceFields", schema=BatchLicenceFieldsSchema)
