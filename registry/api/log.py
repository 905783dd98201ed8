"""The public transparency log: checkpoints, entries and proofs (RFC 9162, C2SP)."""

from flask import Response, current_app

from .. import db
from ..auth import public
from ..crypto import keys, merkle
from ..errors import UnavailableError
from ..schemas import (
    CheckpointQuerySchema,
    ConsistencyProofSchema,
    ConsistencyQuerySchema,
    InclusionProofSchema,
    InclusionQuerySchema,
    LogEntriesQuerySchema,
    LogEntriesSchema,
    LogInfoSchema,
)
from ..services import log
from . import API_PREFIX, Blueprint, keyring

blp = Blueprint("log", __name__, url_prefix=f"{API_PREFIX}/log",
                description="The append-only Merkle log of every accepted statement")

NOTE_RESPONSE = {"content": {"text/plain": {"schema": {"type": "string"}}},
                 "description": "a C2SP tlog-checkpoint as a signed note"}


def _note(text: str) -> Response:
    return Response(text, mimetype="text/plain", headers={"Cache-Control": "no-cache"})


def _upper_nodes() -> log.UpperNodes:
    return current_app.extensions["registry.log_nodes"]


def _latest():
    checkpoint = log.latest_checkpoint(db.session())
    if checkpoint is None:
        raise UnavailableError("the log has no checkpoint yet; run `registry init`")
    return checkpoint


@blp.route("")
@blp.response(200, LogInfoSchema)
@public
def log_info():
    """The log's origin, current size and root, and the key its checkpoints are signed with."""
    checkpoint = _latest()
    return {
        "origin": keyring().log_origin,
        "tree_size": checkpoint.tree_size,
        "root_hash": log.b64(checkpoint.root_hash),
        "verifier_key": keyring().log_verifier.vkey(),
        "log_key": keys.public_jwk(keyring().log_key),
    }


@blp.route("/checkpoint")
@blp.doc(responses={"200": NOTE_RESPONSE})
@public
def checkpoint():
    """The newest checkpoint, signed with the log key."""
    return _note(_latest().note)


@blp.route("/checkpoints")
@blp.arguments(CheckpointQuerySchema, location="query", as_kwargs=True)
@blp.doc(responses={"200": NOTE_RESPONSE})
@public
def checkpoint_at(tree_size):
    """The checkpoint the registry signed at this tree size, if it signed one."""
    return _note(log.checkpoint_at(db.session(), tree_size).note)


@blp.route("/entries")
@blp.arguments(LogEntriesQuerySchema, location="query", as_kwargs=True)
@blp.response(200, LogEntriesSchema)
@public
def entries(start, limit):
    """Leaves from index ``start`` on, as logged."""
    return {"items": [
        {"index": e.idx, "leaf": e.leaf, "leaf_hash": log.b64(merkle.leaf_hash(e.leaf.encode()))}
        for e in log.entries(db.session(), start, limit)
    ]}


@blp.route("/proof/inclusion")
@blp.arguments(InclusionQuerySchema, location="query", as_kwargs=True)
@blp.response(200, InclusionProofSchema)
@public
def inclusion(index, tree_size):
    """Audit path of the leaf at ``index`` in the tree of ``tree_size``."""
    digest, hashes = log.inclusion_proof(db.reader(), index, tree_size, _upper_nodes())
    return {"index": index, "tree_size": tree_size, "leaf_hash": log.b64(digest),
            "hashes": [log.b64(h) for h in hashes]}


@blp.route("/proof/consistency")
@blp.arguments(ConsistencyQuerySchema, location="query", as_kwargs=True)
@blp.response(200, ConsistencyProofSchema)
@public
def consistency(first, second):
    """Proof that the tree of ``second`` extends the tree of ``first``."""
    hashes = log.consistency_proof(db.reader(), first, second, _upper_nodes())
    return {"first": first, "second": second, "hashes": [log.b64(h) for h in hashes]}
