"""HTTP API: flask-smorest blueprints, one per resource; views stay thin."""

from __future__ import annotations

import functools

from flask import Flask

from .. import problems
from ..auth import BEARER_SCHEME, public
from . import agreements, feed, licences, log, parties, service, verify
from .base import RegistryApi, refuse_nul_characters


def _plain(view):
    """A function around a bound method, which cannot carry attributes."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        return view(*args, **kwargs)

    return wrapper


def init_app(app: Flask) -> RegistryApi:
    api = RegistryApi(app)
    api.spec.components.security_scheme("bearerAuth", BEARER_SCHEME)
    licences.register_schemas(api)
    for module in (service, parties, licences, verify, agreements, feed, log):
        api.register_blueprint(module.blp)
    app.register_blueprint(service.assets)
    # flask-smorest's own views (the spec, the docs page) are public too:
    # every route carries an access mark (tests/test_access_matrix.py).
    for endpoint, view in list(app.view_functions.items()):
        if endpoint.startswith(f"{api._make_doc_blueprint_name()}."):
            app.view_functions[endpoint] = public(_plain(view))
    app.before_request(refuse_nul_characters)
    # Registered after flask-smorest's own handler, so these win.
    problems.register(app)
    return api
