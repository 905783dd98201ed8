"""The schema comes from Alembic alone, and the models never drift from it."""

from sqlalchemy import inspect, text

from registry import migrate
from registry.db import make_engine
from registry.models import Base

from .helpers import licence_fields


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
    finally:
        engine.dispose()
