"""Crash safety: a bulk import and a batch publish killed with SIGKILL part-way.

"Acknowledged" means: for the import, a chunk whose "lines A to B committed"
line was printed; for HTTP, a batch whose 200 arrived. After the kill and a
restart, every acknowledged licence is there, every chunk or batch is there
whole or not at all, the log has no gap and `registry audit` passes; running
the import (or sending the unacknowledged batches) again completes the job.
Runs on whichever backend the suite runs on.
"""

from __future__ import annotations

import os
import re
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from registry.store.database import make_engine
from registry.store.models import Checkpoint, Licence, LogEntry, LogHead

from . import leaks
from .helpers import import_row, licence_fields, write_import_csv
from .servers import Gunicorn, cli, registry_env, request, start_cli

pytestmark = pytest.mark.slow

COMMITTED = re.compile(r"^lines (\d+) to (\d+) committed: log size (\d+)$")


@dataclass
class Stored:
    certificates: set[str]
    indices: list[int]
    tree_size: int
    checkpoint_sizes: set[int]


def stored(database_url: str) -> Stored:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return Stored(
                certificates=set(connection.execute(select(Licence.certificate)).scalars()),
                indices=list(connection.execute(select(LogEntry.idx).order_by(LogEntry.idx)).scalars()),
                tree_size=connection.execute(select(LogHead.tree_size)).scalar_one(),
                checkpoint_sizes=set(connection.execute(select(Checkpoint.tree_size)).scalars()),
            )
    finally:
        engine.dispose()


def assert_log_whole(state: Stored) -> None:
    assert state.indices == list(range(len(state.indices))), "the log has a gap"
    assert state.tree_size == len(state.indices)
    assert state.tree_size in state.checkpoint_sizes, "no checkpoint signed at the log's size"
    assert max(state.checkpoint_sizes) == state.tree_size


def audit(env) -> None:
    result = cli(env, "audit", check=False)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "all hold" in result.stdout


@pytest.fixture
def env(database_url, keys_dir):
    environment = registry_env(database_url, keys_dir, REGISTRY_PUBLISH_BATCH_MAX="40")
    cli(environment, "init")
    cli(environment, "party", "add", "MK", "--name", "North Macedonia", "--authority", "Customs", "--hosted-key")
    return environment


def test_import_killed_part_way_keeps_every_committed_chunk(env, database_url, tmp_path):
    rows = [import_row(n) for n in range(1, 1201)]  # 30 chunks of 40
    path = write_import_csv(tmp_path / "mk.csv", rows)
    chunk = 40
    acknowledged_to = 1  # the last acknowledged CSV line; line 1 is the header
    with start_cli(env, "import", "MK", path) as process:
        try:
            for line in process.stdout:
                match = COMMITTED.match(line.strip())
                assert match, line
                first, last, _ = map(int, match.groups())
                assert first == acknowledged_to + 1 and last - first + 1 == chunk
                acknowledged_to = last
                if last >= 1 + 3 * chunk:
                    os.killpg(process.pid, signal.SIGKILL)  # while the fourth chunk is on its way
                    break
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        assert not leaks.find_leaks(process.stderr.read())
    assert process.returncode == -signal.SIGKILL, "the import finished before it could be killed"
    acknowledged = {row["certificate"] for row in rows[:acknowledged_to - 1]}

    state = stored(database_url)
    assert acknowledged <= state.certificates
    # Chunks commit in order and whole: what is there is the first k chunks, nothing of the next.
    present = len(state.certificates)
    assert present % chunk == 0 and state.certificates == {row["certificate"] for row in rows[:present]}
    assert_log_whole(state)
    assert state.tree_size == 1 + present  # the hosted key's enrolment, then one entry per licence
    audit(env)

    again = cli(env, "import", "MK", path)
    summary = again.stdout.strip().splitlines()[-1]
    assert summary == f"{len(rows) - present} licence versions published, {present} unchanged; log size {1 + len(rows)}"
    final = stored(database_url)
    assert final.certificates == {row["certificate"] for row in rows}
    assert_log_whole(final)
    audit(env)


def _batch(number: int, size: int) -> dict:
    return {"licences": [{"certificate": f"MKAEOF{number:03d}{n:04d}", **licence_fields("MK", number * 10_000 + n)}
                         for n in range(size)]}


def test_batch_publish_through_gunicorn_killed_part_way(env, database_url, tmp_path):
    token = cli(env, "token", "issue", "MK", "--role", "authority").stdout.strip()
    size, senders, per_sender = 40, 2, 12
    batches = {number: _batch(number, size) for number in range(senders * per_sender)}
    acknowledged: set[int] = set()
    lock = threading.Lock()
    enough = threading.Event()
    output = tmp_path / "gunicorn.log"
    server = Gunicorn(env, output).start()

    refused: list[str] = []

    def send(numbers: list[int]) -> None:
        for number in numbers:
            try:
                status, body = request("POST", f"{server.url}/api/v1/licences:batch", batches[number], token)
            except OSError:
                return  # the server is gone
            if status != 200:
                refused.append(f"batch {number}: {status} {body}")
                enough.set()
                return
            with lock:
                acknowledged.add(number)
                if len(acknowledged) >= 4:
                    enough.set()

    threads = [threading.Thread(target=send, args=(list(range(s, senders * per_sender, senders)),))
               for s in range(senders)]
    try:
        for thread in threads:
            thread.start()
        assert enough.wait(timeout=180), output.read_text()
        assert not refused, refused
        server.kill()  # with the next batches in flight
    finally:
        server.stop()
        for thread in threads:
            thread.join(timeout=120)
    assert len(acknowledged) < len(batches), "every batch finished before the kill"

    state = stored(database_url)
    for number, batch in batches.items():
        certificates = {item["certificate"] for item in batch["licences"]}
        there = certificates & state.certificates
        assert there in (set(), certificates), f"batch {number} is half-written: {len(there)} of {size}"
        if number in acknowledged:
            assert there == certificates, f"acknowledged batch {number} is lost"
    assert_log_whole(state)
    assert state.tree_size == 1 + len(state.certificates)
    audit(env)

    with Gunicorn(env, output) as restarted:
        for number in sorted(acknowledged):
            certificate = batches[number]["licences"][-1]["certificate"]
            status, body = request("GET", f"{restarted.url}/api/v1/licences/{certificate}", token=token)
            assert status == 200 and body["licence"]["version"] == 1, body
        for number in sorted(set(batches) - acknowledged):
            status, body = request("POST", f"{restarted.url}/api/v1/licences:batch", batches[number], token)
            assert status == 200, body
    final = stored(database_url)
    assert final.certificates == {item["certificate"] for b in batches.values() for item in b["licences"]}
    assert_log_whole(final)
    assert final.tree_size == 1 + len(batches) * size  # a batch that landed unacknowledged was not logged twice
    audit(env)
    printed = output.read_text()
    assert "Traceback" not in printed
    assert not leaks.find_leaks(printed, leaks.key_files_bytes(Path(env["REGISTRY_KEYS_DIR"])))
