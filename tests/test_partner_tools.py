"""Feed, snapshots, the offline verifier, the monitor: trusting the registry without its operator."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from registry import monitor, offline
from registry.crypto import jws
from registry.domain.timefmt import format_time
from registry.runtime import Runtime
from registry.services import demo as demo_data

from .helpers import licence_fields, operator_id

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def demo(runner, tmp_path):
    tokens_file = tmp_path / "tokens.json"
    result = runner.invoke(args=["registry", "demo", "--tokens-file", str(tokens_file)])
    assert result.exit_code == 0, result.output
    return json.loads(tokens_file.read_text())


def _auth(token):
    return {"Authorization": f"Bearer {token}"}


def _snapshot(client, token, tmp_path, name="snapshot.json", **query):
    response = client.get("/api/v1/snapshot", query_string=query, headers=_auth(token))
    assert response.status_code == 200, response.get_json()
    path = tmp_path / name
    path.write_text(response.get_data(as_text=True))
    return path, response.get_json()


def _jwks(client, tmp_path):
    path = tmp_path / "jwks.json"
    path.write_text(client.get("/.well-known/jwks.json").get_data(as_text=True))
    return path


def _demo_operator_ids():
    ids = []
    for code, story_list in demo_data.stories().items():
        for slot, story in enumerate(story_list):
            ids.append(f"{code}{demo_data.national_number(code, 100 + slot)}")
            if story == "alias":
                ids.append(f"{code}{demo_data.national_number(code, 900 + slot)}")
    return ids


# --- the change feed ------------------------------------------------------------------------


def test_feed_shows_statements_only_where_the_caller_may_see_them(demo, client):
    seen, after = [], -1
    while after is not None:
        page = client.get(f"/api/v1/feed?after={after}&limit=7", headers=_auth(demo["AL"]["customs"])).get_json()
        seen += page["items"]
        after = page["next_after"]
    assert [item["index"] for item in seen] == list(range(page["tree_size"]))
    hidden = [item for item in seen if "statement" not in item]
    assert hidden, "the demo has licences without partner consent"
    for item in seen:
        leaf = json.loads(item["leaf"])
        if "statement" in item:
            assert jws.logged_payload(item["statement"]).get("consent", {"partners": True})["partners"] \
                or leaf["party"] == "AL"
        else:
            assert item["kind"] == "licence" and leaf["party"] != "AL"
    own = client.get("/api/v1/feed?limit=1000", headers=_auth(demo["MD"]["customs"])).get_json()["items"]
    md_hidden = [i for i in own if "statement" not in i and json.loads(i["leaf"])["party"] == "MD"]
    assert md_hidden == []  # a party sees all of its own


def test_feed_needs_a_token(demo, client):
    assert client.get("/api/v1/feed").status_code == 401
    assert client.get("/api/v1/feed?after=-2", headers=_auth(demo["AL"]["customs"])).status_code == 400


# --- snapshots and the offline verifier ------------------------------------------------------


def test_snapshot_is_signed_and_filtered(demo, client, tmp_path):
    _, document = _snapshot(client, demo["AL"]["customs"], tmp_path)
    snap = offline.open_snapshot(document, client.get("/.well-known/jwks.json").get_json())
    assert snap.checkpoint.tree_size == client.get("/api/v1/log").get_json()["tree_size"]
    parties = {v.party for v in snap.licence_versions}
    assert parties == {"AL", "BA", "MD", "ME", "MK", "RS", "XK"}
    assert all(v.consent_partners or v.party == "AL" for v in snap.licence_versions)
    _, only_mk = _snapshot(client, demo["AL"]["customs"], tmp_path, "mk.json", party="MK")
    jwks = client.get("/.well-known/jwks.json").get_json()
    assert {v.party for v in offline.open_snapshot(only_mk, jwks).licence_versions} == {"MK"}
    assert client.get("/api/v1/snapshot?party=ZZ", headers=_auth(demo["AL"]["customs"])).status_code == 404


def test_offline_answers_equal_the_service_for_every_operator_party_and_time(demo, client, tmp_path, now):
    times = [None, now() - timedelta(days=200), now() - timedelta(days=90), now() - timedelta(days=12),
             now() + timedelta(days=45)]
    checked = 0
    for verifier, tokens in demo.items():
        _, document = _snapshot(client, tokens["customs"], tmp_path, f"{verifier}.json")
        snap = offline.open_snapshot(document, client.get("/.well-known/jwks.json").get_json())
        for at in times:
            ids = [*_demo_operator_ids(), operator_id("RS", 4242)]
            body = {"operator_ids": ids, "include_statements": True}
            if at is not None:
                body["at"] = format_time(at)
            service = client.post("/api/v1/verify:batch", json=body, headers=_auth(tokens["customs"])).get_json()
            moment = at or now()
            for operator, expected in zip(ids, service["verification"]["results"], strict=True):
                got = offline.answer(snap, operator, verifier, moment).as_json()
                assert (got["recognised"], got["reason"]) == (expected["recognised"], expected["reason"]), \
                    (verifier, operator, at)
                assert got == expected
                checked += 1
    assert checked == 7 * 5 * (len(_demo_operator_ids()) + 1)


def test_verify_offline_cli_prints_a_result_and_exits_zero(demo, client, runner, tmp_path):
    snapshot, _ = _snapshot(client, demo["AL"]["customs"], tmp_path)
    jwks = _jwks(client, tmp_path)
    for operator, recognised in ((_demo_operator_ids()[0], True), (operator_id("RS", 4242), False)):
        result = runner.invoke(args=["registry", "verify-offline", str(snapshot), operator, "--as", "AL",
                                     "--jwks", str(jwks)])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["recognised"] is recognised


def test_offline_verifier_runs_without_flask_or_the_database(demo, client, tmp_path):
    snapshot, _ = _snapshot(client, demo["AL"]["customs"], tmp_path)
    jwks = _jwks(client, tmp_path)
    code = (
        "import sys, json, runpy\n"
        f"sys.argv = ['offline', 'verify', {str(snapshot)!r}, {_demo_operator_ids()[0]!r}, '--as', 'AL',"
        f" '--jwks', {str(jwks)!r}, '--at', '2026-11-01']\n"
        "try:\n    runpy.run_module('registry.offline', run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "loaded = [m for m in ('flask', 'sqlalchemy', 'werkzeug', 'marshmallow') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                               timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["reason"] == "recognised"


def _resign(client, app, payload, typ):
    """A forgery that only the registry's own answer key could make: used to plant bad statements."""
    return jws.sign(payload, Runtime.of(app).keyring.answer_key, typ)


def test_tampered_snapshot_fails_with_a_clear_message(demo, client, runner, tmp_path):
    snapshot, document = _snapshot(client, demo["AL"]["customs"], tmp_path)
    head, payload, signature = document["jws"].split(".")
    snapshot.write_text(json.dumps({"jws": f"{head}.{payload[:-6]}AAAAAA.{signature}"}))
    result = runner.invoke(args=["registry", "verify-offline", str(snapshot), _demo_operator_ids()[0],
                                 "--as", "AL", "--jwks", str(_jwks(client, tmp_path))])
    assert result.exit_code != 0
    assert "verification failed: snapshot" in result.stderr


def test_statement_signed_by_the_wrong_party_fails_offline(demo, client, app, tmp_path):
    _, document = _snapshot(client, demo["AL"]["customs"], tmp_path)
    payload = jws.logged_payload(document["jws"])
    mk = next(lic for lic in payload["licences"] if lic["party"] == "MK")
    rs = next(lic for lic in payload["licences"] if lic["party"] == "RS")
    mk["versions"][0]["statement"] = rs["versions"][0]["statement"]  # an RS-signed statement filed under MK
    forged = {"jws": _resign(client, app, payload, jws.TYP_SNAPSHOT)}
    with pytest.raises(offline.OfflineError, match=f"licence {mk['certificate']}"):
        offline.open_snapshot(forged, client.get("/.well-known/jwks.json").get_json())


def test_snapshot_signed_by_another_key_fails_against_pinned_keys(demo, client, tmp_path):
    from registry.crypto import keys

    _, document = _snapshot(client, demo["AL"]["customs"], tmp_path)
    payload = jws.logged_payload(document["jws"])
    stranger = jws.sign(payload, keys.generate(), jws.TYP_SNAPSHOT)
    with pytest.raises(offline.OfflineError, match="not by a registry answer key"):
        offline.open_snapshot({"jws": stranger}, client.get("/.well-known/jwks.json").get_json())


# --- stored answers -------------------------------------------------------------------------------


@pytest.fixture
def evidence(demo, client, tmp_path):
    snapshot, _ = _snapshot(client, demo["AL"]["customs"], tmp_path)
    response = client.get(f"/api/v1/verify/{_demo_operator_ids()[0]}?proofs=true&nonce=decl-1",
                          headers=_auth(demo["AL"]["customs"]))
    answer = tmp_path / "answer.json"
    answer.write_text(response.get_data(as_text=True))
    return answer, snapshot, _jwks(client, tmp_path)


def _check(runner, answer, snapshot, jwks):
    return runner.invoke(args=["registry", "check-answer", str(answer), "--snapshot", str(snapshot),
                               "--jwks", str(jwks)])


def test_stored_answer_with_proofs_checks_out(evidence, runner):
    result = _check(runner, *evidence)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["valid"] is True and report["licences_proven_in_log"] == 1
    assert report["results"][0]["recognised"] is True


def test_tampered_answer_fails(evidence, runner):
    answer = evidence[0]
    document = json.loads(answer.read_text())
    document["verification"]["results"][0]["reason"] = "revoked"
    answer.write_text(json.dumps(document))
    result = _check(runner, *evidence)
    assert result.exit_code == 1
    assert "differs from the signed payload" in result.stderr
    head, payload, signature = document["jws"].split(".")
    document = {"jws": f"{head}.{payload[:-4]}AAAA.{signature}"}
    answer.write_text(json.dumps(document))
    result = _check(runner, *evidence)
    assert result.exit_code == 1 and "answer:" in result.stderr


def test_tampered_proof_fails(evidence, runner, app, client):
    answer = evidence[0]
    document = json.loads(answer.read_text())
    verification = document["verification"]
    hashes = verification["results"][0]["licences"][0]["inclusion_proof"]["hashes"]
    hashes[0] = ("B" if hashes[0][0] != "B" else "C") + hashes[0][1:]
    answer.write_text(json.dumps({"verification": verification,
                                  "jws": _resign(client, app, verification, jws.TYP_VERIFICATION)}))
    result = _check(runner, *evidence)
    assert result.exit_code == 1
    assert "inclusion proof" in result.stderr


def test_answer_with_a_statement_of_the_wrong_party_fails(evidence, runner, app, client, demo):
    answer = evidence[0]
    verification = json.loads(answer.read_text())["verification"]
    other = client.get(f"/api/v1/verify/{_demo_operator_ids()[-1]}",
                       headers=_auth(demo["XK"]["customs"])).get_json()["verification"]
    verification["results"][0]["licences"][0]["statement"] = other["results"][0]["licences"][0]["statement"]
    answer.write_text(json.dumps({"verification": verification,
                                  "jws": _resign(client, app, verification, jws.TYP_VERIFICATION)}))
    result = _check(runner, *evidence)
    assert result.exit_code == 1
    assert "statement" in result.stderr


def test_stale_answer_is_reported_not_failed(evidence, now):
    answer, snapshot, jwks = evidence
    snap = offline.open_snapshot(json.loads(snapshot.read_text()), json.loads(jwks.read_text()))
    report = offline.check_answer(json.loads(answer.read_text()), snap, now=now() + timedelta(hours=2))
    assert report.fresh is False


# --- the monitor ----------------------------------------------------------------------------------


def _fetch(client):
    def fetch(path):
        response = client.get(path)
        return response.status_code, response.get_data(as_text=True)

    return fetch


def _monitor(client, state):
    return monitor.run_and_report(_fetch(client), state, None, lambda line: None)


def test_monitor_passes_on_a_growing_log(registry, client, tmp_path):
    registry.add_party("MK")
    state = tmp_path / "monitor.json"
    assert _monitor(client, state) == 0
    for n in range(1, 6):
        registry.put(f"MKAEOF{n:06d}", licence_fields(serial=n))
        assert _monitor(client, state) == 0
    assert json.loads(state.read_text())["tree_size"] == registry.log_size()
    assert _monitor(client, state) == 0  # nothing new is fine too


def test_monitor_cli(registry, runner, client, tmp_path, monkeypatch):
    registry.add_party("MK")
    monkeypatch.setattr(monitor, "http_fetcher", lambda url: _fetch(client))
    result = runner.invoke(args=["registry", "monitor", "http://registry.test", "--state",
                                 str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    assert "verifies" in result.stdout


def _rewrite_history(app, keep: int) -> None:
    """As if the operator restored a backup taken at size ``keep`` (licences made after it only)."""
    engine = Runtime.of(app).database.engine
    statements = [
        "DELETE FROM licence_identifier"
        " WHERE certificate IN (SELECT certificate FROM licence WHERE log_index >= :keep)",
        "DELETE FROM licence_version WHERE log_index >= :keep",
        "DELETE FROM licence WHERE log_index >= :keep",
        "DELETE FROM checkpoint WHERE tree_size > :keep",
        "DELETE FROM log_node WHERE (idx + 1) * (1 << level) > :keep",
        "DELETE FROM log_entry WHERE idx >= :keep",
        "UPDATE log_head SET tree_size = :keep",
    ]
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement), {"keep": keep})


def test_monitor_detects_a_rewritten_history(registry, app, client, tmp_path):
    registry.add_party("MK")
    for n in range(1, 4):
        registry.put(f"MKAEOF{n:06d}", licence_fields(serial=n))
    state = tmp_path / "monitor.json"
    assert _monitor(client, state) == 0
    kept = registry.log_size()
    for n in range(4, 8):
        registry.put(f"MKAEOF{n:06d}", licence_fields(serial=n))
    assert _monitor(client, state) == 0
    seen = registry.log_size()
    _rewrite_history(app, kept)
    for n in range(4, 10):  # different entries, past the size the monitor saw
        registry.put(f"MKAEOS{n:06d}", licence_fields(serial=n, type="AEOS"))
    assert registry.log_size() > seen
    assert _monitor(client, state) == 1


def test_monitor_detects_a_restored_sqlite_file(registry, app, client, tmp_path, backend):
    if backend != "sqlite":
        pytest.skip("restores a copy of the SQLite file")
    registry.add_party("MK")
    registry.put("MKAEOF000001", licence_fields())
    database = Path(Runtime.of(app).database.engine.url.database)
    Runtime.of(app).database.dispose()
    shutil.copy(database, tmp_path / "backup.sqlite3")
    for n in range(2, 6):
        registry.put(f"MKAEOF{n:06d}", licence_fields(serial=n))
    state = tmp_path / "monitor.json"
    assert _monitor(client, state) == 0
    Runtime.of(app).database.dispose()
    for suffix in ("-wal", "-shm"):
        Path(str(database) + suffix).unlink(missing_ok=True)
    shutil.copy(tmp_path / "backup.sqlite3", database)
    for n in range(2, 9):
        registry.put(f"MKAEOS{n:06d}", licence_fields(serial=n, type="AEOS"))
    assert _monitor(client, state) == 1


def test_monitor_detects_a_forked_root_at_the_same_size(registry, app, client, tmp_path):
    registry.add_party("MK")
    registry.put("MKAEOF000001", licence_fields())
    state = tmp_path / "monitor.json"
    assert _monitor(client, state) == 0
    saved = json.loads(state.read_text())
    saved["root_hash"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    state.write_text(json.dumps(saved))
    assert _monitor(client, state) == 1


def test_monitor_refuses_a_changed_log_key(registry, client, tmp_path):
    registry.add_party("MK")
    state = tmp_path / "monitor.json"
    assert _monitor(client, state) == 0
    saved = json.loads(state.read_text())
    saved["verifier_key"] = saved["verifier_key"][:-4] + "AAA="
    state.write_text(json.dumps(saved))
    assert _monitor(client, state) == 1


def test_answer_checks_against_the_published_keys_without_a_snapshot(evidence, client):
    answer = json.loads(evidence[0].read_text())
    anchors = offline.Anchors.published(client.get("/.well-known/jwks.json").get_json(),
                                        client.get("/api/v1/log").get_json()["verifier_key"],
                                        client.get("/api/v1/parties").get_json()["items"])
    report = offline.check_answer(answer, anchors)
    assert report.proven == 1 and report.results[0]["recognised"] is True
    answer["verification"]["results"][0]["licences"][0]["inclusion_proof"]["leaf"] = "{}"
    with pytest.raises(offline.OfflineError, match="differs from the signed payload"):
        offline.check_answer(answer, anchors)
