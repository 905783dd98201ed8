"""The witness (python -m registry.witness): C2SP tlog-witness add-checkpoint, its refusals, races and crashes.

Cosignatures are checked with ``spec_verify`` (tests/spec_c2sp.py),
written from the spec apart from registry.crypto.cosignature.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from werkzeug.test import Client

from registry.crypto import cosignature, keys, merkle, note
from registry.runtime import Runtime
from registry.witness import server
from registry.witness.state import State
from registry.witness.witness import MAX_BODY, MAX_PROOF_LINES, Witness

from .spec_c2sp import spec_verify

ROOT = Path(__file__).resolve().parents[1]
ORIGIN = "aeo-registry.test/log"
NAME = "witness.customs.test/w1"
TIMEOUT = 60  # seconds any one wait on a subprocess may take before the test fails


class Log:
    """An append-only log of its own, signed like the registry's: checkpoints and consistency proofs."""

    def __init__(self, signer: note.Signer, tag: str = ""):
        self.signer = signer
        self.tag = tag
        self.frontier = merkle.Frontier(0, [])
        self.stored: dict[merkle.Node, bytes] = {}

    def grow(self, count: int) -> Log:
        for _ in range(count):
            leaf = merkle.leaf_hash(f"{self.tag}entry {self.frontier.size}".encode())
            self.stored.update(((level, index), node) for level, index, node in self.frontier.append(leaf))
        return self

    @property
    def size(self) -> int:
        return self.frontier.size

    def root(self, size: int | None = None) -> bytes:
        return merkle.root_from(self.size if size is None else size, self.stored)

    def checkpoint(self, origin: str = ORIGIN) -> str:
        return note.sign(note.Checkpoint(origin, self.size, self.root()).text(), self.signer)

    def proof(self, old: int) -> list[bytes]:
        if old == 0:
            return []
        return merkle.hashes_for(merkle.consistency_ranges(old, self.size), self.stored)

    def request(self, old: int, proof: list[bytes] | None = None, checkpoint: str | None = None) -> bytes:
        proof = self.proof(old) if proof is None else proof
        lines = [f"old {old}", *(base64.b64encode(h).decode() for h in proof)]
        return ("\n".join(lines) + "\n\n" + (checkpoint or self.checkpoint())).encode()


@pytest.fixture
def signer():
    return note.Signer(ORIGIN, Ed25519PrivateKey.generate())


@pytest.fixture
def cosigner():
    return cosignature.Cosigner(NAME, Ed25519PrivateKey.generate())


@pytest.fixture
def state(tmp_path, signer):
    kept = State(tmp_path / "witness.db")
    kept.add_log(ORIGIN, [signer.verifier.vkey()])
    return kept


class Clock:
    def __init__(self, now: float = 1_800_000_000):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def witness(state, cosigner, clock):
    return Witness(state, cosigner, clock)


def post(witness_or_app, body: bytes):
    app = server.make_app(witness_or_app) if isinstance(witness_or_app, Witness) else witness_or_app
    return Client(app).post("/add-checkpoint", data=body)


def _public(cosigner) -> bytes:
    return cosigner.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _text(signed: str) -> str:
    return signed.rpartition("\n\n")[0] + "\n"


def assert_cosigned(response, log: Log, cosigner, checkpoint: str | None = None) -> int:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    return spec_verify(_text(checkpoint or log.checkpoint()), response.get_data(as_text=True), cosigner.name,
                       _public(cosigner))


def assert_size_conflict(response, size: int) -> None:
    assert response.status_code == 409, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "text/x.tlog.size"
    assert response.get_data(as_text=True) == f"{size}\n"


# --- the protocol ----------------------------------------------------------------------------------


def test_first_checkpoint_then_one_with_a_proof(witness, signer, cosigner, state, clock):
    log = Log(signer).grow(5)
    assert assert_cosigned(post(witness, log.request(0)), log, cosigner) == int(clock.now)
    assert (state.log(ORIGIN).tree_size, state.log(ORIGIN).root_hash) == (5, log.root())
    log.grow(12)
    assert_cosigned(post(witness, log.request(5)), log, cosigner)
    assert state.log(ORIGIN).tree_size == 17


def test_the_answer_joins_the_note_as_a_verifiable_cosignature(witness, signer, cosigner):
    log = Log(signer).grow(3)
    checkpoint = log.checkpoint()
    lines = post(witness, log.request(0)).get_data(as_text=True)
    cosigned = note.add_signatures(checkpoint, lines)
    _, verified = note.verified_by(cosigned, [signer.verifier, cosigner.verifier])
    assert verified == [signer.verifier, cosigner.verifier]


def test_a_wrong_old_size_gets_the_witness_size(witness, signer, cosigner, state):
    log = Log(signer).grow(5)
    assert_cosigned(post(witness, log.request(0)), log, cosigner)
    log.grow(3)
    assert_size_conflict(post(witness, log.request(0)), 5)  # a client that does not know: old 0 asks
    assert_size_conflict(post(witness, log.request(4, proof=Log(signer).grow(8).proof(4))), 5)
    assert state.log(ORIGIN).tree_size == 5


def test_a_fork_is_refused_and_nothing_recorded(witness, signer, cosigner, state):
    honest = Log(signer).grow(6)
    assert_cosigned(post(witness, honest.request(0)), honest, cosigner)
    fork = Log(signer, tag="rewritten ").grow(9)  # another history, signed by the same log key
    response = post(witness, fork.request(6))
    assert response.status_code == 422 and "does not verify" in response.get_data(as_text=True)
    # The honest tree's proof with the fork's checkpoint fails as well.
    response = post(witness, fork.request(6, proof=honest.grow(3).proof(6)))
    assert response.status_code == 422
    assert (state.log(ORIGIN).tree_size, state.log(ORIGIN).root_hash) == (6, honest.root(6))
    assert_cosigned(post(witness, honest.request(6)), honest, cosigner)  # the honest one still goes through


def test_another_root_at_the_cosigned_size_is_a_conflict(witness, signer, cosigner, state):
    log = Log(signer).grow(4)
    assert_cosigned(post(witness, log.request(0)), log, cosigner)
    other = Log(signer, tag="other ").grow(4)
    assert_size_conflict(post(witness, other.request(4, proof=[])), 4)
    assert state.log(ORIGIN).root_hash == log.root()


def test_the_same_checkpoint_again_is_cosigned_again_and_time_never_goes_back(witness, signer, cosigner, clock):
    log = Log(signer).grow(4)
    first = assert_cosigned(post(witness, log.request(0)), log, cosigner)
    again = assert_cosigned(post(witness, log.request(4)), log, cosigner)
    assert again == first  # the same tree in the same second
    log.grow(1)
    assert assert_cosigned(post(witness, log.request(4)), log, cosigner) == first + 1  # a larger tree: a later second
    clock.now -= 3600  # the witness's clock was set back
    log.grow(1)
    assert assert_cosigned(post(witness, log.request(5)), log, cosigner) == first + 2


def test_a_checkpoint_older_than_the_cosigned_one_is_refused(witness, signer, cosigner):
    log = Log(signer).grow(3)
    older = log.request(0)
    log.grow(4)
    assert_cosigned(post(witness, log.request(0)), log, cosigner)
    assert_size_conflict(post(witness, older), 7)
    response = post(witness, older.replace(b"old 0", b"old 7"))
    assert response.status_code == 400  # old size above the checkpoint's


def test_a_checkpoint_not_signed_by_the_log_key_is_forbidden(witness, signer, state):
    stranger = note.Signer(ORIGIN, Ed25519PrivateKey.generate())
    assert post(witness, Log(stranger).grow(2).request(0)).status_code == 403
    log = Log(signer).grow(2)
    tampered = log.checkpoint().replace("\n2\n", "\n3\n")
    assert post(witness, log.request(0, checkpoint=tampered)).status_code == 403
    assert state.log(ORIGIN).tree_size == 0


def test_an_unknown_origin_is_not_found(witness, signer):
    log = Log(signer).grow(2)
    assert post(witness, log.request(0, checkpoint=log.checkpoint("elsewhere.example/log"))).status_code == 404


def test_a_second_trusted_key_and_unknown_signatures(witness, signer, cosigner, state):
    rotated = note.Signer(ORIGIN, Ed25519PrivateKey.generate())
    state.add_log(ORIGIN, [rotated.verifier.vkey()])
    log = Log(rotated).grow(3)
    stranger = note.Signer("someone.else/key", Ed25519PrivateKey.generate())
    checkpoint = note.add_signatures(log.checkpoint(), note.sign(_text(log.checkpoint()), stranger).split("\n\n")[1])
    assert_cosigned(post(witness, log.request(0, checkpoint=checkpoint)), log, cosigner, checkpoint)


def _bad_requests(signer) -> dict[str, bytes]:
    log = Log(signer).grow(8)
    good = log.request(0)
    checkpoint = log.checkpoint()
    no_checkpoint = note.sign(f"{ORIGIN}\nnot a size\n", signer)
    return {
        "no blank line": good.replace(b"\n\n", b"\n"),
        "old size with a leading zero": good.replace(b"old 0", b"old 00"),
        "negative old size": good.replace(b"old 0", b"old -1"),
        "no old line": good.replace(b"old 0\n", b""),
        "not old": good.replace(b"old 0", b"olds 0"),
        "a non-ASCII digit": good.replace(b"old 0", "old \u0660".encode()),
        "a proof line not base64": log.request(3).replace(b"\n\n", b"\n!!!\n\n", 1),
        "a proof line not 32 bytes": f"old 3\n{base64.b64encode(bytes(31)).decode()}\n\n{checkpoint}".encode(),
        "too many proof lines": log.request(3, proof=[bytes(32)] * (MAX_PROOF_LINES + 1)),
        "a proof from size 0": log.request(0, proof=[bytes(32)]),
        "old size above the checkpoint": log.request(9, proof=[]),
        "a note without signatures": b"old 0\n\n" + _text(checkpoint).encode(),
        "a signed note that is no checkpoint": b"old 0\n\n" + no_checkpoint.encode(),
        "a control character": good.replace(b"\n8\n", b"\n8\r\n"),
        "not UTF-8": good + b"\xff",
    }


@pytest.mark.parametrize("case", list(_bad_requests(note.Signer(ORIGIN, Ed25519PrivateKey.generate()))))
def test_malformed_requests_are_bad_requests(witness, signer, state, case):
    response = post(witness, _bad_requests(signer)[case])
    assert response.status_code == 400, (case, response.status_code, response.get_data(as_text=True))
    assert state.log(ORIGIN).tree_size == 0


def test_http_limits_and_routes(witness, signer):
    app = server.make_app(witness)
    big = Log(signer).grow(1).request(0) + b"x" * MAX_BODY
    assert Client(app).post("/add-checkpoint", data=big).status_code == 413
    assert Client(app).get("/add-checkpoint").status_code == 405
    assert Client(app).post("/add-checkpoint/", data=b"").status_code == 404
    assert Client(app).post("/", data=b"").status_code == 404


# --- races ---------------------------------------------------------------------------------------------


def _race(state, cosigner, bodies: list[bytes]) -> list:
    """Each body posted from its own thread, all let through their checks together, racing for the lock."""
    gate = threading.Barrier(len(bodies), timeout=TIMEOUT)
    app = server.make_app(Witness(state, cosigner, before_lock=gate.wait))
    responses: list = [None] * len(bodies)

    def send(i):
        responses[i] = post(app, bodies[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive()
    return responses


def test_two_forks_at_once_get_one_cosignature(state, signer, cosigner):
    base = Log(signer).grow(5)
    assert post(Witness(state, cosigner), base.request(0)).status_code == 200
    left, right = Log(signer).grow(5).grow(4), Log(signer).grow(5)
    right.tag = "right "
    right.grow(4)
    assert left.root(5) == right.root(5) == base.root() and left.root() != right.root()
    responses = _race(state, cosigner, [left.request(5), right.request(5)])
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 409], statuses
    winner = (left, right)[[r.status_code for r in responses].index(200)]
    assert_size_conflict(next(r for r in responses if r.status_code == 409), 9)
    assert state.log(ORIGIN).root_hash == winner.root()


def test_a_slower_smaller_checkpoint_never_rolls_the_state_back(state, signer, cosigner):
    # The race the spec warns of: sizes N+K and N checked at once; N must not overwrite N+K.
    log = Log(signer).grow(3)
    assert post(Witness(state, cosigner), log.request(0)).status_code == 200
    smaller = log.grow(2).request(3)
    larger = log.grow(5).request(3)
    responses = _race(state, cosigner, [smaller, larger])
    assert sorted(r.status_code for r in responses) == [200, 409]
    winner = 5 if responses[0].status_code == 200 else 10
    assert state.log(ORIGIN).tree_size == winner


# --- the process: keys, state, crashes ----------------------------------------------------------------


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "registry.witness", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=TIMEOUT, check=False, env=env)


def _environ(**extra: str) -> dict[str, str]:
    """The process's environment without any of the registry's settings: the witness needs none."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}, **extra}


def test_keygen_writes_a_private_file_and_prints_only_the_verifier_key(tmp_path):
    key_file = tmp_path / "witness.pem"
    made = _run("keygen", str(key_file), "--name", NAME, env=_environ())
    assert made.returncode == 0, made.stderr
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    vkey = made.stdout.strip()
    verifier = cosignature.CosignatureVerifier.from_vkey(vkey)
    private = keys.read_private(key_file).private_key
    assert verifier == cosignature.Cosigner(NAME, private).verifier
    assert "PRIVATE" not in made.stdout + made.stderr
    assert _run("vkey", str(key_file), "--name", NAME).stdout.strip() == vkey
    again = _run("keygen", str(key_file), "--name", NAME)
    assert again.returncode == 1 and "exists" in again.stderr  # never overwrites a key
    key_file.chmod(0o644)
    assert _run("vkey", str(key_file), "--name", NAME).returncode == 1  # nor uses one others can read


def test_add_log_and_list_logs(tmp_path, signer):
    state_file = str(tmp_path / "w.db")
    added = _run("add-log", "--state", state_file, "--origin", ORIGIN, "--vkey", signer.verifier.vkey())
    assert added.returncode == 0, added.stderr
    listed = [json.loads(line) for line in _run("list-logs", "--state", state_file).stdout.splitlines()]
    assert listed == [{"origin": ORIGIN, "size": 0, "root_hash": base64.b64encode(merkle.EMPTY_ROOT).decode(),
                       "keys": [signer.verifier.vkey()], "cosigned_at": 0}]
    root = base64.b64encode(bytes(32)).decode()
    other = _run("add-log", "--state", state_file, "--origin", "other.example/log", "--vkey",
                 signer.verifier.vkey(), "--size", "10", "--root", root)
    assert other.returncode == 0 and '"size": 10' in other.stdout
    for wrong in (["--vkey", "not a key"], ["--vkey", signer.verifier.vkey(), "--size", "3"],
                  ["--vkey", cosignature.Cosigner("w", Ed25519PrivateKey.generate()).verifier.vkey()]):
        refused = _run("add-log", "--state", state_file, "--origin", "x.example/log", *wrong)
        assert refused.returncode == 1 and refused.stderr.startswith("error:"), wrong


def test_the_witness_needs_neither_flask_nor_the_registrys_settings(tmp_path, signer):
    code = (
        "import sys\n"
        "from registry.witness import server, __main__ as cli\n"
        f"assert cli.main(['add-log', '--state', {str(tmp_path / 'w.db')!r}, '--origin', {ORIGIN!r},"
        f" '--vkey', {signer.verifier.vkey()!r}]) == 0\n"
        "loaded = [m for m in ('flask', 'sqlalchemy', 'marshmallow', 'registry.app', 'registry.config',"
        " 'registry.store', 'registry.runtime', 'registry.http', 'registry.services') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                               timeout=TIMEOUT, check=False, env=_environ())
    assert completed.returncode == 0, completed.stderr


@contextmanager
def _serving(state_file: Path, key_file: Path, pause: str | None = None):
    """The witness as its own process; yields its URL and a queue of its stderr lines."""
    env = _environ(**({server.PAUSE_VARIABLE: pause} if pause else {}))
    process = subprocess.Popen([sys.executable, "-m", "registry.witness", "serve", "--state", str(state_file),
                                "--key", str(key_file), "--name", NAME, "--port", "0"],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()

    def read_stderr():
        with process.stderr:
            for line in process.stderr:
                lines.put(line.rstrip("\n"))

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        started = _within(lambda: process.stdout.readline()).strip()
        assert " listening on http://" in started, started
        yield started.split(" listening on ")[1].removesuffix("/add-checkpoint"), lines
    finally:
        process.kill()
        process.wait(TIMEOUT)
        reader.join(TIMEOUT)
        process.stdout.close()


def _within(call):
    """``call()`` in a thread, or a failure after TIMEOUT: nothing here may hang the suite."""
    result: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: result.put(call()), daemon=True).start()
    return result.get(timeout=TIMEOUT)


def _http_post(url: str, body: bytes) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "/add-checkpoint", data=body),
                                    timeout=TIMEOUT) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _wait_for(lines: queue.Queue, wanted: str) -> None:
    while (line := lines.get(timeout=TIMEOUT)) != wanted:
        assert "Traceback" not in line, line


@pytest.fixture
def served(tmp_path, signer):
    state_file, key_file = tmp_path / "witness.db", tmp_path / "witness.pem"
    key = keys.generate()
    keys.write_private(key_file, key)
    State(state_file).add_log(ORIGIN, [signer.verifier.vkey()])
    return state_file, key_file, cosignature.Cosigner(NAME, key.private_key)


def _killed_while_recording(state_file, key_file, body: bytes, stage: str) -> None:
    """Posts ``body`` to a witness that stops at ``stage`` of recording it, then kills it (SIGKILL)."""
    with _serving(state_file, key_file, pause=stage) as (url, lines):
        answers: queue.Queue = queue.Queue()

        def send():
            try:
                answers.put(_http_post(url, body))
            except OSError as exc:  # the witness died before it answered
                answers.put(exc)

        threading.Thread(target=send, daemon=True).start()
        _wait_for(lines, f"paused {stage}")
    assert isinstance(answers.get(timeout=TIMEOUT), OSError)  # no cosignature ever left the witness
    with sqlite3.connect(state_file) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_killed_before_its_commit_the_witness_forgets_and_cosigns_only_one_branch(served, signer):
    state_file, key_file, cosigner = served
    branch_a, branch_b = Log(signer, tag="a ").grow(7), Log(signer, tag="b ").grow(7)
    _killed_while_recording(state_file, key_file, branch_a.request(0), "before-commit")
    assert State(state_file).log(ORIGIN).tree_size == 0  # nothing half-written
    with _serving(state_file, key_file) as (url, _):
        status, line = _http_post(url, branch_b.request(0))
        assert status == 200
        spec_verify(_text(branch_b.checkpoint()), line, NAME, _public(cosigner))
        assert _http_post(url, branch_a.request(0)) == (409, "7\n")
        assert _http_post(url, branch_a.request(7, proof=[])) == (409, "7\n")
    assert State(state_file).log(ORIGIN).root_hash == branch_b.root()


def test_killed_after_its_commit_the_witness_keeps_that_branch(served, signer):
    state_file, key_file, cosigner = served
    branch_a, branch_b = Log(signer, tag="a ").grow(7), Log(signer, tag="b ").grow(7)
    _killed_while_recording(state_file, key_file, branch_a.request(0), "after-commit")
    assert State(state_file).log(ORIGIN).root_hash == branch_a.root()  # recorded, though never answered
    with _serving(state_file, key_file) as (url, _):
        assert _http_post(url, branch_b.request(0)) == (409, "7\n")
        assert _http_post(url, branch_b.request(7, proof=[])) == (409, "7\n")
        status, line = _http_post(url, branch_a.request(7, proof=[]))  # the client retries: the same answer
        assert status == 200
        spec_verify(_text(branch_a.checkpoint()), line, NAME, _public(cosigner))


def test_the_witness_cosigns_the_registrys_own_checkpoints(registry, client, app, tmp_path, cosigner):
    from .helpers import licence_fields

    keyring = Runtime.of(app).keyring
    state = State(tmp_path / "witness.db")
    state.add_log(keyring.log_origin, [keyring.log_verifier.vkey()])
    witness = Witness(state, cosigner)
    registry.add_party("MK")
    first = client.get("/api/v1/log/checkpoint").get_data(as_text=True)
    response = post(witness, b"old 0\n\n" + first.encode())
    spec_verify(_text(first), response.get_data(as_text=True), cosigner.name, _public(cosigner))
    for n in range(1, 4):
        registry.put(f"MKAEOF{n:06d}", licence_fields(serial=n))
    second = client.get("/api/v1/log/checkpoint").get_data(as_text=True)
    proof = client.get("/api/v1/log/proof/consistency?first=1&second=4").get_json()["hashes"]
    response = post(witness, ("old 1\n" + "".join(f"{h}\n" for h in proof) + "\n" + second).encode())
    spec_verify(_text(second), response.get_data(as_text=True), cosigner.name, _public(cosigner))
    assert state.log(keyring.log_origin).tree_size == 4
