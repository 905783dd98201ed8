"""Witnesses as partners run them: ``python -m registry.witness serve`` processes on loopback ports.

The registry submits with its real HTTP client (urllib). Each process is
bounded in time (tests/servers.py); evidence is checked with the offline
verifier's command line, as a partner would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from registry.keyring import Keyring
from registry.runtime import Runtime
from registry.services import witnesses
from registry.witness.state import State

from .helpers import licence_fields, operator_id
from .servers import READY_SECONDS, ROOT, Gunicorn, WitnessServer, cli, registry_env, request
from .spec_c2sp import spec_cosigners

TIMING = witnesses.Timing(timeout=5, interval=10, backoff_max=600)
AL, RS = "witness.al-customs.test/w1", "witness.rs-customs.test/w2"


def _submit(registry) -> dict[str, witnesses.Outcome]:
    outcomes = witnesses.submit_due(Runtime.of(registry.app).database.session, TIMING, registry.now)
    return {outcome.witness: outcome for outcome in outcomes}


def _offline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "registry.offline", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=READY_SECONDS, check=False)


def _save(path: Path, response) -> Path:
    assert response.status_code == 200, response.get_data(as_text=True)
    path.write_bytes(response.data)
    return path


@pytest.fixture
def pair(tmp_path, app):
    keyring = Runtime.of(app).keyring
    made = [WitnessServer(tmp_path / name.split("/")[0], name, keyring.log_origin, keyring.log_verifier.vkey())
            for name in (AL, RS)]
    yield made
    for witness in made:
        witness.stop()


def test_two_witnesses_and_a_quorum_of_two_through_the_offline_verifier(registry, client, runner, pair, tmp_path):
    al, rs = pair
    registry.add_party("MK")
    for witness in pair:
        added = runner.invoke(args=["registry", "witness", "add", witness.name.split(".")[1], witness.url,
                                    witness.vkey])
        assert added.exit_code == 0, added.output
    # Every witness down: publishing goes on, submissions fail and are counted.
    for n in range(1, 4):
        assert registry.put(f"MKAEOF{n:06d}", licence_fields("MK", n)).status_code == 201
    assert {name: o.result for name, o in _submit(registry).items()} == {"al-customs": "failed", "rs-customs": "failed"}
    assert client.get("/readyz").status_code == 200
    # One comes up; once its backoff has passed it is tried again and cosigns.
    al.start()
    registry.now.advance(seconds=10)
    outcomes = _submit(registry)
    assert (outcomes["al-customs"].result, outcomes["rs-customs"].result) == ("cosigned", "failed")
    headers = registry.headers("MK", "customs")
    policy = ["--witness", al.vkey, "--witness", rs.vkey, "--quorum", "2"]
    jwks = _save(tmp_path / "jwks.json", client.get("/.well-known/jwks.json"))
    snapshot = _save(tmp_path / "snapshot.json", client.get("/api/v1/snapshot", headers=headers))
    answer = _save(tmp_path / "one.json", client.get(f"/api/v1/verify/{operator_id('MK', 1)}?proofs=true",
                                                        headers=headers))
    refused = _offline("check-answer", answer, "--snapshot", snapshot, "--jwks", jwks, *policy)
    assert refused.returncode == 1 and refused.stdout == ""
    assert (f"the answer's checkpoint is cosigned by 1 of the 2 trusted witnesses ({AL}); the policy asks for 2"
            in refused.stderr), refused.stderr
    refused = _offline("verify", snapshot, operator_id("MK", 1), "--as", "MK", "--jwks", jwks, *policy)
    assert refused.returncode == 1 and f"({AL}); the policy asks for 2" in refused.stderr
    # With a quorum of one, the same evidence passes.
    passed = _offline("check-answer", answer, "--snapshot", snapshot, "--jwks", jwks, "--witness", al.vkey,
                      "--witness", rs.vkey, "--quorum", "1")
    assert passed.returncode == 0, passed.stderr
    assert json.loads(passed.stdout)["cosigned_by"] == [AL]
    # The second comes up too: both cosign, and the quorum of two holds.
    rs.start()
    registry.now.advance(seconds=20)
    assert {name: o.result for name, o in _submit(registry).items()} == {"al-customs": "up_to_date",
                                                                         "rs-customs": "cosigned"}
    answer = _save(tmp_path / "two.json", client.get(f"/api/v1/verify/{operator_id('MK', 1)}?cosigned=2&proofs=true",
                                                        headers=headers))
    snapshot = _save(tmp_path / "snapshot2.json", client.get("/api/v1/snapshot?cosigned=2", headers=headers))
    checked = _offline("check-answer", answer, "--snapshot", snapshot, "--jwks", jwks, *policy)
    assert checked.returncode == 0, checked.stderr
    report = json.loads(checked.stdout)
    assert sorted(report["cosigned_by"]) == [AL, RS] and report["licences_proven_in_log"] == 1
    verified = _offline("verify", snapshot, operator_id("MK", 1), "--as", "MK", "--jwks", jwks, *policy)
    assert verified.returncode == 0 and json.loads(verified.stdout)["recognised"], verified.stderr
    # The served checkpoint's cosignatures hold by the spec, and the witnesses' own state agrees.
    served = client.get("/api/v1/log/checkpoint").get_data(as_text=True)
    assert set(spec_cosigners(served, {w.name: w.public for w in pair})) == {AL, RS}
    for witness in pair:
        assert State(witness.state_file).log(registry.keyring.log_origin).tree_size == registry.log_size()
    # A proof file of one statement passes the same policy, through the admin CLI too.
    proof = _save(tmp_path / "entry.tlog-proof", client.get("/api/v1/log/proof/tlog-proof?index=1"))
    checked = _offline("check-answer", proof, "--snapshot", snapshot, "--jwks", jwks, *policy)
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["leaf"]["subject"] == "MKAEOF000001"
    admin = runner.invoke(args=["registry", "check-answer", str(proof), "--snapshot", str(snapshot), *policy])
    assert admin.exit_code == 0, admin.output


def test_workers_of_two_servers_on_one_database_submit_each_checkpoint_once(database_url, keys_dir, tmp_path, backend):
    """Two gunicorn instances of two workers each, every worker with its submitter thread, polling often."""
    if backend == "sqlite":
        pytest.skip("several instances on one database is the PostgreSQL deployment")
    env = registry_env(database_url, keys_dir, REGISTRY_WITNESS_INTERVAL_SECONDS="0.2")
    cli(env, "init")
    cli(env, "party", "add", "MK", "--name", "North Macedonia", "--authority", "Customs", "--hosted-key")
    token = cli(env, "token", "issue", "MK", "--role", "authority").stdout.strip()
    origin, log_vkey = _log_identity(env)
    witness = WitnessServer(tmp_path / "w", AL, origin, log_vkey)
    with witness, Gunicorn(env, tmp_path / "a.log") as first, Gunicorn(env, tmp_path / "b.log") as second:
        cli(env, "witness", "add", "al", witness.url, witness.vkey)
        for n in range(1, 9):
            server = (first, second)[n % 2]
            status, _ = request("PUT", f"{server.url}/api/v1/licences/MKAEOF{n:06d}", licence_fields("MK", n),
                                token)
            assert status == 201
        final = int(request("GET", f"{first.url}/api/v1/log")[1]["tree_size"])
        deadline = time.monotonic() + READY_SECONDS
        # Waiting for other processes to finish their work, not for time to pass.
        while State(witness.state_file).log(origin).tree_size != final:
            assert time.monotonic() < deadline, witness.output.read_text()
            time.sleep(0.1)
    cosigned = [line for line in witness.output.read_text().splitlines() if " cosigned " in line]
    sizes = [int(line.split(" at size ")[1].split(" ")[0]) for line in cosigned]
    assert sizes and sizes[-1] == final
    assert len(sizes) == len(set(sizes)), cosigned  # no checkpoint submitted twice
    assert sizes == sorted(sizes)


def _log_identity(env) -> tuple[str, str]:
    """The log's origin and verifier key, from the keys folder the servers use."""
    keyring = Keyring(Path(env["REGISTRY_KEYS_DIR"]), env["REGISTRY_LOG_ORIGIN"])
    return keyring.log_origin, keyring.log_verifier.vkey()
