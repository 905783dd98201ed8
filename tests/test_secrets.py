"""Secrets: tokens only hashed, private keys never shown, production refuses unsafe settings."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import MetaData, select

from registry import create_app
from registry.config import ConfigError
from registry.crypto import keys
from registry.keyring import Keyring
from registry.runtime import Runtime

from . import leaks
from .helpers import licence_fields

ROOT = Path(__file__).resolve().parents[1]


# --- tokens ------------------------------------------------------------------------


def _every_stored_value(app) -> list[str]:
    engine = Runtime.of(app).database.engine
    metadata = MetaData()
    metadata.reflect(engine)
    values = []
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                values += [v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in row if v is not None]
    return values


def test_tokens_are_stored_only_as_their_hash(registry, runner, app, client):
    registry.add_party("MK")
    issued = runner.invoke(args=["registry", "token", "issue", "MK", "--role", "authority", "--label", "ops"])
    token = issued.stdout.strip()
    assert issued.exit_code == 0 and token.startswith("aeo_") and len(token) > 40
    assert client.get("/api/v1/licences", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    stored = _every_stored_value(app)
    assert not any(token in value or token[4:] in value for value in stored), "the token is in the database"
    assert hashlib.sha256(token.encode()).hexdigest() in stored
    # The listing shows the prefix only: 12 characters, of which 8 are of the secret part.
    listing = runner.invoke(args=["registry", "token", "list"]).stdout
    assert token[:12] in listing and token not in listing


# --- the leak guard is itself tested -------------------------------------------------------


def test_the_leak_finder_recognises_each_form_of_private_key():
    key = keys.generate()
    raw = leaks.raw_private_bytes(key)
    pem = key.private_key.private_bytes(leaks.serialization.Encoding.PEM, leaks.serialization.PrivateFormat.PKCS8,
                                        leaks.serialization.NoEncryption()).decode()
    assert leaks.find_leaks(pem) == ["a PEM private key"]
    assert leaks.find_leaks(json.dumps(key.as_dict(private=True))) == ['a JWK "d" member']
    for encoded in leaks.encodings(raw):
        assert leaks.find_leaks(f"detail: {encoded}", [raw]), encoded
    public = json.dumps(keys.public_jwk(key))
    assert leaks.find_leaks(public, [raw]) == []
    assert leaks.find_leaks('{"errors": {"d": ["Unknown field."]}}') == []


def test_the_leak_guard_sees_responses_log_records_and_cli_output(no_private_key_leaks, client, runner):
    client.get("/healthz")
    logging.getLogger("registry.test").warning("a line for the guard")
    runner.invoke(args=["registry", "party", "list"])
    seen = dict(no_private_key_leaks)
    assert json.loads(seen["response to GET /healthz"]) == {"status": "ok"}
    assert seen["log record of registry.test"] == "a line for the guard"
    assert "CLI output" in seen


def test_the_leak_guard_checks_the_keys_of_the_test(no_private_key_leaks, keys_dir, client):
    """The guard reads this test's key files; none of them is served, even the registry's public JWKS."""
    jwks = client.get("/.well-known/jwks.json").get_data(as_text=True)
    secrets = leaks.key_files_bytes(keys_dir)
    assert len(secrets) == 2 and leaks.find_leaks(jwks, secrets) == []
    assert leaks.find_leaks(leaks.encodings(secrets[0])[0], secrets)


def test_errors_never_show_key_files_even_when_they_are_broken(registry, app, client, keys_dir):
    registry.add_party("MK")
    for path in keys_dir.glob("party-MK-*.pem"):
        path.write_text(path.read_text().replace("A", "B", 5))
    Runtime.of(app).keyring.forget()
    response = registry.put("MKAEOF000001", licence_fields())
    assert response.status_code >= 400
    assert "BEGIN" not in response.get_data(as_text=True) and str(keys_dir) not in response.get_data(as_text=True)


# --- production refuses unsafe settings ---------------------------------------------------


@pytest.fixture
def production(tmp_path):
    keys_dir = tmp_path / "keys"
    Keyring(keys_dir, "prod").ensure_registry_keys()
    return {"REGISTRY_ENV": "production", "REGISTRY_KEYS_DIR": str(keys_dir),
            "REGISTRY_DATABASE_URL": f"sqlite:///{tmp_path / 'prod.sqlite3'}"}


def test_production_starts_with_keys_and_no_debug_and_needs_no_secret_key(production):
    # Nothing is signed with a Flask secret (no sessions; the language cookie is unsigned), so none is asked for.
    app = create_app(environ=production)
    assert app.config["REGISTRY"].production and not app.debug
    assert app.secret_key is None
    Runtime.of(app).database.dispose()


@pytest.mark.parametrize(("change", "message"), [
    ({"REGISTRY_DEBUG": "true"}, "REGISTRY_DEBUG"),
    ({"REGISTRY_DEBUG": "1"}, "REGISTRY_DEBUG"),
])
def test_production_refuses_debug(production, change, message):
    environ = {k: v for k, v in {**production, **change}.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        create_app(environ=environ)


@pytest.mark.parametrize("damage", ["missing", "readable by others", "not a key"])
def test_production_refuses_to_start_without_usable_keys(production, damage):
    answer_key = Path(production["REGISTRY_KEYS_DIR"]) / "registry-answer.pem"
    if damage == "missing":
        answer_key.unlink()
    elif damage == "readable by others":
        answer_key.chmod(0o644)
    else:
        answer_key.write_text("not a key")
    with pytest.raises(ConfigError, match="keys"):
        create_app(environ=production)


def test_the_same_settings_start_outside_production(production):
    environ = {**production, "REGISTRY_ENV": "development", "REGISTRY_DEBUG": "true"}
    app = create_app(environ=environ)
    assert app.debug
    Runtime.of(app).database.dispose()


def test_wsgi_entry_point_exits_non_zero_in_unsafe_production(production):
    """What gunicorn imports: a refusal, with the reason, and no secret in the message."""
    env = {**os.environ, **production, "REGISTRY_DEBUG": "true"}
    completed = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=60, check=False)
    assert completed.returncode != 0
    assert "ConfigError" in completed.stderr and "REGISTRY_DEBUG" in completed.stderr
