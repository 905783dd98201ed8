"""Verification for partner customs and authorities, and the trader's public self-check."""

from flask import Response, current_app

from ... import clock
from ...errors import InvalidInputError, RateLimitedError
from ...runtime.batches import BATCH_GC
from ...services import verification, witnesses
from .. import context
from ..auth import current_caller, public, public_check_wait, require
from ..schemas import (
    PublicCheckQuerySchema,
    PublicCheckSchema,
    VerificationAnswerSchema,
    VerifyBatchSchema,
    VerifyQuerySchema,
)
from .base import API_PREFIX, Blueprint

blp = Blueprint("verify", __name__, url_prefix=API_PREFIX,
                description="Is this operator an AEO that my administration recognises?")


def _signed(query: verification.Query) -> Response:
    """The signed answer, made at the log's size as read with the caller's token (or the newest cosigned)."""
    settings, runtime, lookups = current_app.config["REGISTRY"], context.runtime(), context.lookups()
    if query.cosigned is None:
        size = lookups.log_size()
    else:
        # At the newest checkpoint with enough cosignatures, often below the current size.
        size = witnesses.newest_cosigned(context.session(), query.cosigned, settings.witness_interval_seconds)
    snapshot = runtime.snapshot_at(size, context.session)
    # With the witnesses' cosignatures as they stand now: they sign the checkpoint, not the answer.
    note = witnesses.cosigned_note(context.session(), snapshot.checkpoint) if query.with_note else None
    body = verification.answer(lookups, snapshot, runtime.keyring, query, now=clock.now(),
                               ttl_seconds=settings.answer_ttl_seconds, parts=runtime.batches, note=note)
    # The answer is built once and sent as is: the body's "verification" is the JWS payload.
    return current_app.response_class(body, mimetype="application/json",
                                      headers={"Cache-Control": f"private, max-age={settings.answer_ttl_seconds}"})


# The views return the answer's bytes as signed; the schema documents them.
SIGNED_ANSWER = {"schema": VerificationAnswerSchema, "description": "the signed answer", "success": True}


@blp.route("/verify/<operator_id>")
@require("customs", "authority")
@blp.arguments(VerifyQuerySchema, location="query", as_kwargs=True)
@blp.alt_response(200, **SIGNED_ANSWER)
def verify_one(operator_id, at=None, nonce=None, proofs=False, cosigned=None):
    """Verify one operator, by its id or any alias, as the token's party, at ``at`` (default now).

    With ``cosigned=K`` the answer is computed at the newest checkpoint that
    at least K of the registry's witnesses cosigned (its ``checkpoint`` says
    which), from the statements logged below it, and carries the cosigned note.
    """
    return _signed(verification.Query(current_caller().party, [operator_id], at, nonce,
                                      include_statements=True, proofs=proofs, single=True, cosigned=cosigned))


@blp.route("/verify:batch", methods=["POST"])
@BATCH_GC()  # the reading of the ids and the writing of the answer too
@require("customs", "authority")
@blp.arguments(VerifyBatchSchema)
@blp.alt_response(200, **SIGNED_ANSWER)
def verify_batch(body):
    """Verify up to 5,000 operators at once; results in the order asked.

    An id asked more than once is answered once, and its result repeated at
    every position asked (a malformed copy gets its own ``error``). The
    answer holds its results twice (the ``verification`` object, and base64url
    inside ``jws``): per id with one licence about 1 KB, about 2.9 KB with
    ``include_statements`` (more for a large statement signed by an
    authority, up to 64 KiB each), about 3.7 KB with ``proofs`` as well plus
    about 110 bytes per doubling of the log. 5,000 such ids with statements
    and proofs make about 18 to 30 MB.
    """
    limit = current_app.config["REGISTRY"].verify_batch_max
    if len(body["operator_ids"]) > limit:
        raise InvalidInputError(f"{len(body['operator_ids'])} operator ids; the limit is {limit}",
                                {"operator_ids": [f"at most {limit} ids per batch"]})
    return _signed(verification.Query(current_caller().party, body["operator_ids"], body["at"], body["nonce"],
                                      include_statements=body["include_statements"], proofs=body["proofs"],
                                      cosigned=body["cosigned"]))


@blp.route("/public/check")
@public
@blp.arguments(PublicCheckQuerySchema, location="query", as_kwargs=True)
@blp.response(200, PublicCheckSchema)
def public_check(operator_id, certificate):
    """A trader's self-check: both numbers must belong to one licence. Rate-limited per client."""
    wait = public_check_wait()
    if wait is not None:
        raise RateLimitedError("too many checks from this address; try again later", wait)
    return verification.public_check(context.session(), operator_id, certificate, clock.now())
