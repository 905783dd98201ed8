"""The hot path's reader: Core statements run on the driver, a dead connection replaced."""

from __future__ import annotations

import os
import sqlite3
import threading
import warnings
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Integer, bindparam, select, text

from registry import create_app, db
from registry.models import LogHead
from registry.services import licences, tokens, verification

from .helpers import licence_fields, licence_payload, operator_id, sign_licence

HEAD = db.Prepared(select(LogHead.tree_size).where(LogHead.id == 1))


def test_literals_of_the_statement_are_bound_for_the_driver(registry, app):
    with app.test_request_context():
        assert db.reader().one(HEAD) == (registry.log_size(),)


def test_a_dropped_connection_is_replaced_once(registry, app):
    with app.test_request_context():
        reader = db.reader()
        reader.one(HEAD)
        reader.connection.dbapi_connection.close()  # as a database restart would leave it
        assert reader.one(HEAD) == (registry.log_size(),)


def test_parsed_versions_are_a_pure_memo_of_the_facts(registry):
    registry.add_party("MK")
    key = registry.own_key("MK")
    logged_at = datetime(2026, 11, 27, 10, tzinfo=UTC)
    first = licences.facts_text(licence_payload("MKAEOF1", 1), logged_at, key.kid)
    other = licences.facts_text(licence_payload("MKAEOF1", 1, status="suspended"), logged_at, key.kid)
    later = licences.facts_text(licence_payload("MKAEOF1", 1, status="suspended"),
                                logged_at + timedelta(seconds=1), key.kid)
    statement = sign_licence(key, licence_payload("MKAEOF1", 1))
    memo = verification.ParsedVersions(capacity=2)
    version = memo.get(7, first)
    assert memo.get(7, first) is version and version.statement is None
    # The same index with other facts (another database, a restored copy) is parsed anew.
    assert memo.get(7, other).status == "suspended"
    assert memo.get(7, later).logged_at.second == 1
    assert memo.get(7, later, statement).statement == statement
    for idx in (8, 9):
        memo.get(idx, first)
    assert len(memo._entries) == 2
    # A batch reads what is kept but keeps nothing new.
    kept = memo.get(9, first)
    assert memo.get(9, first, keep=False) is kept
    assert memo.get(10, first, keep=False).log_index == 10
    assert 10 not in memo._entries and 9 in memo._entries


def test_a_batch_leaves_the_memo_to_single_lookups(registry, client):
    registry.add_party("MK")
    registry.put("MKAEOF000001", licence_fields())
    headers = registry.headers("MK", "customs")
    operator_id = licence_fields()["operator"]["id"]
    verification.PARSED._entries.clear()
    batch = client.post("/api/v1/verify:batch", json={"operator_ids": [operator_id, "MK4030000375897"]},
                        headers=headers)
    assert batch.status_code == 200 and batch.get_json()["verification"]["results"][0]["licences"]
    assert not verification.PARSED._entries
    assert client.get(f"/api/v1/verify/{operator_id}", headers=headers).status_code == 200
    assert len(verification.PARSED._entries) == 1


def test_verification_reads_what_the_registry_published(registry, client):
    registry.add_party("MK")
    registry.put("MKAEOF000001", licence_fields())
    registry.put("MKAEOF000001", licence_fields(status="suspended", reason="audit"))
    answer = client.get(f"/api/v1/verify/{licence_fields()['operator']['id']}",
                        headers=registry.headers("MK", "customs")).get_json()["verification"]
    assert answer["results"][0]["reason"] == "suspended"
    assert answer["checkpoint"]["tree_size"] == registry.log_size()


def test_sqlite_readers_keep_a_larger_page_cache(registry, app):
    with app.test_request_context():
        if not db.database().is_sqlite:
            pytest.skip("a pragma of SQLite")
        assert db.reader().one(db.Prepared(text("PRAGMA cache_size")))[0] == -db.SQLITE_READ_CACHE_KIB
        # Sessions (writes, pages, the CLI) keep SQLite's default; the enlarged cache is the hot path's.
        assert db.session().execute(text("PRAGMA cache_size")).scalar() == -2000


def test_one_id_and_the_token_are_read_together_at_one_size(registry, app):
    registry.add_party("MK")
    known = licence_fields()["operator"]["id"]
    registry.put("MKAEOF000001", licence_fields())
    registry.put("MKAEOF000001", licence_fields(status="suspended", reason="audit"))
    token = registry.token("MK", "customs")
    size = registry.log_size()
    with registry.session() as session:
        reader = db.Reader.of(session)
        caller = verification.authenticate_one(reader, token, known.lower())
        assert (caller.party, caller.role, caller.tree_size) == ("MK", "customs", size)
        assert [v.status for v in caller.prefetched[known]] == ["active", "suspended"]
        # The versions are bounded by the size read in the same statement: a
        # head one entry smaller (as a reader racing the second publish sees it)
        # gives the first version alone.
        session.execute(text("UPDATE log_head SET tree_size = tree_size - 1"))
        caller = verification.authenticate_one(reader, token, known)
        assert caller.tree_size == size - 1
        assert [v.status for v in caller.prefetched[known]] == ["active"]
        session.rollback()


def test_one_id_lookup_gives_nothing_without_a_live_token(registry, app, now):
    registry.add_party("MK")
    known = licence_fields()["operator"]["id"]
    registry.put("MKAEOF000001", licence_fields())
    token = registry.token("MK", "customs")
    with registry.session() as session:
        reader = db.Reader.of(session)
        assert verification.authenticate_one(reader, "aeo_" + "x" * 43, known) is None
        assert verification.authenticate_one(reader, token, "MK-not-an-id!").prefetched is None
        unknown = operator_id("MK", 99)
        assert verification.authenticate_one(reader, token, unknown).prefetched == {unknown: []}
        tokens.revoke(session, token, now())
        assert verification.authenticate_one(reader, token, known) is None


def test_verify_one_is_one_statement(registry, client, app, monkeypatch):
    registry.add_party("MK")
    registry.put("MKAEOF000001", licence_fields())
    headers = registry.headers("MK", "customs")
    client.get(f"/api/v1/verify/{licence_fields()['operator']['id']}", headers=headers)  # snapshot loaded
    statements = []
    real = db.Reader._run
    request_thread = threading.current_thread()  # the test client answers in this thread

    def run(self, sql, args):
        # Only the request's: on PostgreSQL the verification cache's listener
        # thread reads the log's size through a Reader of its own every second.
        if threading.current_thread() is request_thread:
            statements.append(sql)
        return real(self, sql, args)

    monkeypatch.setattr(db.Reader, "_run", run)
    answer = client.get(f"/api/v1/verify/{licence_fields()['operator']['id']}", headers=headers)
    assert answer.status_code == 200 and answer.get_json()["verification"]["results"][0]["reason"] == "recognised"
    assert len(statements) == 1


ECHO = db.Prepared(select(bindparam("v", type_=Integer), LogHead.tree_size).where(LogHead.id == 1))


def test_each_gives_every_run_its_rows_in_order(registry, app):
    size = registry.log_size()
    with app.test_request_context():
        reader = db.reader()
        # On PostgreSQL the runs go through one pipeline; the rows are the same.
        assert [rows for rows in reader.each(ECHO, [{"v": 3}, {"v": 1}, {"v": 2}])] == [
            [(3, size)], [(1, size)], [(2, size)]]
        # A caller that stops early leaves the connection fit for the next query.
        runs = reader.each(ECHO, [{"v": 1}, {"v": 2}, {"v": 3}])
        assert next(runs) == [(1, size)]
        runs.close()
        assert reader.one(ECHO, v=9) == (9, size)


def test_a_batch_over_several_chunks_matches_one_by_one(registry, app):
    registry.add_party("MK")
    ids = [licence_fields(serial=n)["operator"]["id"] for n in range(1, 4)]
    for n in range(1, 4):
        registry.put(f"MKAEOF00000{n}", licence_fields(serial=n))
    unknown = [operator_id("MK", 100 + n) for n in range(verification._CHUNK)]
    size = registry.log_size()
    with app.test_request_context():
        reader = db.reader()
        found = verification.licence_versions(reader, ids + unknown, size)
        for identifier in ids:
            assert [v.log_index for v in found[identifier]] == [
                v.log_index for v in verification.licence_versions(reader, [identifier], size)[identifier]]
            assert len(found[identifier]) == 1
        assert all(found[u] == [] for u in unknown)


def _published(registry, count: int) -> tuple[list[str], int]:
    registry.add_party("MK")
    for n in range(1, count + 1):
        registry.put(f"MKAEOF{n:06d}", licence_fields(serial=n))
    return [licence_fields(serial=n)["operator"]["id"] for n in range(1, count + 1)], registry.log_size()


def test_batches_read_their_chunks_on_several_connections_at_once(registry, app, database_url, keys_dir,
                                                                  monkeypatch):
    ids, size = _published(registry, 3)
    asked = ids + [operator_id("MK", 100 + n) for n in range(2 * verification._CHUNK)]
    threads = []
    real = db.Reader._run
    def run(self, sql, args):
        threads.append(threading.current_thread().name)
        return real(self, sql, args)

    monkeypatch.setattr(db.Reader, "_run", run)
    with app.test_request_context():
        fanned = verification.licence_versions(db.reader(), asked, size)
    chunks = -(-len(asked) // verification._CHUNK)
    assert len(threads) == chunks and all(name.startswith("registry-read") for name in threads)
    # The same rows as one connection reading the chunks one after the other.
    alone = create_app({"env": "testing", "database_url": database_url, "keys_dir": keys_dir,
                        "log_origin": "aeo-registry.test/log", "read_fan_out": 1}, environ={})
    threads.clear()
    with alone.test_request_context():
        assert db.database().fan_out is None
        single = verification.licence_versions(db.reader(), asked, size)
    alone.extensions["registry.db"].dispose()
    # One after the other on SQLite; on PostgreSQL in one pipeline, which reads no result through _run.
    alone_sqlite = alone.extensions["registry.db"].is_sqlite
    assert threads == ([threading.current_thread().name] * chunks if alone_sqlite else [])
    assert {k: [v.log_index for v in vs] for k, vs in fanned.items()} == {
        k: [v.log_index for v in vs] for k, vs in single.items()}
    assert all(len(fanned[i]) == 1 for i in ids)


def test_a_failed_run_on_the_fan_out_reaches_the_caller_and_spares_the_rest(registry, app):
    size = registry.log_size()
    broken = db.Prepared(select(bindparam("v", type_=Integer), text("tree_size FROM no_such_table")))
    with app.test_request_context():
        fan_out = db.database().fan_out
        with pytest.raises(fan_out.engine.dialect.loaded_dbapi.Error, match="no_such_table"):
            list(fan_out.each(broken, [{"v": n} for n in range(20)]))
        # Its threads and connections serve the next batch as before.
        assert list(fan_out.each(ECHO, [{"v": n} for n in range(20)])) == [[(n, size)] for n in range(20)]


def test_the_fan_out_is_a_setting_and_closes_with_the_database(app):
    from registry.config import ConfigError, Settings

    assert Settings.load({}).read_fan_out == 8
    assert Settings.load({"REGISTRY_READ_FAN_OUT": "3"}).read_fan_out == 3
    with pytest.raises(ConfigError, match="REGISTRY_READ_FAN_OUT"):
        Settings.load({"REGISTRY_READ_FAN_OUT": "0"})
    assert db.Database("sqlite://", 8).fan_out is None  # each connection would see its own empty database
    database = app.extensions["registry.db"]
    assert len(list(database.fan_out.each(ECHO, [{"v": 1}, {"v": 2}]))) == 2 and database.fan_out._readers
    connections = [reader.connection.dbapi_connection for reader in database.fan_out._readers]
    database.dispose()
    assert database.fan_out._readers == [] and database.fan_out._executor is None
    assert all(_closed(connection) for connection in connections)


def _closed(connection) -> bool:
    if not isinstance(connection, sqlite3.Connection):
        return connection.closed  # psycopg
    try:
        connection.cursor()
    except sqlite3.ProgrammingError:
        return True
    return False


def test_a_forked_process_starts_its_own_fan_out_and_leaves_the_parents_alone(registry, app):
    database = app.extensions["registry.db"]
    size = registry.log_size()
    runs = [{"v": n} for n in range(4)]
    assert list(database.fan_out.each(ECHO, runs)) == [[(n, size)] for n in range(4)]
    parents = [reader.connection.dbapi_connection for reader in database.fan_out._readers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: what a pre-forking server does
        child = os.fork()
    if child == 0:
        ok = False
        try:
            ok = list(database.fan_out.each(ECHO, runs)) == [[(n, size)] for n in range(4)]
            database.fan_out.close()
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert not any(_closed(connection) for connection in parents)
    assert list(database.fan_out.each(ECHO, runs)) == [[(n, size)] for n in range(4)]
