"""The registry's witnesses: configuration, submission, coordination between processes, and cosigned evidence.

The witnesses here are the project's own (registry.witness) in this process,
reached through their WSGI app instead of a socket, so that a test can take
one down or read what it was sent; tests/test_witness_processes.py runs them
as real processes. Cosignatures are checked with the spec-written verifier
(tests/spec_c2sp.py).
"""

from __future__ import annotations

import base64
import html
import json
import re
import threading
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select, update
from werkzeug.test import Client

from registry import monitor, offline
from registry.crypto import cosignature, jws, merkle, note, tlogproof
from registry.runtime import Runtime, witnessing
from registry.services import log, witnesses
from registry.store.models import Cosignature
from registry.store.models import Witness as WitnessRow
from registry.store.reads import Reader
from registry.witness import server
from registry.witness.state import State
from registry.witness.witness import Witness

from .helpers import licence_fields, operator_id, rewrite_last_leaf
from .spec_c2sp import spec_cosigners

TIMING = witnesses.Timing(timeout=5, interval=10, backoff_max=600)
WAIT = 60  # seconds a test waits for a thread before it fails


class InProcessWitness:
    """A witness with its own state file, answering the registry's submitter without a socket."""

    def __init__(self, folder, name: str, keyring, size: int = 0, root: bytes = merkle.EMPTY_ROOT):
        self.name = name
        self.state = State(folder / f"{name.replace('/', '_')}.db")
        self.state.add_log(keyring.log_origin, [keyring.log_verifier.vkey()], size, root)
        self.cosigner = cosignature.Cosigner(name, Ed25519PrivateKey.generate())
        self.client = Client(server.make_app(Witness(self.state, self.cosigner)))
        self.url = f"http://{name.split('/')[0]}"
        self.down = False
        self.bodies: list[str] = []

    @property
    def vkey(self) -> str:
        return self.cosigner.verifier.vkey()

    @property
    def public(self) -> bytes:
        return self.cosigner.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def post(self, url: str, body: bytes, timeout: float) -> tuple[int, str, str]:
        assert url == f"{self.url}/add-checkpoint"
        self.bodies.append(body.decode())
        if self.down:
            raise witnesses.Unreachable("connection refused")
        response = self.client.post("/add-checkpoint", data=body)
        return response.status_code, response.mimetype, response.get_data(as_text=True)


def posting(*known: InProcessWitness):
    by_url = {f"{w.url}/add-checkpoint": w for w in known}
    return lambda url, body, timeout: by_url[url].post(url, body, timeout)


def configure(registry, *known: InProcessWitness) -> None:
    with registry.session() as session:
        for witness in known:
            witnesses.add(session, witness.name, witness.url, witness.vkey, registry.now())


def submit(registry, *known: InProcessWitness, owner: str | None = None) -> dict[str, witnesses.Outcome]:
    outcomes = witnesses.submit_due(Runtime.of(registry.app).database.session, TIMING, registry.now,
                                    posting(*known), owner)
    return {outcome.witness: outcome for outcome in outcomes}


def row(registry, name: str) -> WitnessRow:
    with registry.session() as session:
        found = session.get(WitnessRow, name)
        session.expunge_all()
        return found


@pytest.fixture
def mk(registry):
    registry.add_party("MK")
    assert registry.put("MKAEOF000001", licence_fields("MK", 1)).status_code == 201
    return registry


@pytest.fixture
def w1(tmp_path, app):
    return InProcessWitness(tmp_path, "witness.al-customs.test/w1", Runtime.of(app).keyring)


@pytest.fixture
def w2(tmp_path, app):
    return InProcessWitness(tmp_path, "witness.rs-customs.test/w2", Runtime.of(app).keyring)


def _text(signed: str) -> str:
    return signed.rpartition("\n\n")[0] + "\n"


# --- the administrator's commands ------------------------------------------------------------------


def test_witness_add_list_and_remove(runner, w1, w2):
    added = runner.invoke(args=["registry", "witness", "add", "al", w1.url + "/", w1.vkey])
    assert added.exit_code == 0, added.output
    assert runner.invoke(args=["registry", "witness", "add", "rs", w2.url, w2.vkey]).exit_code == 0
    listed = runner.invoke(args=["registry", "witness", "list"]).output.splitlines()
    assert [line.split()[:3] for line in listed] == [["al", w1.url, w1.vkey], ["rs", w2.url, w2.vkey]]
    assert all("behind, cosigned size -" in line for line in listed)
    refused = {
        "name taken": ["al", "http://other.test", Cosigner().verifier.vkey()],
        "key taken": ["other", "http://other.test", w1.vkey],
        "not a verifier key": ["other", "http://other.test", "other+12345678+AQ=="],
        "not http": ["other", "ftp://other.test", Cosigner().verifier.vkey()],
        "a name with a space": ["two words", "http://other.test", Cosigner().verifier.vkey()],
    }
    for why, args in refused.items():
        result = runner.invoke(args=["registry", "witness", "add", *args])
        assert result.exit_code == 1 and result.output.startswith("Error:"), (why, result.output)
    assert runner.invoke(args=["registry", "witness", "remove", "al"]).output == "witness al removed\n"
    assert runner.invoke(args=["registry", "witness", "remove", "al"]).exit_code == 1
    assert [line.split()[0] for line in runner.invoke(args=["registry", "witness", "list"]).output.splitlines()] == [
        "rs"]


def Cosigner():  # noqa: N802 - a throwaway witness key
    return cosignature.Cosigner("witness.other.test", Ed25519PrivateKey.generate())


# --- submission ------------------------------------------------------------------------------------


def test_each_new_checkpoint_goes_to_the_witness_with_its_size_and_a_proof(mk, client, w1):
    configure(mk, w1)
    first = mk.log_size()
    assert submit(mk, w1)[w1.name] == witnesses.Outcome(w1.name, "cosigned", first)
    assert w1.bodies[0].startswith("old 0\n\n")
    for n in range(2, 5):
        mk.put(f"MKAEOF{n:06d}", licence_fields("MK", n))
    second = mk.log_size()
    assert submit(mk, w1)[w1.name].result == "cosigned"
    proof = client.get(f"/api/v1/log/proof/consistency?first={first}&second={second}").get_json()["hashes"]
    assert w1.bodies[1].startswith(f"old {first}\n" + "".join(f"{h}\n" for h in proof) + "\n")
    assert w1.state.log(mk.keyring.log_origin).tree_size == second
    # Nothing more to do until the log grows.
    assert submit(mk, w1)[w1.name].result == "up_to_date" and len(w1.bodies) == 2
    # Served with the cosignatures, each checked as the spec says.
    newest = client.get("/api/v1/log/checkpoint").get_data(as_text=True)
    older = client.get(f"/api/v1/log/checkpoints?tree_size={first}").get_data(as_text=True)
    for served, size in ((newest, second), (older, first)):
        assert set(spec_cosigners(served, {w1.name: w1.public})) == {w1.name}
        assert note.open_checkpoint(served, mk.keyring.log_verifier).tree_size == size


def test_a_witness_that_holds_a_larger_size_says_so_and_gets_a_proof_from_there(mk, client, app, tmp_path):
    configure_size = mk.log_size()
    for n in range(2, 4):
        mk.put(f"MKAEOF{n:06d}", licence_fields("MK", n))
    root = base64.b64decode(client.get(f"/api/v1/log/checkpoints?tree_size={configure_size}")
                            .get_data(as_text=True).split("\n")[2])
    # Its operator checked size `configure_size` out of band and started it there.
    late = InProcessWitness(tmp_path, "witness.late.test", Runtime.of(app).keyring, configure_size, root)
    configure(mk, late)
    assert submit(mk, late)[late.name].result == "cosigned"
    assert [body.split("\n")[0] for body in late.bodies] == ["old 0", f"old {configure_size}"]
    assert row(mk, late.name).witness_size == mk.log_size()


def test_publishing_never_waits_for_witnesses_that_are_down_and_they_are_retried_with_backoff(mk, client, w1):
    configure(mk, w1)
    w1.down = True
    assert mk.put("MKAEOF000002", licence_fields("MK", 2)).status_code == 201  # nothing waits for a witness
    assert submit(mk, w1)[w1.name].problem == "unreachable: connection refused"
    failed = row(mk, w1.name)
    assert (failed.failures, failed.next_attempt_at) == (1, mk.now() + timedelta(seconds=10))
    ready = client.get("/readyz")
    assert ready.status_code == 200  # the log is fine: the service stays in the proxy
    assert ready.get_json()["witnesses"] == [{
        "name": w1.name, "state": "failing", "cosigned_size": None, "behind": mk.log_size(),
        "last_cosigned_at": None, "failures": 1, "submissions": 1, "failed_submissions": 1,
        "next_attempt_at": "2026-11-27T10:00:10Z", "problem": "unreachable: connection refused"}]
    # In backoff, no process tries (whatever checkpoints come meanwhile).
    assert mk.put("MKAEOF000003", licence_fields("MK", 3)).status_code == 201
    assert submit(mk, w1)[w1.name].result == "waiting" and len(w1.bodies) == 1
    mk.now.advance(seconds=10)
    assert submit(mk, w1)[w1.name].result == "failed"
    assert row(mk, w1.name).next_attempt_at == mk.now() + timedelta(seconds=20)  # twice as long
    w1.down = False
    mk.now.advance(seconds=19)
    assert submit(mk, w1)[w1.name].result == "waiting"
    mk.now.advance(seconds=1)
    assert submit(mk, w1)[w1.name] == witnesses.Outcome(w1.name, "cosigned", mk.log_size())
    back = client.get("/readyz").get_json()["witnesses"][0]
    assert (back["state"], back["behind"], back["failures"], back["submissions"], back["failed_submissions"],
            back["problem"]) == ("up_to_date", 0, 0, 3, 2, None)


def test_refusals_are_counted_and_the_answer_must_be_the_witness_own_cosignature(mk, w1, tmp_path, app):
    impostor = InProcessWitness(tmp_path, "witness.impostor.test", Runtime.of(app).keyring)
    # Configured with w1's key but answered by another: no line is kept.
    with mk.session() as session:
        witnesses.add(session, "impostor", impostor.url, w1.vkey, mk.now())
    assert submit(mk, impostor)["impostor"].problem == "its answer holds no cosignature by its configured key"
    with mk.session() as session:
        assert session.scalars(select(Cosignature)).all() == []
        witnesses.remove(session, "impostor")
    # A witness that does not know this log answers 404: a failure, with the witness's words.
    stranger = InProcessWitness(tmp_path, "witness.stranger.test", Runtime.of(app).keyring)
    stranger.state = State(tmp_path / "empty.db")
    stranger.client = Client(server.make_app(Witness(stranger.state, stranger.cosigner)))
    configure(mk, stranger)
    problem = submit(mk, stranger)[stranger.name].problem
    assert problem.startswith("HTTP 404: this witness does not witness")


def test_one_process_submits_while_another_holds_the_lease(mk, w1):
    configure(mk, w1)
    entered, release = threading.Event(), threading.Event()
    first_post = w1.post

    def slow_post(url, body, timeout):
        entered.set()
        assert release.wait(WAIT)
        return first_post(url, body, timeout)

    outcomes = {}
    holder = threading.Thread(target=lambda: outcomes.update(a=witnesses.submit_due(
        Runtime.of(mk.app).database.session, TIMING, mk.now, slow_post, "process-a")))
    holder.start()
    try:
        assert entered.wait(WAIT)
        # Another process (another worker, another instance) finds the lease taken and leaves the witness be.
        assert submit(mk, w1, owner="process-b")[w1.name].result == "busy"
    finally:
        release.set()
        holder.join(WAIT)
    assert [o.result for o in outcomes["a"]] == ["cosigned"]
    assert len(w1.bodies) == 1
    assert row(mk, w1.name).lease_owner is None


def test_a_lease_left_by_a_dead_process_expires(mk, w1):
    configure(mk, w1)
    with mk.session() as session:
        session.execute(update(WitnessRow).values(lease_owner="dead", lease_until=mk.now() + timedelta(seconds=40)))
        session.commit()
    assert submit(mk, w1)[w1.name].result == "busy"
    mk.now.advance(seconds=41)
    assert submit(mk, w1)[w1.name].result == "cosigned"


def test_the_submitter_thread_submits_what_its_process_signs(mk, w1):
    configure(mk, w1)
    submitter = witnessing.Submitter(Runtime.of(mk.app).database.session, TIMING, mk.now, posting(w1))
    submitter.start()
    try:
        for n in range(2, 4):
            assert mk.put(f"MKAEOF{n:06d}", licence_fields("MK", n)).status_code == 201
            # Woken by the new checkpoint (the interval is 10 s; the wait would fail long before a poll).
            with submitter.passed:
                assert submitter.passed.wait_for(lambda: row(mk, w1.name).cosigned_size == mk.log_size(), WAIT)
    finally:
        submitter.stop()
    assert not submitter.running


def test_the_app_starts_its_submitter_on_its_first_request(database_url, keys_dir, now):
    from registry import create_app

    app = create_app({"env": "testing", "database_url": database_url, "keys_dir": keys_dir,
                      "log_origin": "aeo-registry.test/log", "witness_submit": True}, environ={})
    submitter = Runtime.of(app).witness_submitter
    try:
        assert not submitter.started  # not on import: gunicorn forks workers after it, the CLI serves nothing
        app.test_client().get("/healthz")
        assert submitter.started
    finally:
        submitter.stop()
        Runtime.of(app).database.dispose()


# --- a fork: the witness refuses ---------------------------------------------------------------------


def test_witnesses_refuse_a_fork_made_with_the_log_key(mk, app, w1):
    """Finding 6's rewrite, signed anyway, as a compromised operator holding the log key could."""
    for n in range(2, 4):
        mk.put(f"MKAEOF{n:06d}", licence_fields("MK", n))
    configure(mk, w1)
    assert submit(mk, w1)[w1.name].result == "cosigned"
    size = mk.log_size()
    cosigned_root = w1.state.log(mk.keyring.log_origin).root_hash
    forged_root = rewrite_last_leaf(app)
    signer = mk.keyring.log_signer
    # The same size with the rewritten root: a second history at the size the witness cosigned.
    forged = note.sign(note.Checkpoint(signer.name, size, forged_root).text(), signer)
    status, kind, body = w1.post(f"{w1.url}/add-checkpoint", witnesses.request_body(size, [], forged), 5)
    assert (status, kind, body) == (409, "text/x.tlog.size", f"{size}\n")
    # A larger tree over the rewritten one, with a proof from the rewritten stored hashes.
    with mk.session() as session:
        grown = log.append(session, size, [log.NewEntry("agreement", None, "FORGED", 1, "kid", "{}")], mk.now())
        session.commit()
        proof = log.consistency_proof(Reader.of(session), size, size + 1)
        root = log.root_at(Reader.of(session), size + 1)
    assert grown == [size]
    forged = note.sign(note.Checkpoint(signer.name, size + 1, root).text(), signer)
    status, _, body = w1.post(f"{w1.url}/add-checkpoint", witnesses.request_body(size, proof, forged), 5)
    assert status == 422 and "consistency proof does not verify" in body
    assert (w1.state.log(mk.keyring.log_origin).tree_size, w1.state.log(mk.keyring.log_origin).root_hash) == (
        size, cosigned_root)
    # And the registry itself signs nothing over the rewritten tree: there is nothing new to submit.
    assert mk.put("MKAEOF000009", licence_fields("MK", 9)).status_code == 503
    assert submit(mk, w1)[w1.name].result == "up_to_date"


# --- evidence that carries its witnesses ------------------------------------------------------------


def _verify(client, registry, operator: str, query: str = ""):
    return client.get(f"/api/v1/verify/{operator}{query}", headers=registry.headers("MK", "customs"))


def test_cosigned_answers_are_computed_at_the_newest_checkpoint_with_that_many_cosignatures(mk, client, w1, w2):
    configure(mk, w1, w2)
    w2.down = True
    submit(mk, w1, w2)
    witnessed = mk.log_size()
    assert mk.put("MKAEOF000002", licence_fields("MK", 2)).status_code == 201
    newer = operator_id("MK", 2)
    assert _verify(client, mk, newer).get_json()["verification"]["results"][0]["recognised"]
    one = _verify(client, mk, newer, "?cosigned=1").get_json()["verification"]
    # At the witnessed size, from the statements logged below it: the newer licence is not there yet.
    assert one["checkpoint"]["tree_size"] == witnessed
    assert one["results"][0]["reason"] == "unknown_operator"
    assert set(spec_cosigners(one["checkpoint"]["note"], {w1.name: w1.public, w2.name: w2.public})) == {w1.name}
    not_yet = _verify(client, mk, newer, "?cosigned=2")
    assert not_yet.status_code == 409
    assert not_yet.get_json()["type"].endswith(":not-cosigned")
    assert not_yet.headers["Retry-After"] == "10"
    too_many = _verify(client, mk, newer, "?cosigned=3")
    assert too_many.status_code == 400 and "cosigned" in too_many.get_json()["errors"]
    assert _verify(client, mk, newer, "?cosigned=0").get_json()["errors"].keys() == {"cosigned"}
    w2.down = False
    mk.now.advance(seconds=10)
    submit(mk, w1, w2)
    both = _verify(client, mk, newer, "?cosigned=2&proofs=true").get_json()["verification"]
    assert both["checkpoint"]["tree_size"] == mk.log_size()
    assert both["results"][0]["recognised"]
    assert set(spec_cosigners(both["checkpoint"]["note"], {w1.name: w1.public, w2.name: w2.public})) == {
        w1.name, w2.name}
    batch = client.post("/api/v1/verify:batch", json={"operator_ids": [newer], "cosigned": 2},
                        headers=mk.headers("MK", "customs")).get_json()["verification"]
    assert batch["checkpoint"]["tree_size"] == mk.log_size() and "note" in batch["checkpoint"]
    assert client.post("/api/v1/verify:batch", json={"operator_ids": [newer], "cosigned": "2"},
                       headers=mk.headers("MK", "customs")).get_json()["errors"].keys() == {"cosigned"}
    # The log's own endpoint, and snapshots, take the same parameter.
    assert client.get("/api/v1/log/checkpoint?cosigned=1").get_data(as_text=True) == both["checkpoint"]["note"]
    snapshot = client.get("/api/v1/snapshot?cosigned=2", headers=mk.headers("MK", "customs")).get_json()
    carried = jws.open_envelope(snapshot["jws"], jws.TYP_SNAPSHOT).payload()["checkpoint"]
    assert carried["tree_size"] == mk.log_size()
    assert set(spec_cosigners(carried["note"], {w1.name: w1.public, w2.name: w2.public})) == {w1.name, w2.name}


def test_answers_with_proofs_carry_the_cosignatures_held_at_their_size(mk, client, w1):
    configure(mk, w1)
    plain = _verify(client, mk, operator_id("MK", 1), "?proofs=true").get_json()["verification"]["checkpoint"]
    assert spec_cosigners(plain["note"], {w1.name: w1.public}) == {}
    submit(mk, w1)
    cosigned = _verify(client, mk, operator_id("MK", 1), "?proofs=true").get_json()["verification"]["checkpoint"]
    assert set(spec_cosigners(cosigned["note"], {w1.name: w1.public})) == {w1.name}
    assert _text(cosigned["note"]) == _text(plain["note"])  # the same checkpoint, one more signature
    # Without proofs or cosigned, the answer stays as it was: no note.
    assert "note" not in _verify(client, mk, operator_id("MK", 1)).get_json()["verification"]["checkpoint"]


def test_a_process_that_read_the_row_before_another_submitted_takes_no_lease(mk, w1):
    configure(mk, w1)
    with mk.session() as session:
        stale = session.get(WitnessRow, w1.name).cosigned_size  # process B reads: not cosigned yet
    assert stale is None
    assert submit(mk, w1, owner="process-a")[w1.name].result == "cosigned"  # A submits and lets go
    with mk.session() as session:  # B's conditional UPDATE finds the size cosigned: nothing to take
        assert not witnesses.take_lease(session, w1.name, "process-b", mk.log_size(), mk.now(),
                                    mk.now() + TIMING.lease)


# --- the monitor, the evidence page, proof files, the home page -------------------------------------


def _shown(response) -> str:
    """A page's text as a reader sees it: no tags, entities read, spaces collapsed."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))))


def _fetch(client):
    def fetch(path):
        response = client.get(path)
        return response.status_code, response.get_data(as_text=True)

    return fetch


def test_the_monitor_moves_on_only_with_its_quorum(mk, client, w1, w2, tmp_path):
    configure(mk, w1, w2)
    w2.down = True
    submit(mk, w1, w2)
    state, said = tmp_path / "monitor.json", []
    both = offline.WitnessPolicy.from_vkeys([w1.vkey, w2.vkey])
    assert monitor.run_and_report(_fetch(client), state, None, said.append, policy=both) == 3
    assert not state.exists()  # nothing taken as seen
    one = offline.WitnessPolicy.from_vkeys([w1.vkey, w2.vkey], 1)
    assert monitor.run_and_report(_fetch(client), state, None, said.append, policy=one) == 0
    assert f"cosigned by 1 trusted witnesses: {w1.name}" in said
    # The registry's newest checkpoint is not cosigned yet: the monitor checks the newest that is.
    mk.put("MKAEOF000002", licence_fields("MK", 2))
    assert monitor.run_and_report(_fetch(client), state, None, said.append, policy=one) == 0
    assert json.loads(state.read_text())["tree_size"] == mk.log_size() - 1
    w2.down = False
    mk.now.advance(seconds=10)
    submit(mk, w1, w2)
    assert monitor.run_and_report(_fetch(client), state, None, said.append, policy=both) == 0
    assert json.loads(state.read_text())["tree_size"] == mk.log_size()


def test_proof_files_of_a_licence_check_offline_and_on_the_evidence_page(mk, client, w1, app):
    configure(mk, w1)
    submit(mk, w1)
    mk.put("MKAEOF000002", licence_fields("MK", 2))  # newer, not cosigned: the proof uses the cosigned one
    query = {"operator": operator_id("MK", 1)}
    download = client.get("/certificate/MKAEOF000001/proof", query_string=query)
    assert download.status_code == 200
    assert download.headers["Content-Disposition"] == 'attachment; filename="MKAEOF000001-v1.tlog-proof"'
    text = download.get_data(as_text=True)
    parsed = tlogproof.parse(text)
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra ")
    assert parsed.checkpoint.split("\n")[1] == str(mk.log_size() - 1)
    assert set(spec_cosigners(parsed.checkpoint, {w1.name: w1.public})) == {w1.name}
    leaf = json.loads(parsed.extra)
    assert (leaf["subject"], leaf["version"]) == ("MKAEOF000001", 1) and "name" not in parsed.extra.decode()
    report = offline.check_proof(text, mk.keyring.log_verifier, offline.WitnessPolicy.from_vkeys([w1.vkey]))
    assert (report.index, report.cosigned_by) == (parsed.index, (w1.name,))
    # The same file from the API; and the links from the check page and the sheet lead to it.
    assert client.get(f"/api/v1/log/proof/tlog-proof?index={parsed.index}").get_data(as_text=True) == text
    beyond = client.get(f"/api/v1/log/proof/tlog-proof?index={mk.log_size()}")
    assert beyond.status_code == 404 and beyond.get_json()["errors"].keys() == {"index"}
    check = client.get("/check", query_string={"operator_id": operator_id("MK", 1), "certificate": "MKAEOF000001"})
    assert "/certificate/MKAEOF000001/proof?operator=" in check.get_data(as_text=True)
    # Both numbers, as for the sheet: a wrong operator id finds nothing.
    assert client.get("/certificate/MKAEOF000001/proof", query_string={"operator": operator_id("MK", 2)}
                      ).status_code == 404
    page = client.post("/evidence", data={"document": text, "witnesses": w1.vkey, "quorum": "1"})
    assert page.status_code == 200
    shown = _shown(page)
    assert "A genuine log proof" in shown and f"Your witness policy is met: cosigned by {w1.name}." in shown
    assert "This registry's log holds this very entry at that place." in shown
    other = Cosigner().verifier.vkey()
    refused = client.post("/evidence", data={"document": text, "witnesses": f"{w1.vkey}\n{other}", "quorum": "2"})
    assert refused.status_code == 400
    assert f"cosigned by 1 of the 2 trusted witnesses ({w1.name}); the policy asks for 2" in _shown(refused)
    bad = client.post("/evidence", data={"document": text, "witnesses": "not a key"})
    assert bad.status_code == 400 and "The witness policy could not be read" in _shown(bad)
    # A changed byte anywhere breaks it.
    tampered = text.replace(f"index {parsed.index}", f"index {parsed.index + 1}")
    with pytest.raises(offline.OfflineError):
        offline.check_proof(tampered, mk.keyring.log_verifier)
    assert client.post("/evidence", data={"document": tampered}).status_code == 400


def test_the_evidence_page_names_the_witnesses_of_an_answer(mk, client, w1):
    configure(mk, w1)
    submit(mk, w1)
    answer = _verify(client, mk, operator_id("MK", 1), "?proofs=true").get_data(as_text=True)
    shown = _shown(client.post("/evidence", data={"document": answer}))
    assert f"Cosigned by the registry's witnesses: {w1.name}." in shown
    plain = _verify(client, mk, operator_id("MK", 1)).get_data(as_text=True)
    refused = client.post("/evidence", data={"document": plain, "witnesses": w1.vkey})
    assert refused.status_code == 400 and "carries no checkpoint note" in _shown(refused)


def test_the_home_page_shows_each_witness(mk, client, w1, w2):
    configure(mk, w1, w2)
    w2.down = True
    submit(mk, w1, w2)
    for lang in ("en", "mk", "sq", "sr"):
        assert client.get(f"/?lang={lang}").status_code == 200
    home = _shown(client.get("/?lang=en"))
    assert w1.name in home and w2.name in home
    assert "Up to date" in home and "Not answering" in home and "(1 attempt failed in a row)" in home


def test_audit_checks_every_cosignature_kept(mk, runner, w1):
    configure(mk, w1)
    submit(mk, w1)
    assert runner.invoke(args=["registry", "audit"]).exit_code == 0
    with mk.session() as session:
        kept = session.scalars(select(Cosignature)).one()
        blob = bytearray(base64.b64decode(kept.line.split(" ")[2]))
        blob[-1] ^= 1
        kept.line = f"\u2014 {w1.name} {base64.b64encode(bytes(blob)).decode()}\n"
        session.commit()
    audited = runner.invoke(args=["registry", "audit"])
    assert audited.exit_code == 1
    assert f"FAULT cosignature at size {mk.log_size()} by {w1.name}" in audited.output
