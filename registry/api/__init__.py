"""HTTP API: flask-smorest blueprints, one per resource; views stay thin."""

from __future__ import annotations

import http
from typing import Any

from flask import Flask, current_app, request
from flask_smorest import Api
from flask_smorest.utils import prepare_response

from .. import errors
from ..auth import BEARER_SCHEME
from ..errors import PROBLEM_JSON, InvalidInputError
from ..keyring import Keyring
from ..schemas import ProblemSchema

API_PREFIX = "/api/v1"


class RegistryApi(Api):
    """flask-smorest, with errors documented as problem+json."""

    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self):
        for status in http.HTTPStatus:
            response = {"description": status.phrase}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_JSON if status >= 400 else self.DEFAULT_RESPONSE_CONTENT_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "problem details", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_JSON)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


def keyring() -> Keyring:
    return current_app.extensions["registry.keyring"]


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 400 that says what is wrong with it."""
    body = request.get_json(force=True, silent=True)
    if body is None:
        raise InvalidInputError("the body is not valid JSON", {"body": ["not valid JSON"]})
    if not isinstance(body, dict):
        raise InvalidInputError("the body must be a JSON object", {"body": ["must be an object"]})
    return body


def init_app(app: Flask) -> RegistryApi:
    from . import licences, log, parties, service

    api = RegistryApi(app)
    api.spec.components.security_scheme("bearerAuth", BEARER_SCHEME)
    licences.register_schemas(api)
    for module in (service, parties, licences, log):
        api.register_blueprint(module.blp)
    # Registered after flask-smorest's own handler, so these win.
    errors.register(app)
    return api
