"""The Flask application factory."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask.sessions import SessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

from . import api, cli, clock, db, headers, web
from .config import PROJECT_ROOT, ConfigError, Settings
from .keyring import KeyFileError, Keyring
from .ratelimit import RateLimiter
from .services import witnesses
from .services.batch_helper import BatchHelper
from .services.log import UpperNodes
from .services.verification import SnapshotCache

__all__ = ["ConfigError", "create_app"]


class NoSessions(SessionInterface):
    """The registry keeps no sessions: the API knows a caller by the bearer
    token of each request, and the pages remember only a language cookie
    (web/i18n.py). Flask's default would still set up a signed-cookie session
    on every request, a tenth of what a /healthz costs, to hold nothing;
    here every request gets Flask's empty ``NullSession`` instead.
    """

    def open_session(self, app, request):
        return None

    def save_session(self, app, session, response):
        return None


def _submit_to_witnesses(app: Flask, settings: Settings) -> None:
    """A witness submitter thread, started by the first request a process serves.

    On the first request, not here: gunicorn's workers fork after importing
    the app only when it preloads, and the CLI loads the app without serving.
    """
    submitter = witnesses.Submitter(app.extensions["registry.db"].session, witnesses.Timing.of(settings),
                                    lambda: clock.now())
    app.extensions["registry.witness_submitter"] = submitter

    @app.before_request
    def _start_submitter():
        if not submitter.started:
            submitter.start()


def create_app(config: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Flask:
    """Defaults, then ``REGISTRY_*`` environment variables, then ``config`` (tests)."""
    settings = Settings.load(environ, config)
    # No static folder: the docs' files come from swagger_ui_bundle, the pages' from registry/web,
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

    keyring = Keyring(settings.keys_dir, settings.log_origin)
    if settings.production:
        try:
            keyring.check()
        except KeyFileError as exc:
            raise ConfigError(f"the registry's keys are not usable: {exc}") from exc
    app.extensions["registry.keyring"] = keyring
    app.extensions["registry.auth_failures"] = RateLimiter(*settings.auth_failure_rate)
    app.extensions["registry.public_checks"] = RateLimiter(*settings.public_check_rate)
    # Shared by a worker's threads; keyed by tree size, so never stale.
    app.extensions["registry.snapshots"] = SnapshotCache()
    # Answers asked at a cosigned checkpoint (?cosigned=K), below the current size as a rule.
    app.extensions["registry.cosigned_snapshots"] = SnapshotCache()
    # Committed log nodes never change: kept per worker for proofs (services/log.py).
    app.extensions["registry.log_nodes"] = UpperNodes()

    db.init_app(app, db.Database(settings.database_url, settings.read_fan_out, settings.verify_cache))
    if settings.batch_helper:
        # Started by the server (gunicorn.conf.py), not here: tests and the CLI answer alone.
        app.extensions["registry.batch_helper"] = BatchHelper(settings.database_url, settings.batch_split_min,
                                                              settings.read_fan_out)
    if settings.submits_to_witnesses:
        _submit_to_witnesses(app, settings)
    api.init_app(app)
    web.init_app(app)
    headers.init_app(app)
    cli.init_app(app)
    return app
