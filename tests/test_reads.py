"""What a verification reads: compiled statements on a driver connection, and ``verification.Lookups`` over them."""

from __future__ import annotations

import pytest
from sqlalchemy import Integer, bindparam, select, text

from registry.runtime import Runtime
from registry.services import tokens, verification
from registry.store.database import SQLITE_READ_CACHE_KIB
from registry.store.models import LogHead
from registry.store.reads import Prepared, Reader

from .helpers import licence_fields, operator_id

HEAD = Prepared(select(LogHead.tree_size).where(LogHead.id == 1))
ECHO = Prepared(select(bindparam("v", type_=Integer), LogHead.tree_size).where(LogHead.id == 1))


@pytest.fixture
def reader(app):
    return Runtime.of(app).database.reader()


def test_literals_of_the_statement_are_bound_for_the_driver(registry, reader):
    assert reader.one(HEAD) == (registry.log_size(),)


def test_a_dropped_connection_is_replaced_once(registry, reader):
    reader.one(HEAD)
    reader.connection.dbapi_connection.close()  # as a database restart would leave it
    assert reader.one(HEAD) == (registry.log_size(),)


def test_each_gives_every_run_its_rows_in_order(registry, reader):
    size = registry.log_size()
    # On PostgreSQL the runs go through one pipeline; the rows are the same.
    assert list(reader.each(ECHO, [{"v": 3}, {"v": 1}, {"v": 2}])) == [[(3, size)], [(1, size)], [(2, size)]]
    # A caller that stops early leaves the connection fit for the next query.
    runs = reader.each(ECHO, [{"v": 1}, {"v": 2}, {"v": 3}])
    assert next(runs) == [(1, size)]
    runs.close()
    assert reader.one(ECHO, v=9) == (9, size)


def test_sqlite_readers_keep_a_larger_page_cache(registry, app, reader):
    database = Runtime.of(app).database
    if not database.is_sqlite:
        pytest.skip("a pragma of SQLite")
    assert reader.one(Prepared(text("PRAGMA cache_size")))[0] == -SQLITE_READ_CACHE_KIB
    # Sessions (writes, pages, the CLI) keep SQLite's default; the enlarged cache is the hot path's.
    with database.session() as session:
        assert session.execute(text("PRAGMA cache_size")).scalar() == -2000


def test_verification_reads_what_the_registry_published(registry, client):
    registry.add_party("MK")
    registry.put("MKAEOF000001", licence_fields())
    registry.put("MKAEOF000001", licence_fields(status="suspended", reason="audit"))
    answer = client.get(f"/api/v1/verify/{licence_fields()['operator']['id']}",
                        headers=registry.headers("MK", "customs")).get_json()["verification"]
    assert answer["results"][0]["reason"] == "suspended"
    assert answer["checkpoint"]["tree_size"] == registry.log_size()


def test_the_token_and_the_logs_size_are_read_together_and_versions_below_it(registry, now):
    registry.add_party("MK")
    known = licence_fields()["operator"]["id"]
    registry.put("MKAEOF000001", licence_fields())
    registry.put("MKAEOF000001", licence_fields(status="suspended", reason="audit"))
    token = registry.token("MK", "customs")
    size = registry.log_size()
    with registry.session() as session:
        lookups = verification.Lookups(Reader.of(session))
        caller = lookups.caller(token)
        assert (caller.party, caller.role, lookups.log_size()) == ("MK", "customs", size)
        assert [v.status for v in lookups.versions([known], size, statements=True)[known]] == ["active", "suspended"]
        # Versions are bounded by the size asked: a reader racing the second
        # publish, which read the size one entry smaller, sees the first alone.
        assert [v.status for v in lookups.versions([known], size - 1)[known]] == ["active"]
        assert lookups.versions([operator_id("MK", 99)], size) == {operator_id("MK", 99): []}
        assert verification.Lookups(Reader.of(session)).caller("aeo_" + "x" * 43) is None
        tokens.revoke(session, token, now())
        assert verification.Lookups(Reader.of(session)).caller(token) is None


def test_a_batch_over_several_chunks_matches_one_by_one(registry, reader):
    registry.add_party("MK")
    ids = [licence_fields(serial=n)["operator"]["id"] for n in range(1, 4)]
    for n in range(1, 4):
        registry.put(f"MKAEOF00000{n}", licence_fields(serial=n))
    unknown = [operator_id("MK", 100 + n) for n in range(2 * verification._CHUNK)]
    size = registry.log_size()
    lookups = verification.Lookups(reader)
    found = lookups.versions(ids + unknown, size)
    for identifier in ids:
        assert found[identifier] == lookups.versions([identifier], size)[identifier]
        assert len(found[identifier]) == 1
    assert all(found[u] == [] for u in unknown)


@pytest.mark.parametrize("cache", [False, True])
def test_what_a_single_verification_asks_the_database(registry, app, database_url, keys_dir, monkeypatch, cache):
    """Without the cache: the token with the log's size, then the id's versions. With it, once warm, nothing
    (on SQLite, the data version that says nothing was committed since)."""
    from registry import create_app

    served = create_app({"env": "testing", "database_url": database_url, "keys_dir": keys_dir,
                         "log_origin": "aeo-registry.test/log", "verify_cache": cache}, environ={})
    try:
        registry.add_party("MK")
        registry.put("MKAEOF000001", licence_fields())
        client = served.test_client()
        path, headers = f"/api/v1/verify/{licence_fields()['operator']['id']}", registry.headers("MK", "customs")
        assert client.get(path, headers=headers).status_code == 200  # snapshot loaded
        kept = Runtime.of(served).verify_cache
        if kept is not None and not Runtime.of(served).database.is_sqlite:
            # PostgreSQL: the state is trusted once the listener has read the log since the last commit.
            with kept.round_done:
                assert kept.round_done.wait_for(lambda: kept.state is not None, timeout=10)
        assert client.get(path, headers=headers).status_code == 200  # kept in memory now
        asked = []
        real = Reader.all
        reader = Runtime.of(served).database.reader()  # the test client answers in this thread

        def counted(self, query, **params):
            if self is reader:  # not the PostgreSQL cache's listener, whose reader is its own
                asked.append(query)
            return real(self, query, **params)

        monkeypatch.setattr(Reader, "all", counted)
        answer = client.get(path, headers=headers)
        assert answer.get_json()["verification"]["results"][0]["reason"] == "recognised"
        if not cache:
            assert len(asked) == 2
        else:
            assert len(asked) == (1 if Runtime.of(served).database.is_sqlite else 0)
    finally:
        Runtime.of(served).close()
