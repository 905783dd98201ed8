"""The public transparency log: checkpoints, entries and proofs (RFC 9162, C2SP)."""

import gzip

from flask import Response, current_app, request

from ...crypto import keys, merkle, tiles
from ...errors import NotFoundError, UnavailableError
from ...services import log, witnesses
from .. import context
from ..auth import public
from ..schemas import (
    CheckpointQuerySchema,
    ConsistencyProofSchema,
    ConsistencyQuerySchema,
    InclusionProofSchema,
    InclusionQuerySchema,
    LatestCheckpointQuerySchema,
    LogEntriesQuerySchema,
    LogEntriesSchema,
    LogInfoSchema,
    ProofFileQuerySchema,
)
from .base import API_PREFIX, Blueprint, keyring

blp = Blueprint("log", __name__, url_prefix=f"{API_PREFIX}/log",
                description="The append-only Merkle log of every accepted statement")

NOTE_RESPONSE = {"content": {"text/plain": {"schema": {"type": "string"}}},
                 "description": "a C2SP tlog-checkpoint as a signed note"}
PROOF_FILE_RESPONSE = {"content": {"text/plain": {"schema": {"type": "string"}}},
                       "description": "a c2sp.org/tlog-proof@v1 file; its extra line is the base64 of the logged leaf"}
TILE_RESPONSE = {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                 "description": "C2SP tlog-tiles: a full tile for ever, a partial one (.p/W) as long as it is partial"}
# A full tile never changes. A partial tile's bytes do not change either, but
# the spec lets a log stop serving it once the full tile exists, so caches
# keep it briefly.
FULL_TILE_CACHE = "public, max-age=31536000, immutable"
PARTIAL_TILE_CACHE = "public, max-age=60"


def _note(text: str) -> Response:
    return Response(text, mimetype="text/plain", headers={"Cache-Control": "no-cache"})


def _upper_nodes() -> log.NodeCache:
    return context.runtime().proof_nodes


def _latest():
    checkpoint = log.latest_checkpoint(context.session())
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
@blp.arguments(LatestCheckpointQuerySchema, location="query", as_kwargs=True)
@blp.doc(responses={"200": NOTE_RESPONSE})
@public
def checkpoint(cosigned=None):
    """The newest checkpoint, signed with the log key, with a line for each witness's cosignature held."""
    session = context.session()
    if cosigned is None:
        return _note(witnesses.cosigned_note(session, _latest()))
    size = witnesses.newest_cosigned(session, cosigned, current_app.config["REGISTRY"].witness_interval_seconds)
    return _note(witnesses.cosigned_note(session, log.checkpoint_at(session, size)))


@blp.route("/checkpoints")
@blp.arguments(CheckpointQuerySchema, location="query", as_kwargs=True)
@blp.doc(responses={"200": NOTE_RESPONSE})
@public
def checkpoint_at(tree_size):
    """The checkpoint the registry signed at this tree size, if it signed one, with the cosignatures held."""
    session = context.session()
    return _note(witnesses.cosigned_note(session, log.checkpoint_at(session, tree_size)))


@blp.route("/entries")
@blp.arguments(LogEntriesQuerySchema, location="query", as_kwargs=True)
@blp.response(200, LogEntriesSchema)
@public
def entries(start, limit):
    """Leaves from index ``start`` on, as logged."""
    return {"items": [
        {"index": e.idx, "leaf": e.leaf, "leaf_hash": log.b64(merkle.leaf_hash(e.leaf.encode()))}
        for e in log.entries(context.session(), start, limit)
    ]}


@blp.route("/proof/inclusion")
@blp.arguments(InclusionQuerySchema, location="query", as_kwargs=True)
@blp.response(200, InclusionProofSchema)
@public
def inclusion(index, tree_size):
    """Audit path of the leaf at ``index`` in the tree of ``tree_size``."""
    digest, hashes = log.inclusion_proof(context.reader(), index, tree_size, _upper_nodes())
    return {"index": index, "tree_size": tree_size, "leaf_hash": log.b64(digest),
            "hashes": [log.b64(h) for h in hashes]}


@blp.route("/proof/tlog-proof")
@blp.arguments(ProofFileQuerySchema, location="query", as_kwargs=True)
@blp.doc(responses={"200": PROOF_FILE_RESPONSE})
@public
def proof_file(index):
    """Entry ``index`` as a self-contained proof file (C2SP tlog-proof), at its most cosigned checkpoint.

    The file holds the logged leaf (identifiers and the statement's SHA-256,
    no operator data), its inclusion proof and the checkpoint note with the
    witnesses' cosignatures: `check-answer` and the evidence page check it
    with the log key and a witness policy alone.
    """
    text = witnesses.proof_file(context.session(), index)
    return Response(text, mimetype="text/plain", headers={
        "Cache-Control": "no-cache", "Content-Disposition": f'attachment; filename="aeo-log-{index}.tlog-proof"'})


@blp.route("/proof/consistency")
@blp.arguments(ConsistencyQuerySchema, location="query", as_kwargs=True)
@blp.response(200, ConsistencyProofSchema)
@public
def consistency(first, second):
    """Proof that the tree of ``second`` extends the tree of ``first``."""
    hashes = log.consistency_proof(context.reader(), first, second, _upper_nodes())
    return {"first": first, "second": second, "hashes": [log.b64(h) for h in hashes]}


def _parsed(parse, *path: str) -> tiles.Tile:
    try:
        return parse(*path)
    except tiles.TileError as exc:
        raise NotFoundError(f"no such tile: {exc}", headers={"Cache-Control": "no-store"}) from exc


def _tile_response(data: bytes, tile: tiles.Tile) -> Response:
    return Response(data, mimetype="application/octet-stream",
                    headers={"Cache-Control": FULL_TILE_CACHE if tile.full else PARTIAL_TILE_CACHE})


@blp.route("/tile/<level>/<path:index>")
@blp.doc(responses={"200": TILE_RESPONSE})
@public
def tile(level, index):
    """A hash tile (C2SP tlog-tiles): 256 hashes of one level of the tree, or the first W of a partial tile."""
    found = _parsed(tiles.parse_tile, level, index)
    return _tile_response(log.tile_data(context.reader(), found), found)


@blp.route("/tile/entries/<path:index>")
@blp.doc(responses={"200": TILE_RESPONSE})
@public
def entry_bundle(index):
    """An entry bundle (C2SP tlog-tiles): 256 logged leaves, or the first W, each after its uint16 length."""
    found = _parsed(tiles.parse_bundle, index)
    response = _tile_response(log.bundle_data(context.reader(), found), found)
    # Leaves are JSON and compress some fivefold; the spec asks bundles to be compressed.
    response.vary.add("Accept-Encoding")
    if "gzip" in request.accept_encodings:
        response.set_data(gzip.compress(response.get_data(), mtime=0))
        response.headers["Content-Encoding"] = "gzip"
    return response
