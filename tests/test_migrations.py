"""The schema comes from Alembic alone, and the models never drift from it."""

import base64

from sqlalchemy import inspect, text

from registry.crypto import merkle
from registry.store import migrate
from registry.store import nodes as layout
from registry.store.database import make_engine
from registry.store.models import Base

from .helpers import licence_fields, operator_id


def test_upgrade_head_on_an_empty_database_then_check(database_url):
    # The fixture's database was made by `upgrade head` on an empty one; check
    # the result against the models: raises if autogenerate would change anything.
    engine = make_engine(database_url)
    try:
        migrate.check(engine)
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        assert "alembic_version" in tables
    finally:
        engine.dispose()


def test_upgrade_head_from_nothing(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    try:
        assert inspect(engine).get_table_names() == []
        migrate.upgrade(engine)
        migrate.upgrade(engine)  # a second run is a no-op
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT tree_size FROM log_head").scalar_one() == 0
        migrate.check(engine)
    finally:
        engine.dispose()


def test_downgrade_to_base_and_back(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'down.sqlite3'}")
    try:
        migrate.upgrade(engine)
        migrate.downgrade(engine, "base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        migrate.upgrade(engine)
        migrate.check(engine)
    finally:
        engine.dispose()


def test_0002_fills_partner_consent_from_the_statements(registry, database_url):
    registry.add_party("MK")
    registry.put("MKAEOF1", licence_fields(consent={"partners": True, "public": False}))
    registry.put("MKAEOF2", licence_fields(serial=2, consent={"partners": False, "public": True}))
    engine = make_engine(database_url)
    try:
        migrate.downgrade(engine, "0001")
        migrate.upgrade(engine, "0002")
        with engine.connect() as connection:
            rows = dict(connection.execute(text("SELECT certificate, consent_partners FROM licence")).all())
        assert rows == {"MKAEOF1": True, "MKAEOF2": False}
        # Back to the newest: on PostgreSQL the next test gets this database, emptied table by table.
        migrate.upgrade(engine)
    finally:
        engine.dispose()


def test_0008_adds_witnesses_and_cosignatures_and_back(registry, database_url):
    registry.add_party("MK")
    engine = make_engine(database_url)
    try:
        migrate.downgrade(engine, "0007")
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
        assert {"witness", "cosignature"}.isdisjoint(tables) and "checkpoint" in tables
        migrate.upgrade(engine)
        migrate.check(engine)
    finally:
        engine.dispose()
    assert registry.client.get("/readyz").get_json()["witnesses"] == []


def test_0004_fills_the_facts_publishing_writes(registry, database_url):
    registry.add_party("MK")
    first, suspended = licence_fields(), licence_fields(status="suspended", reason="audit")
    for fields in (first, suspended):
        fields["operator"]["aliases"] = [operator_id("MK", 9)]
    for certificate, fields in (("MKAEOF1", first), ("MKAEOF1", suspended), ("MKAEOF2", licence_fields(serial=2))):
        response = registry.put(certificate, fields)
        assert response.status_code in (200, 201), response.get_json()
    engine = make_engine(database_url)
    query = text("SELECT log_index, facts FROM licence_version ORDER BY log_index")
    try:
        with engine.connect() as connection:
            published = connection.execute(query).all()
        migrate.downgrade(engine, "0003")
        migrate.upgrade(engine, "0004")
        with engine.connect() as connection:
            assert connection.execute(query).all() == published
        assert len(published) == 3 and all('"logged_at"' in facts for _, facts in published)
        migrate.upgrade(engine)
        migrate.check(engine)
    finally:
        engine.dispose()


def test_0005_keys_the_stored_nodes_and_back(registry, database_url):
    registry.add_party("MK")
    for serial in range(1, 12):
        assert registry.put(f"MKAEOF{serial}", licence_fields(serial=serial)).status_code == 201
    engine = make_engine(database_url)
    nodes = text("SELECT level, idx, hash FROM log_node ORDER BY level, idx")
    try:
        with engine.connect() as connection:
            stored = connection.execute(nodes).all()
            keys = dict(connection.execute(text("SELECT node_key, hash FROM log_node")).all())
        assert len(stored) > 20
        assert keys == {layout.node_key((level, idx)): digest for level, idx, digest in stored}
        migrate.downgrade(engine, "0004")
        with engine.connect() as connection:
            assert connection.execute(nodes).all() == stored
        migrate.upgrade(engine, "0005")
        with engine.connect() as connection:
            assert dict(connection.execute(text("SELECT node_key, hash FROM log_node")).all()) == keys
            assert connection.execute(nodes).all() == stored
        migrate.upgrade(engine)
        migrate.check(engine)
    finally:
        engine.dispose()
    # Proofs read through the keys still verify against the signed checkpoint.
    head = registry.client.get("/api/v1/log").get_json()
    for index in range(head["tree_size"]):
        proof = registry.client.get(f"/api/v1/log/proof/inclusion?index={index}&tree_size={head['tree_size']}")
        merkle.verify_inclusion(index, head["tree_size"], base64.b64decode(proof.get_json()["leaf_hash"]),
                                [base64.b64decode(h) for h in proof.get_json()["hashes"]],
                                base64.b64decode(head["root_hash"]))
