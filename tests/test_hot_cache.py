"""The verification cache of server workers (registry/runtime/verify_cache.py).

A verification answered from memory must be the very answer the database
would give at the same log size, and nothing it keeps may outlive the
notification of a change made anywhere else: another process, another
server, or SQL typed by hand.
"""

from __future__ import annotations

import logging
import threading

import pytest
from sqlalchemy import text, update
from sqlalchemy.orm import Session

from registry import create_app
from registry.runtime import Runtime
from registry.runtime.verify_cache import HOT_CACHE_APPLICATION, HotCache, HotState, NotifiedCache, PolledCache
from registry.services import verification
from registry.store.database import make_engine
from registry.store.models import ApiToken

from .helpers import licence_fields, operator_id

MK_OP = operator_id("MK", 1)
UNKNOWN_OP = operator_id("MK", 999)


def test_keeps_no_more_than_its_capacity_the_oldest_making_room():
    cache = HotCache(capacity=2)
    state = HotState(10)
    for identifier in ("X", "Y", "Z"):
        cache.keep(state.versions, identifier, [identifier])
    assert state.versions == {"Y": ["Y"], "Z": ["Z"]}


def test_is_on_by_default_of_the_kind_each_database_allows_and_can_be_turned_off(app, database_url, keys_dir,
                                                                                backend):
    kind = {"sqlite": PolledCache, "postgresql": NotifiedCache}[backend]
    assert isinstance(Runtime.of(app).verify_cache, kind)
    off = create_app({"env": "testing", "database_url": database_url, "keys_dir": keys_dir,
                      "verify_cache": False}, environ={})
    try:
        assert Runtime.of(off).verify_cache is None
    finally:
        Runtime.of(off).close()


# --- answers from memory, and what retires them ------------------------------


@pytest.fixture
def hot(app) -> HotCache:
    cache = Runtime.of(app).verify_cache
    assert cache is not None, "the cache is on by default"
    return cache


@pytest.fixture
def lookups(monkeypatch) -> list[str]:
    """The ids whose versions the verifications of a test read from the database."""
    made: list[str] = []
    original = verification.Lookups.versions

    def counted(self, wanted, size, statements=False):
        wanted = list(wanted)
        made.extend(wanted)
        return original(self, wanted, size, statements)

    monkeypatch.setattr(verification.Lookups, "versions", counted)
    return made


def wait_rounds(cache: NotifiedCache, count: int, timeout: float = 10.0) -> bool:
    """Wait until the listener has read the log's size ``count`` more times."""
    with cache.round_done:
        target = cache.rounds + count
        return cache.round_done.wait_for(lambda: cache.rounds >= target, timeout)


@pytest.fixture
def world(mk):
    mk.add_party("AL")
    mk.token("AL", "customs")  # issued (a commit) before the cache is first used
    return mk


def verify(registry, operator=MK_OP, **query):
    response = registry.client.get(f"/api/v1/verify/{operator}", query_string={"nonce": "n", **query},
                                   headers=registry.headers("AL", "customs"))
    assert response.status_code in (200, 401), response.get_data(as_text=True)
    return response


def warm(registry, hot: HotCache, *operators: str) -> HotState:
    """Let the cache make a state (on PostgreSQL, its listener), and fill it with ``operators``."""
    verify(registry)
    if isinstance(hot, NotifiedCache):
        assert wait_rounds(hot, 1), "the listener made no round"
    verify(registry)
    state = hot.state
    assert state is not None
    for operator in operators:
        verify(registry, operator)
    assert hot.state is state
    return state


def settle(hot: HotCache, old: HotState) -> None:
    """On PostgreSQL, wait for the listener to replace ``old`` (on SQLite the next verification does)."""
    if not isinstance(hot, NotifiedCache):
        return
    for _ in range(20):
        if hot.state not in (None, old):
            return
        wait_rounds(hot, 1, timeout=2)
    raise AssertionError("the listener never replaced the state")


def elsewhere(database_url: str, statement) -> None:
    """Run a write on a connection of its own, as another process would: no in-process hook sees it."""
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            session.execute(statement)
            session.commit()
    finally:
        engine.dispose()


def test_a_repeated_verification_is_answered_from_memory_with_the_bytes_a_query_gives(world, hot, lookups,
                                                                                     database_url, keys_dir):
    state = warm(world, hot)  # asked MK_OP twice: the second time kept it
    lookups.clear()
    cached = verify(world)
    unknown = [verify(world, UNKNOWN_OP) for _ in range(3)]
    assert lookups == [UNKNOWN_OP]  # asked once, then kept: that it is unknown
    assert MK_OP in state.versions and state.versions[UNKNOWN_OP] == []
    assert unknown[0].get_json()["verification"]["results"][0]["reason"] == "unknown_operator"
    assert cached.get_json()["verification"]["checkpoint"]["tree_size"] == state.size
    # The clock is frozen: a server without the cache, on the same database
    # and keys, gives the very same signed answers.
    other = create_app({"env": "testing", "database_url": database_url, "keys_dir": keys_dir,
                        "log_origin": "aeo-registry.test/log", "verify_cache": False}, environ={})
    try:
        plain = other.test_client()
        for operator, answer in ((MK_OP, cached), (UNKNOWN_OP, unknown[2])):
            asked = plain.get(f"/api/v1/verify/{operator}", query_string={"nonce": "n"},
                              headers=world.headers("AL", "customs"))
            assert asked.get_data() == answer.get_data()
    finally:
        Runtime.of(other).close()


def test_a_token_revoked_by_hand_in_sql_is_refused(world, hot, database_url):
    state = warm(world, hot, MK_OP)
    assert verify(world).status_code == 200
    elsewhere(database_url, update(ApiToken).values(revoked_at=world.now()))
    settle(hot, state)
    assert verify(world).status_code == 401
    assert hot.state is not state


def test_a_licence_suspended_by_another_server_shows(world, hot, database_url, keys_dir, lookups):
    state = warm(world, hot, MK_OP)
    assert verify(world).get_json()["verification"]["results"][0]["reason"] == "no_agreement"
    other = create_app({"env": "testing", "database_url": database_url, "keys_dir": keys_dir,
                        "log_origin": "aeo-registry.test/log", "verify_cache": False}, environ={})
    try:
        suspended = licence_fields("MK", 1, status="suspended", reason="audit")
        response = other.test_client().put("/api/v1/licences/MKAEOF000001", json=suspended,
                                           headers=world.headers("MK"))
        assert response.status_code in (200, 201), response.get_data(as_text=True)
    finally:
        Runtime.of(other).close()
    settle(hot, state)
    lookups.clear()
    result = verify(world).get_json()["verification"]["results"][0]
    assert result["reason"] == "suspended"
    assert lookups == [MK_OP]  # the new state starts empty
    assert hot.state.size > state.size


def test_a_write_in_this_process_shows_in_its_next_answer_without_waiting(world, hot):
    state = warm(world, hot, MK_OP)
    suspended = licence_fields("MK", 1, status="suspended", reason="audit")
    assert world.put("MKAEOF000001", suspended).status_code in (200, 201)
    assert hot.state is not state
    assert verify(world).get_json()["verification"]["results"][0]["reason"] == "suspended"


# --- PostgreSQL: the listener -------------------------------------------------


@pytest.mark.postgresql_only
def test_without_its_listener_a_worker_asks_the_database_until_it_is_back(world, hot, database_url, caplog):
    warm(world, hot, MK_OP)
    caplog.set_level(logging.WARNING, logger="registry.runtime.verify_cache")
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            # Only this suite's database: other suites on the same server keep their listeners.
            ended = connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                            "WHERE application_name = :name AND datname = current_database()"),
                                       {"name": HOT_CACHE_APPLICATION})
            assert ended.all() == [(True,)]
    finally:
        engine.dispose()
    for _ in range(40):
        if any("listener lost the database" in record.getMessage() for record in caplog.records):
            break
        wait_rounds(hot, 1, timeout=0.25)
    else:
        raise AssertionError("the listener did not notice")
    assert "postgresql" not in caplog.text  # no connection string in the log
    assert verify(world).status_code == 200
    assert wait_rounds(hot, 1), "the listener did not come back"
    assert hot.current() is not None


@pytest.mark.postgresql_only
def test_the_listener_stops_with_the_app(app, world, hot):
    warm(world, hot)
    listeners = [t for t in threading.enumerate() if t.name == "registry-hot-cache"]
    assert listeners and all(t.is_alive() for t in listeners)
    Runtime.of(app).close()
    assert not any(t.is_alive() for t in listeners)
    assert hot.current() is None
