"""What every blueprint of the API builds on: its prefix, the blueprint and argument parser, bodies read safely."""

from __future__ import annotations

import copy
import http
import re
from collections.abc import Callable
from typing import Any, ClassVar

from flask import request
from flask_smorest import Api
from flask_smorest import Blueprint as SmorestBlueprint
from flask_smorest.utils import prepare_response
from marshmallow import Schema, ValidationError
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from ...crypto import ijson
from ...errors import InvalidInputError
from ..context import keyring  # noqa: F401 - the views' way to the registry's keys
from ..problems import PROBLEM_JSON
from ..schemas import PATH_PARAMETERS, ProblemSchema

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


_SCALARS = (type(None), bool, int, float, str)


class RegistryParser(FlaskParser):
    """Unknown query parameters are refused like unknown body fields; bad input is a 400."""

    DEFAULT_UNKNOWN_BY_LOCATION: ClassVar = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": None,
                                             "querystring": None}
    DEFAULT_VALIDATION_STATUS = 400

    def load_json(self, req, schema):
        # webargs' own parse has no depth limit (a RecursionError is a 500) and takes what I-JSON refuses.
        if not is_json_request(req):
            return core.missing
        raw = req.get_data(cache=True)
        return core.missing if not raw else parse_body(raw)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._schemas: dict[type[Schema], Schema] = {}
        # A schema's defaults when no query string is sent, with how to copy
        # them for each call (None: a required parameter, the full parse says so).
        self._defaults: dict[type[Schema], tuple[dict[str, Any], Callable[[dict], dict]] | None] = {}

    def parse(self, argmap, req=None, *, location=None, **kwargs):
        # Most calls (every verification of the benchmark, every partner's
        # plain GET) send no query string at all: their arguments are the
        # schema's defaults, worked out once. Anything sent goes the full way.
        if location in ("query", "querystring") and not request.args and isinstance(argmap, type):
            if argmap not in self._defaults:
                self._defaults[argmap] = self._load_defaults(argmap, req)
            found = self._defaults[argmap]
            if found is not None:
                defaults, copier = found
                return copier(defaults)
        return super().parse(argmap, req, location=location, **kwargs)

    def _load_defaults(self, argmap, req) -> tuple[dict[str, Any], Callable[[dict], dict]] | None:
        try:
            defaults = self._get_schema(argmap, req).load({})
        except ValidationError:
            return None
        # A view may change what it is given, so each call gets its own copy:
        # a plain one where every default is a scalar (deepcopy showed in the profile
        # of a verification), decided here once rather than on every call.
        scalars = all(isinstance(value, _SCALARS) for value in defaults.values())
        return defaults, dict if scalars else copy.deepcopy

    def _get_schema(self, argmap, req) -> Schema:
        # webargs makes a new instance of a schema class on every request,
        # which showed in a verification's profile; schemas hold no request
        # state, so one instance per class serves every request and thread.
        if isinstance(argmap, type) and issubclass(argmap, Schema):
            schema = self._schemas.get(argmap)
            if schema is None:
                schema = self._schemas[argmap] = argmap()
            return schema
        return super()._get_schema(argmap, req)


_RULE_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([A-Za-z_][A-Za-z0-9_]*)>")


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = RegistryParser()

    def route(self, rule, *, parameters=None, **options):
        """Path parameters get their documented form (schemas.PATH_PARAMETERS) unless the route gives one."""
        given = {p.get("name") for p in parameters or [] if isinstance(p, dict) and p.get("in") == "path"}
        documented = [{"in": "path", "name": name, "required": True, **PATH_PARAMETERS[name]}
                      for name in _RULE_ARGUMENT.findall(rule) if name in PATH_PARAMETERS and name not in given]
        return super().route(rule, parameters=[*documented, *(parameters or [])], **options)


def parse_body(raw: bytes) -> Any:
    """A request body read as I-JSON within the depth limit, or a 400 naming ``body``."""
    try:
        return ijson.loads(raw)
    except ijson.IJSONError as exc:
        raise InvalidInputError(f"the body is not valid I-JSON: {exc}", {"body": [str(exc)]}) from None


def json_body() -> dict[str, Any]:
    """The request's JSON object, whatever its content type, or a 400 that says what is wrong with it."""
    body = parse_body(request.get_data(cache=True))
    if not isinstance(body, dict):
        raise InvalidInputError("the body must be a JSON object", {"body": ["must be an object"]})
    return body


def refuse_nul_characters() -> None:
    """NUL cannot be stored or even looked up in a PostgreSQL text column: refuse it as input."""
    given = [("path", name, value) for name, value in (request.view_args or {}).items()]
    # A NUL can reach the query's names and values only as %00 (or raw); most requests have neither.
    if b"%00" in request.query_string or b"\x00" in request.query_string:
        given += [("query", name, value) for name, value in request.args.items(multi=True)]
    for location, name, value in given:
        if "\x00" in name or (isinstance(value, str) and "\x00" in value):
            raise InvalidInputError(f"{location} parameter {name!r} holds a NUL character",
                                    {name: ["must not contain NUL characters"]})
