"""`audit` passes on an honest registry and names each kind of tampering."""

import pytest
from sqlalchemy import text

from registry.runtime import Runtime

from .helpers import licence_fields


@pytest.fixture
def demo(runner, tmp_path):
    result = runner.invoke(args=["registry", "demo", "--tokens-file", str(tmp_path / "t.json")])
    assert result.exit_code == 0, result.output
    return runner


def _audit(runner):
    return runner.invoke(args=["registry", "audit"])


def _tamper(app, sql, **params):
    engine = Runtime.of(app).database.engine
    with engine.begin() as connection:
        assert connection.execute(text(sql), params).rowcount == 1


def test_demo_registry_audits_clean(demo):
    result = _audit(demo)
    assert result.exit_code == 0, result.output
    assert "all hold" in result.stdout


def test_altered_statement_is_named(demo, app):
    _tamper(app, "UPDATE log_entry SET statement = replace(statement, 'e', 'f') WHERE idx = 20")
    result = _audit(demo)
    assert result.exit_code == 1
    assert "entry 20" in result.stderr and "leaf does not describe the stored statement" in result.stderr


def test_statement_and_its_leaf_altered_together_fail_on_signature_and_hash(demo, app):
    import hashlib
    import json

    engine = Runtime.of(app).database.engine
    with engine.begin() as connection:
        statement, leaf = connection.execute(text("SELECT statement, leaf FROM log_entry WHERE idx = 25")).one()
        head, payload, signature = statement.split(".")
        forged = f"{head}.{payload[:-4]}AAAA.{signature}"
        leaf_obj = json.loads(leaf)
        leaf_obj["statement_sha256"] = hashlib.sha256(forged.encode()).hexdigest()
        from registry.crypto.canonical import canonical_text

        connection.execute(text("UPDATE log_entry SET statement = :s, leaf = :l WHERE idx = 25"),
                           {"s": forged, "l": canonical_text(leaf_obj)})
    result = _audit(demo)
    assert result.exit_code == 1
    assert "entry 25" in result.stderr
    assert "stored hash of level 0 node 25" in result.stderr


def test_altered_leaf_is_named(demo, app):
    _tamper(app, "UPDATE log_entry SET leaf = replace(leaf, :a, :b) WHERE idx = 30",
            a='"logged_at":"2', b='"logged_at":"1')
    result = _audit(demo)
    assert result.exit_code == 1
    assert "entry 30" in result.stderr


def test_altered_node_hash_is_named(demo, app):
    _tamper(app, "UPDATE log_node SET hash = :h WHERE level = 3 AND idx = 1", h=b"\x00" * 32)
    result = _audit(demo)
    assert result.exit_code == 1
    assert "level 3 node 1" in result.stderr


def test_altered_checkpoint_is_named(demo, app):
    _tamper(app, "UPDATE checkpoint SET note = replace(note, :a, :b) WHERE tree_size = 5", a="\n— ", b="\n— x")
    result = _audit(demo)
    assert result.exit_code == 1
    assert "checkpoint at size 5" in result.stderr


def test_removed_entry_is_a_gap(demo, app):
    engine = Runtime.of(app).database.engine
    with engine.begin() as connection:
        # Foreign keys would stop this edit; an attacker with the database would switch them off too.
        if engine.dialect.name == "sqlite":
            connection.execute(text("PRAGMA foreign_keys=OFF"))
        else:
            connection.execute(text("SET session_replication_role = replica"))
        top = connection.execute(text("SELECT max(idx) FROM log_entry")).scalar_one()
        connection.execute(text("UPDATE log_entry SET idx = :n WHERE idx = :top"), {"n": top + 5, "top": top})
    result = _audit(demo)
    assert result.exit_code == 1
    assert "gap" in result.stderr


def test_index_tables_must_agree_with_the_log(registry, runner, app):
    registry.add_party("MK")
    registry.put("MKAEOF1", licence_fields())
    _tamper(app, "UPDATE licence SET status = 'revoked' WHERE certificate = 'MKAEOF1'")
    result = _audit(runner)
    assert result.exit_code == 1
    assert "table licence: certificate MKAEOF1 holds status 'revoked' where the log says 'active'" in result.stderr


def test_facts_kept_for_verification_must_match_the_statement(registry, runner, app, client):
    # Verification answers from licence_version.facts: a changed status there would change answers.
    registry.add_party("MK")
    registry.put("MKAEOF1", licence_fields())
    operator = licence_fields()["operator"]["id"]
    _tamper(app, "UPDATE licence_version SET facts = replace(facts, '\"active\"', '\"revoked\"') "
                 "WHERE certificate = 'MKAEOF1'")
    answer = client.get(f"/api/v1/verify/{operator}", headers=registry.headers("MK", "customs")).get_json()
    assert answer["verification"]["results"][0]["reason"] == "revoked"  # what the audit must catch
    result = _audit(runner)
    assert result.exit_code == 1
    assert "licence MKAEOF1" in result.stderr
    assert "the facts indexed for verification differ from the statement" in result.stderr


def test_publishing_refuses_to_sign_over_tampered_hashes(registry, app):
    registry.add_party("MK")
    registry.put("MKAEOF1", licence_fields())
    size = registry.log_size()
    _tamper(app, "UPDATE log_node SET hash = :h WHERE level = 1 AND idx = 0", h=b"\x01" * 32)
    response = registry.put("MKAEOF2", licence_fields(serial=2))
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.get_json()["type"].endswith("log-integrity")
    assert registry.log_size() == size


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_forged_signature_is_named_inline_and_by_worker_processes(demo, app, monkeypatch, jobs):
    import hashlib
    import json

    from registry.crypto.canonical import canonical_text
    from registry.services import audit

    engine = Runtime.of(app).database.engine
    with engine.begin() as connection:
        statement, leaf = connection.execute(text("SELECT statement, leaf FROM log_entry WHERE idx = 27")).one()
        other = connection.execute(text("SELECT statement FROM log_entry WHERE idx = 28")).scalar_one()
        head, payload, _ = statement.split(".")
        forged = f"{head}.{payload}.{other.split('.')[2]}"  # well-formed, but another statement's signature
        leaf_obj = json.loads(leaf)
        leaf_obj["statement_sha256"] = hashlib.sha256(forged.encode()).hexdigest()
        connection.execute(text("UPDATE log_entry SET statement = :s, leaf = :l WHERE idx = 27"),
                           {"s": forged, "l": canonical_text(leaf_obj)})
    monkeypatch.setattr(audit, "_SIGNATURE_CHUNK", 4)  # several chunks in flight
    with Runtime.of(app).database.session() as session:
        report = audit.run(session, Runtime.of(app).keyring, jobs=jobs)
    assert report.entries > 27
    signature_faults = [f for f in report.faults if "signature does not verify" in f]
    assert signature_faults and all(f.startswith("entry 27 ") for f in signature_faults)
