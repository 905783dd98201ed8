"""Fixtures: an app on a fresh database per test, SQLite by default or PostgreSQL.

``pytest --db=postgresql`` runs the same tests on the machine's PostgreSQL
(``REGISTRY_TEST_POSTGRES``, default postgresql://postgres@127.0.0.1:5432/postgres):
the suite creates its own database, empties it between tests and drops it at
the end. Keys are generated per test; time is frozen through ``registry.clock``.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from registry import clock, create_app
from registry.keyring import Keyring
from registry.runtime import Runtime
from registry.services import agreements
from registry.store import migrate
from registry.store.database import make_engine

from . import leaks
from .helpers import AP5, MK_ALIAS, RS_MK, Registry, licence_fields

POSTGRES_ADMIN_URL = os.environ.get("REGISTRY_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
FROZEN_NOW = datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)


def pytest_addoption(parser):
    parser.addoption("--db", choices=["sqlite", "postgresql"], default=os.environ.get("REGISTRY_TEST_DB", "sqlite"),
                     help="database backend for the tests")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--db") != "postgresql":
        skip = pytest.mark.skip(reason="needs --db=postgresql")
        for item in items:
            if "postgresql_only" in item.keywords:
                item.add_marker(skip)


def pytest_report_header(config):
    return f"database backend: {config.getoption('--db')}"


@pytest.fixture(scope="session")
def backend(request) -> str:
    return request.config.getoption("--db")


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "registry.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def _postgres_database(backend):
    if backend != "postgresql":
        yield None
        return
    name = f"aeo_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


TABLES = ("cosignature", "witness", "licence_identifier", "licence_version", "licence", "agreement_version",
          "agreement", "api_token", "party_key", "party", "checkpoint", "log_node", "log_entry")


@pytest.fixture
def database_url(backend, tmp_path, _sqlite_template, _postgres_database) -> str:
    if backend == "sqlite":
        path = tmp_path / "registry.sqlite3"
        shutil.copy(_sqlite_template, path)
        return f"sqlite:///{path}"
    engine = make_engine(_postgres_database)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(TABLES)}"))
        connection.execute(text("UPDATE log_head SET tree_size = 0"))
    engine.dispose()
    return _postgres_database


@pytest.fixture
def keys_dir(tmp_path) -> Path:
    path = tmp_path / "keys"
    Keyring(path, "test").ensure_registry_keys()
    return path


@pytest.fixture
def now(monkeypatch):
    """Frozen time; ``now.advance(seconds=...)`` moves it on."""

    class Clock:
        value = FROZEN_NOW

        def __call__(self):
            return self.value

        def advance(self, **delta):
            from datetime import timedelta

            self.value = self.value + timedelta(**delta)
            return self.value

        def set(self, moment):
            self.value = moment
            return moment

    frozen = Clock()
    monkeypatch.setattr(clock, "now", frozen)
    return frozen


@pytest.fixture
def app(database_url, keys_dir, now):
    application = create_app(
        # No witness submitter thread (off with env testing); tests that want one start it (test_witnesses.py).
        {"env": "testing", "database_url": database_url, "keys_dir": keys_dir,
         "log_origin": "aeo-registry.test/log"},
        environ={},
    )
    with application.app_context():
        from registry.cli import initialise

        initialise()
    yield application
    Runtime.of(application).close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def registry(app, client, now) -> Registry:
    return Registry(app, client, now)


@pytest.fixture
def mk(registry) -> Registry:
    """North Macedonia with a hosted key and one published licence, MKAEOF000001.

    Modules that need MK set up otherwise define their own ``mk``.
    """
    registry.add_party("MK")
    assert registry.put("MKAEOF000001", licence_fields("MK", 1)).status_code == 201
    return registry


@pytest.fixture
def world(registry):
    for code in ("AL", "MK", "RS", "BA"):
        registry.add_party(code)
    with registry.session() as session:
        agreements.put(session, registry.keyring, AP5, registry.now())
        agreements.put(session, registry.keyring, RS_MK, registry.now())
    fields = licence_fields("MK", 1, effective_at="2024-03-01T00:00:00Z")
    fields["operator"]["aliases"] = [MK_ALIAS]
    assert registry.put("MKAEOF000001", fields).status_code == 201
    assert registry.put("ALAEOC000001", licence_fields("AL", 1, type="AEOC"), code="AL").status_code == 201
    return registry



class _LogCollector(logging.Handler):
    def __init__(self, texts: list[tuple[str, str]]):
        super().__init__(logging.NOTSET)
        self.texts = texts

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.texts.append((f"log record of {record.name}", text))


@pytest.fixture(autouse=True)
def no_private_key_leaks(request, monkeypatch):
    """Suite-wide: no response body, log record or CLI output of any test holds private key material.

    Looks for PEM private keys, private JWK members, and the raw bytes of the
    test's keys (its keys folder and the parties' own keys) in every encoding.
    """
    import flask
    from flask.testing import FlaskCliRunner

    texts: list[tuple[str, str]] = []

    def on_response(sender, response, **extra):
        if not response.is_streamed and not response.direct_passthrough:
            body = response.get_data()
            try:
                text = body.decode()
            except UnicodeDecodeError:  # binary (log tiles): each byte as one character, raw keys included
                text = body.decode("latin-1")
            texts.append((f"response to {flask.request.method} {flask.request.path}", text))

    invoke = FlaskCliRunner.invoke

    def recorded_invoke(self, *args, **kwargs):
        result = invoke(self, *args, **kwargs)
        texts.append(("CLI output", result.output + (result.stderr or "")))
        return result

    collector = _LogCollector(texts)
    logging.getLogger().addHandler(collector)
    flask.request_finished.connect(on_response)
    monkeypatch.setattr(FlaskCliRunner, "invoke", recorded_invoke)
    try:
        yield texts
    finally:
        flask.request_finished.disconnect(on_response)
        logging.getLogger().removeHandler(collector)
    secrets: list[bytes] = []
    values = request.node.funcargs
    if isinstance(values.get("keys_dir"), Path) and values["keys_dir"].is_dir():
        secrets += leaks.key_files_bytes(values["keys_dir"])
    if isinstance(values.get("registry"), Registry):
        secrets += [leaks.raw_private_bytes(key) for key in values["registry"].own_keys.values()]
    found = [f"{where}: {what}" for where, text in texts for what in leaks.find_leaks(text, secrets)]
    assert not found, "private key material leaked:\n" + "\n".join(found[:20])
