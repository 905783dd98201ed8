"""What a request works with: the app's runtime, its database session, this thread's reader."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from ..keyring import Keyring
from ..runtime import Runtime
from ..services.verification import Lookups
from ..store.reads import Reader


def runtime() -> Runtime:
    return Runtime.of(current_app)


def keyring() -> Keyring:
    return runtime().keyring


def session() -> Session:
    """The request's session, opened on first use and closed when the request ends."""
    if "db_session" not in g:
        g.db_session = runtime().database.session()
    return g.db_session


def reader() -> Reader:
    """This server thread's reader (see ``store.database.Database.reader``)."""
    return runtime().database.reader()


def lookups() -> Lookups:
    """What this request reads to authenticate and verify (``services.verification.Lookups``), one per request."""
    if "lookups" not in g:
        g.lookups = runtime().lookups(reader())
    return g.lookups


def _close_session(_exc) -> None:
    db_session = g.pop("db_session", None)
    if db_session is not None:
        # Whatever a failed request left unflushed or uncommitted is dropped here.
        db_session.close()


def init_app(app: Flask) -> None:
    app.teardown_appcontext(_close_session)
