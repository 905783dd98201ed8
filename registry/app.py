"""The Flask application factory."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask.sessions import SessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

from . import cli
from .config import PROJECT_ROOT, ConfigError, Settings
from .http import api, context, headers, web
from .keyring import KeyFileError
from .runtime import Runtime

__all__ = ["ConfigError", "create_app"]


class NoSessions(SessionInterface):
    """The registry keeps no sessions: the API knows a caller by the bearer
    token of each request, and the pages remember only a language cookie
    (http/web/i18n.py). Flask's default would still set up a signed-cookie session
    on every request, a measurable part of what a /healthz costs, to hold nothing;
    here every request gets Flask's empty ``NullSession`` instead.
    """

    def open_session(self, app, request):
        return None

    def save_session(self, app, session, response):
        return None


def create_app(config: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Flask:
    """Defaults, then ``REGISTRY_*`` environment variables, then ``config`` (tests)."""
    settings = Settings.load(environ, config)
    # No static folder: the docs' files come from swagger_ui_bundle, the pages' from registry/http/web,
    # and every route needs an access mark.
    app = Flask(__name__, instance_path=str(PROJECT_ROOT / "instance"), static_folder=None)
    app.session_interface = NoSessions()
    app.config.update(
        DEBUG=settings.debug,
        TESTING=settings.testing,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        API_TITLE="AEO mutual recognition registry",
        API_VERSION="1.0.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="/docs/assets/",
        REGISTRY=settings,
    )
    logging.getLogger("registry").setLevel(settings.log_level.upper())
    if settings.proxy_hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops)

    runtime = Runtime.build(settings)
    if settings.production:
        try:
            runtime.keyring.check()
        except KeyFileError as exc:
            raise ConfigError(f"the registry's keys are not usable: {exc}") from exc
    runtime.install(app)
    if runtime.witness_submitter is not None:
        # On the first request a process serves, not here: gunicorn forks its workers
        # after loading the app only when it preloads, and the CLI loads it without serving.
        app.before_request(runtime.witness_submitter.start)
    context.init_app(app)
    api.init_app(app)
    web.init_app(app)
    headers.init_app(app)
    cli.init_app(app)
    return app
