"""AEO mutual recognition registry.

Importing the package loads nothing heavy: ``registry.offline`` (with
``registry.crypto`` and ``registry.domain``) runs at a border post without
Flask or a database. The web application comes from ``create_app``.
"""

from __future__ import annotations

from typing import Any


def create_app(*args: Any, **kwargs: Any):
    """The Flask application; see ``registry.app.create_app``."""
    from .app import create_app as factory

    return factory(*args, **kwargs)
