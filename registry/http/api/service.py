"""Liveness, readiness and the registry's own keys."""

import swagger_ui_bundle
from flask import Blueprint as FlaskBlueprint
from flask import jsonify, send_from_directory
from sqlalchemy import text

from ...errors import UnavailableError
from ...keyring import KeyFileError
from ...services import log, witnesses
from .. import context
from ..auth import public
from ..schemas import HealthSchema, JwkSetSchema
from .base import Blueprint, keyring

blp = Blueprint("service", __name__, description="Service health and the registry's keys")


@blp.route("/healthz")
@blp.response(200, HealthSchema)
@public
def healthz():
    """The process is up."""
    return {"status": "ok"}


@blp.route("/readyz")
@blp.response(200, HealthSchema)
@public
def readyz():
    """The database answers, the registry's keys load, and the stored log agrees with its last signed checkpoint.

    ``witnesses`` says how each configured witness keeps up; a witness down
    or refusing is shown there and still answers 200 (the log itself is fine).
    """
    try:
        context.session().execute(text("SELECT tree_size FROM log_head")).scalar_one()
    except Exception as exc:  # any driver error means not ready
        raise UnavailableError("the database is not reachable or not initialised") from exc
    try:
        keyring().check()
    except KeyFileError as exc:
        raise UnavailableError("the registry's keys are missing or unreadable") from exc
    problem = log.integrity_problem(context.reader(), context.session(), keyring().log_verifier, keyring().log_origin)
    if problem is not None:
        raise UnavailableError(f"the log takes no writes: {problem}")
    # Witnesses are shown, never counted against readiness: one down must not take the service out of the proxy.
    return {"status": "ready", "witnesses": [state.as_json() for state in witnesses.status(context.session())]}


@blp.route("/.well-known/jwks.json")
@blp.response(200, JwkSetSchema)
@public
def registry_jwks():
    """The registry's public keys: answer key (aeo_use answers) and log key (aeo_use log)."""
    try:
        return jsonify(keyring().registry_jwks())
    except KeyFileError as exc:
        raise UnavailableError("the registry's keys are missing; run `registry init`") from exc


# Not part of the API, so not in the OpenAPI spec: a plain Flask blueprint.
assets = FlaskBlueprint("docs_assets", __name__)


@assets.route("/docs/assets/<path:filename>")
@public
def docs_assets(filename):
    """Swagger UI's files, served locally so the docs work on a closed network."""
    return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)
