"""HTTP API: flask-smorest blueprints, one per resource; views stay thin."""

from __future__ import annotations

import http
from typing import Any, ClassVar

from flask import Flask, current_app, request
from flask_smorest import Api
from flask_smorest import Blueprint as SmorestBlueprint
from flask_smorest.utils import prepare_response
from marshmallow import Schema
from webargs.flaskparser import FlaskParser

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


class RegistryParser(FlaskParser):
    """Unknown query parameters are refused like unknown body fields; bad input is a 400."""

    DEFAULT_UNKNOWN_BY_LOCATION: ClassVar = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": None,
                                             "querystring": None}
    DEFAULT_VALIDATION_STATUS = 400

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._schemas: dict[type[Schema], Schema] = {}

    def _get_schema(self, argmap, req) -> Schema:
        # webargs makes a new instance of a schema class on every request,
        # which cost a tenth of a verification; schemas hold no request
        # state, so one instance per class serves every request and thread.
        if isinstance(argmap, type) and issubclass(argmap, Schema):
            schema = self._schemas.get(argmap)
            if schema is None:
                schema = self._schemas[argmap] = argmap()
            return schema
        return super()._get_schema(argmap, req)


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = RegistryParser()


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
    from . import agreements, feed, licences, log, parties, service, verify

    api = RegistryApi(app)
    api.spec.components.security_scheme("bearerAuth", BEARER_SCHEME)
    licences.register_schemas(api)
    for module in (service, parties, licences, verify, agreements, feed, log):
        api.register_blueprint(module.blp)
    app.register_blueprint(service.assets)
    # Registered after flask-smorest's own handler, so these win.
    errors.register(app)
    return api
