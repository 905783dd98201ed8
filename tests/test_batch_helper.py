"""A large verify batch answered in two processes: the very answer one process gives."""

from __future__ import annotations

import gc
import json
import os
import signal
import time
from pathlib import Path

import pytest

from registry.runtime import Runtime

from .helpers import MK_ALIAS, MK_OP, licence_fields, operator_id
from .servers import Gunicorn, cli, registry_env, request

# The parties, agreements and licences of the verification tests (conftest's ``world``); it is ``registry``.
pytestmark = pytest.mark.usefixtures("world")

IDS = [MK_OP, "MK4030000375890", MK_ALIAS, "x!", 17, operator_id("RS", 9), operator_id("AL", 1), MK_OP.lower()] * 40


@pytest.fixture
def helper(app):
    helper = Runtime.of(app).batches
    helper.split_min = 2
    helper.start()
    yield helper
    helper.stop()


def batch(registry, ids=IDS, **options):
    response = registry.client.post("/api/v1/verify:batch", json={"operator_ids": ids, **options},
                                    headers=registry.headers("AL", "customs"))
    assert response.status_code == 200
    return response.data


@pytest.mark.parametrize("options", [{}, {"include_statements": True, "nonce": "n-7", "at": "2025-01-01"}])
def test_the_helper_answers_half_and_the_answer_is_byte_for_byte_the_same(registry, helper, options):
    helped = batch(registry, **options)
    assert helper.parts_answered == 1
    helper.stop()
    alone = batch(registry, **options)
    # The same signed bytes: Ed25519 is deterministic, so equal payloads give equal JWS.
    assert helped == alone
    results = json.loads(helped)["verification"]["results"]
    # Positions in the helper's half are the request's, not the half's.
    last_malformed = len(IDS) - 5
    assert results[last_malformed]["error"].startswith(f"operator_ids.{last_malformed}: ")
    assert results[-1]["recognised"] and results[-8]["recognised"]


def test_the_helper_follows_the_log_as_it_grows(registry, helper):
    newcomer = operator_id("MK", 2)
    ids = [MK_OP] * 10 + [newcomer] * 10
    before = batch(registry, ids)
    assert registry.put("MKAEOS000002", licence_fields("MK", 2, type="AEOS")).status_code == 201
    after = batch(registry, ids)
    assert helper.parts_answered == 2
    helper.stop()
    assert after == batch(registry, ids) and before != after
    assert b'"certificate":"MKAEOS000002"' in after


def test_a_dead_helper_is_replaced_and_meanwhile_the_worker_answers_alone(registry, helper):
    batch(registry)
    first = helper.process_id()
    os.kill(first, signal.SIGKILL)
    answered = batch(registry)  # answered alone; a new helper starts for the next one
    assert helper.parts_answered == 1
    assert batch(registry) == answered and helper.parts_answered == 2
    assert helper.process_id() not in (None, first)


def test_small_batches_and_proofs_stay_in_one_process(registry, helper):
    helper.split_min = 1000
    batch(registry)
    helper.split_min = 2
    batch(registry, proofs=True)
    assert helper.parts_answered == 0


def test_an_app_nobody_started_a_helper_for_answers_alone(registry, app):
    helper = Runtime.of(app).batches
    helper.split_min = 2
    batch(registry)
    assert helper.process_id() is None and helper.parts_answered == 0


def test_each_gunicorn_worker_starts_a_helper_that_ends_with_it(database_url, keys_dir, tmp_path):
    env = registry_env(database_url, keys_dir)
    cli(env, "init")
    with Gunicorn(env, tmp_path / "gunicorn.log", workers=2, threads=2) as server:
        assert request("GET", f"{server.url}/readyz")[0] == 200
        # One worker may be serving while the other is still starting: wait for both helpers.
        helpers = _wait_for(lambda: _helpers(server.process.pid), lambda found: len(found) == 2)
        assert len(helpers) == 2
    assert not _wait_for(lambda: [h for h in helpers if _running(h)], lambda running: not running)


def _wait_for(read, done, seconds: float = 30):
    """What ``read`` gives once ``done`` says so, or at the deadline: other processes send no event to wait on."""
    deadline = time.monotonic() + seconds
    found = read()
    while not done(found) and time.monotonic() < deadline:
        time.sleep(0.1)
        found = read()
    return found


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _helpers(master: int) -> list[int]:
    """The workers' helper processes: their children started by multiprocessing's spawn (not its resource tracker)."""
    return [child for worker in _children(master) for child in _children(worker)
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _threshold_seen_by(monkeypatch, module, name: str) -> list[int]:
    """The young-generation threshold in force each time ``module.name`` runs."""
    seen: list[int] = []
    original = getattr(module, name)

    def spied(*args, **kwargs):
        seen.append(gc.get_threshold()[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, spied)
    return seen


def test_batches_collect_young_objects_rarely_and_single_requests_as_usual(registry, monkeypatch):
    from registry.runtime import batches as batch_helper
    from registry.services import licences, verification

    usual = gc.get_threshold()
    answering = _threshold_seen_by(monkeypatch, verification, "answer")
    publishing = _threshold_seen_by(monkeypatch, licences, "publish")
    batch(registry)
    single = registry.client.get(f"/api/v1/verify/{MK_OP}", headers=registry.headers("AL", "customs"))
    assert single.status_code == 200
    assert answering == [batch_helper.BATCH_YOUNG_THRESHOLD, usual[0]]
    items = [{"certificate": f"MKAEOS{n:06d}", **licence_fields("MK", n, type="AEOS")} for n in (7, 8)]
    assert registry.batch(items).status_code == 200
    assert registry.put("MKAEOS000009", licence_fields("MK", 9, type="AEOS")).status_code == 201
    assert publishing == [batch_helper.BATCH_YOUNG_THRESHOLD, usual[0]]
    assert gc.get_threshold() == usual


def test_overlapping_batches_restore_the_threshold_when_the_last_ends():
    from registry.runtime.batches import BATCH_YOUNG_THRESHOLD, RoomyCollections

    usual = gc.get_threshold()
    roomy = RoomyCollections()
    with roomy():
        with roomy():
            assert gc.get_threshold()[0] == BATCH_YOUNG_THRESHOLD
        assert gc.get_threshold()[0] == BATCH_YOUNG_THRESHOLD  # the first batch still runs
    assert gc.get_threshold() == usual
    with pytest.raises(RuntimeError), roomy():
        raise RuntimeError("a failed batch")
    assert gc.get_threshold() == usual
