"""Concurrent writers: two app processes on one PostgreSQL, eight parties publishing at once.

Afterwards, read through the public API alone: every acknowledged statement
is logged exactly once at the index it was acknowledged with, the log has no
gap, every signed checkpoint verifies and is consistent with the next one
(RFC 9162 consistency proofs), the newest root is what the leaves give, and
`registry audit` is clean.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import threading
from pathlib import Path

import pytest

from registry.crypto import merkle, note

from . import leaks
from .helpers import licence_fields
from .servers import LOG_ORIGIN, Gunicorn, cli, registry_env, request

pytestmark = [pytest.mark.postgresql_only, pytest.mark.slow]

PARTIES = ("AL", "BA", "HR", "MD", "ME", "MK", "RS", "XK")
ROUNDS = 8


def publisher(party: str, token: str, servers: list[str], start: threading.Barrier,
              acknowledged: list[tuple[int, str]], problems: list[str]) -> None:
    """New licences, new versions and batches, alternating between the two servers."""
    def send(method: str, path: str, body: dict, server: int) -> dict | None:
        status, answer = request(method, f"{servers[server % 2]}/api/v1{path}", body, token)
        if status not in (200, 201):
            problems.append(f"{party} {method} {path}: {status} {answer}")
            return None
        return answer

    start.wait()
    for round_ in range(ROUNDS):
        certificate = f"{party}AEOF{round_:06d}"
        records = []
        created = send("PUT", f"/licences/{certificate}", licence_fields(party, round_ + 1), round_)
        records.append(created)
        suspended = licence_fields(party, round_ + 1, status="suspended", reason="audit")
        records.append(send("PUT", f"/licences/{certificate}", suspended, round_ + 1))
        if round_ % 2 == 0:
            batch = {"licences": [{"certificate": f"{party}AEOS{round_:03d}{n:03d}",
                                   **licence_fields(party, 1000 + round_ * 10 + n, type="AEOS")} for n in range(5)]}
            answer = send("POST", "/licences:batch", batch, round_)
            records += answer["licences"] if answer else [None]
        for record in records:
            if record is not None:
                acknowledged.append((record["log_index"], record["statement"]))


def all_entries(server: str, size: int) -> list[dict]:
    entries: list[dict] = []
    while len(entries) < size:
        status, page = request("GET", f"{server}/api/v1/log/entries?start={len(entries)}&limit=1000")
        assert status == 200 and page["items"], page
        entries += page["items"]
    return entries


def test_two_processes_eight_publishers(database_url, keys_dir, tmp_path):
    env = registry_env(database_url, keys_dir)
    cli(env, "init")
    tokens = {}
    for party in PARTIES:
        cli(env, "party", "add", party, "--name", f"Party {party}", "--authority", f"Customs of {party}",
            "--hosted-key")
        tokens[party] = cli(env, "token", "issue", party, "--role", "authority").stdout.strip()
    outputs = [tmp_path / "first.log", tmp_path / "second.log"]
    acknowledged: list[tuple[int, str]] = []
    problems: list[str] = []
    with Gunicorn(env, outputs[0], workers=1) as first, Gunicorn(env, outputs[1], workers=1) as second:
        servers = [first.url, second.url]
        start = threading.Barrier(len(PARTIES))
        threads = [threading.Thread(target=publisher, args=(p, tokens[p], servers, start, acknowledged, problems))
                   for p in PARTIES]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        assert not any(thread.is_alive() for thread in threads), "a publisher hung"
        assert not problems, problems
        expected = len(PARTIES) * (2 * ROUNDS + 5 * len(range(0, ROUNDS, 2)))
        assert len(acknowledged) == expected

        status, info = request("GET", f"{second.url}/api/v1/log")
        assert status == 200
        size = info["tree_size"]
        entries = all_entries(first.url, size)

        # Gapless, and each acknowledged statement logged exactly once, where it was said to be.
        assert [e["index"] for e in entries] == list(range(size))
        leaves = [json.loads(e["leaf"]) for e in entries]
        digests = [leaf["statement_sha256"] for leaf in leaves]
        for index, statement in acknowledged:
            digest = hashlib.sha256(statement.encode()).hexdigest()
            assert digests.count(digest) == 1, f"statement at {index} logged {digests.count(digest)} times"
            assert digests[index] == digest
        assert sum(leaf["kind"] == "licence" for leaf in leaves) == len(acknowledged)
        assert len({index for index, _ in acknowledged}) == len(acknowledged)

        # Every leaf hash as served, and the newest root, follow from the leaves.
        frontier = merkle.Frontier(0, [])
        for entry in entries:
            digest = merkle.leaf_hash(entry["leaf"].encode())
            assert entry["leaf_hash"] == base64.b64encode(digest).decode()
            frontier.append(digest)

        # Every signed checkpoint verifies and is consistent with the next one.
        verifier = note.Verifier.from_vkey(info["verifier_key"])
        checkpoints = {}
        for tree_size in range(size + 1):
            status, text = request("GET", f"{servers[tree_size % 2]}/api/v1/log/checkpoints?tree_size={tree_size}")
            if status == 200:
                opened = note.open_checkpoint(text, verifier, LOG_ORIGIN)
                assert opened.tree_size == tree_size
                checkpoints[tree_size] = opened.root_hash
            else:
                assert status == 404, text
        assert checkpoints[size] == frontier.root()
        assert len(checkpoints) > len(PARTIES) * ROUNDS  # one per publish, not one at the end
        sizes = sorted(s for s in checkpoints if s > 0)
        for older, newer in itertools.pairwise(sizes):
            status, proof = request("GET", f"{first.url}/api/v1/log/proof/consistency?first={older}&second={newer}")
            assert status == 200, proof
            merkle.verify_consistency(older, newer, [base64.b64decode(h) for h in proof["hashes"]],
                                      checkpoints[older], checkpoints[newer])

    result = cli(env, "audit", check=False)
    assert result.returncode == 0 and "all hold" in result.stdout, (result.stdout, result.stderr)
    for output in outputs:
        printed = output.read_text()
        assert "Traceback" not in printed, printed
        assert not leaks.find_leaks(printed, leaks.key_files_bytes(Path(env["REGISTRY_KEYS_DIR"])))
