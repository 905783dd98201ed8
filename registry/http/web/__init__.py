"""Web pages for traders and border officers, server-rendered, in four languages.

A plain Flask blueprint, so the pages stay out of the OpenAPI spec. Views are
thin: they call the same services as the API (``verification.public_check``,
``agreements.listing``, ``parties.parties_json``, ``evidence.examine``) and
turn the registry's errors into plain words in the reader's language rather
than problem+json. Every page works without JavaScript.
"""

from __future__ import annotations

from flask import Flask

from . import i18n
from .views import bp


def init_app(app: Flask) -> None:
    i18n.init_app(app)
    app.register_blueprint(bp)


__all__ = ["bp", "init_app"]
