"""The trust model's holes found by an attacker's review (issue 26), each reproduced and closed.

1. a party vouching for another party's operator through an alias;
2. an alias that kept finding a licence after a version dropped it;
3. a back-dated key revocation that un-revoked an operator and broke every snapshot;
4. the public self-check saying more than partners' verifications do;
5. audit blind to the tables answers are computed from;
6. the registry signing a checkpoint inconsistent with one it signed before;
7. the offline verifier trusting the keys a snapshot carries;
8. genuine large evidence called tampered.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import text

from registry import offline
from registry.crypto import jws, keys
from registry.crypto.canonical import canonical_json
from registry.domain.timefmt import format_time
from registry.runtime import Runtime
from registry.services import licences as licence_service

from .helpers import licence_fields, licence_payload, operator_id, rewrite_last_leaf, sign_licence

EU_EORI = "DE123456789012345"[:17]  # a non-party prefix: any party may list it, one at a time


def _verify(registry, identifier, party, role="customs", **query):
    response = registry.client.get(f"/api/v1/verify/{identifier}", query_string=query,
                                   headers=registry.headers(party, role))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["verification"]["results"][0]


def _agreements(registry):
    from registry.services import agreements

    with registry.session() as session:
        for record in ({"id": "CEFTA-AP5", "title": "AP5", "status": "in_force", "in_force_from": "2021-01-01",
                        "mutual": {"parties": ["AL", "MD", "MK", "RS"], "types": ["AEOS", "AEOF"]}},
                       {"id": "RS-MK", "title": "RS-MK", "status": "in_force", "in_force_from": "2021-01-01",
                        "mutual": {"parties": ["MK", "RS"], "types": ["AEOC", "AEOS", "AEOF"]}}):
            agreements.put(session, registry.keyring, record, registry.now())


@pytest.fixture
def region(registry):
    for code in ("AL", "MD", "MK", "RS"):
        registry.add_party(code)
    _agreements(registry)
    return registry


# --- 1. identifier ownership -----------------------------------------------------------------


def test_a_party_cannot_claim_another_partys_operator(region):
    mk_operator = operator_id("MK", 36)
    assert region.put("MKAEOF000036", licence_fields("MK", 36, status="suspended")).status_code == 201
    rs = licence_fields("RS", 1, operator={"id": operator_id("RS", 1), "name": "Vouched", "aliases": [mk_operator],
                                           "address": None})
    response = region.put("RSAEOF000001", rs, code="RS")
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["operator.aliases.0"]
    assert "only MK may claim it" in response.get_json()["errors"]["operator.aliases.0"][0]
    assert region.log_size() == 2 + 4 + 1  # four parties' keys, two agreements, MK's licence: nothing more
    # What partners learn about the MK operator is what MK says.
    assert _verify(region, mk_operator, "AL")["reason"] == "suspended"
    assert _verify(region, mk_operator, "MK")["reason"] == "suspended"


def test_an_operator_id_carries_its_issuers_code(region):
    body = licence_fields("RS", 1, operator={"id": operator_id("MK", 5), "name": "x", "aliases": [], "address": None})
    response = region.put("RSAEOF000001", body, code="RS")
    assert response.status_code == 422
    assert "must begin with RS" in response.get_json()["errors"]["operator.id"][0]
    statement = sign_licence(region.own_key("RS"), licence_payload("RSAEOF000002", 1, party="RS", operator={
        "id": operator_id("RS", 2), "name": "y", "aliases": [operator_id("MD", 3)], "address": None}))
    response = region.put("RSAEOF000002", {"statement": statement}, code="RS")
    assert response.status_code == 422
    assert "statement.operator.aliases.0" in response.get_json()["errors"]


def test_in_a_batch_the_claim_is_named_by_its_position(region):
    items = [{"certificate": "RSAEOF000001", **licence_fields("RS", 1)},
             {"certificate": "RSAEOF000002", **licence_fields("RS", 2, operator={
                 "id": operator_id("RS", 2), "name": "x", "aliases": [operator_id("AL", 1)], "address": None})}]
    response = region.batch(items, code="RS")
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["licences.1.operator.aliases.0"]


def test_another_alias_belongs_to_one_party_at_a_time(region, now):
    rs = licence_fields("RS", 1, operator={"id": operator_id("RS", 1), "name": "Dunav", "aliases": [EU_EORI],
                                           "address": None})
    assert region.put("RSAEOF000001", rs, code="RS").status_code == 201
    mk = licence_fields("MK", 1, operator={"id": operator_id("MK", 1), "name": "Vardar", "aliases": [EU_EORI],
                                           "address": None})
    refused = region.put("MKAEOF000001", mk)
    assert refused.status_code == 409
    assert "RSAEOF000001" in refused.get_json()["errors"]["operator.aliases.0"][0]
    assert _verify(region, EU_EORI, "AL")["licences"][0]["certificate"] == "RSAEOF000001"
    # Free again once RS's current version drops it.
    now.advance(days=1)
    assert region.put("RSAEOF000001", {**rs, "operator": {**rs["operator"], "aliases": []}}, code="RS").status_code \
        == 200
    now.advance(days=1)
    assert region.put("MKAEOF000001", mk).status_code == 201
    result = _verify(region, EU_EORI, "AL")
    assert [licence["certificate"] for licence in result["licences"]] == ["MKAEOF000001"]
    # Before RS dropped it, the identifier found RS's licence, and only that.
    earlier = _verify(region, EU_EORI, "AL", at=format_time(now() - timedelta(days=1, hours=12)))
    assert [licence["certificate"] for licence in earlier["licences"]] == ["RSAEOF000001"]


def test_claims_logged_before_the_rule_count_for_nothing(region, monkeypatch):
    """Statements already in the log that list another party's identifier (the migration keeps them)."""
    mk_operator = operator_id("MK", 36)
    assert region.put("MKAEOF000036", licence_fields("MK", 36, status="suspended")).status_code == 201
    md_hidden = operator_id("MD", 7)
    assert region.put("MDAEOF000007", licence_fields("MD", 7, consent={"partners": False, "public": False}),
                      code="MD").status_code == 201
    monkeypatch.setattr(licence_service._Checker, "check_claims", lambda *args: None)  # as before the rule
    rs = licence_fields("RS", 1, operator={"id": operator_id("RS", 1), "name": "Vouched",
                                           "aliases": [mk_operator, md_hidden], "address": None})
    assert region.put("RSAEOF000001", rs, code="RS").status_code == 201
    monkeypatch.undo()
    assert _verify(region, mk_operator, "AL")["reason"] == "suspended"
    assert _verify(region, mk_operator, "MK")["reason"] == "suspended"
    assert _verify(region, md_hidden, "AL")["reason"] == "no_consent"
    assert _verify(region, md_hidden, "RS")["reason"] == "no_consent"
    assert _verify(region, operator_id("RS", 1), "AL")["reason"] == "recognised"


# --- 2. a dropped alias ----------------------------------------------------------------------


def test_a_dropped_alias_finds_nothing_from_the_version_that_drops_it(region, now):
    former = operator_id("MK", 900)
    body = licence_fields("MK", 1, operator={"id": operator_id("MK", 1), "name": "Vardar", "aliases": [former],
                                             "address": None})
    assert region.put("MKAEOF000001", body).status_code == 201
    assert _verify(region, former, "AL")["reason"] == "recognised"
    now.advance(days=2)
    dropped = region.put("MKAEOF000001", {**body, "operator": {**body["operator"], "aliases": []}})
    assert dropped.status_code == 200
    assert _verify(region, former, "AL")["reason"] == "unknown_operator"
    assert _verify(region, former, "MK")["reason"] == "unknown_operator"
    assert _verify(region, former, "AL", at=format_time(now() - timedelta(days=1)))["reason"] == "recognised"
    assert _verify(region, operator_id("MK", 1), "AL")["reason"] == "recognised"


# --- 3. back-dated key revocations --------------------------------------------------------------


def _key_change(signer, action, target, party="RS", **extra):
    payload = {"party": party, "action": action, "jwk": keys.public_jwk(target), "valid_from": None,
               "revoked_at": None, **extra}
    return jws.sign(payload, signer, jws.TYP_PARTY_KEY)


def _post_key(registry, statement, party="RS"):
    return registry.client.post(f"/api/v1/parties/{party}/keys", json={"statement": statement},
                                headers=registry.headers(party))


def _publish(registry, key, version, **changes):
    statement = sign_licence(key, licence_payload("RSAEOF000001", version, party="RS", **changes))
    return registry.put("RSAEOF000001", {"statement": statement}, code="RS")


def test_a_back_dated_revocation_cannot_un_revoke_an_operator(region, now, runner, client, tmp_path):
    k1 = region.own_key("RS")
    operator = operator_id("RS", 1)
    now.advance(hours=1)
    assert _publish(region, k1, 1).status_code == 201
    now.advance(hours=1)
    between = now()
    now.advance(hours=1)
    assert _publish(region, k1, 2, status="revoked", reason="fraud").status_code == 200
    now.advance(hours=1)
    k2 = keys.generate()
    assert _post_key(region, _key_change(k1, "add", k2)).status_code == 201  # the thief enrols a key of his own
    now.advance(hours=1)
    attempt = _post_key(region, _key_change(k2, "revoke", k1, revoked_at=format_time(between)))
    assert attempt.status_code == 409
    assert "would void the key that signs it" in attempt.get_json()["errors"]["statement.revoked_at"][0]
    assert _verify(region, operator, "AL")["reason"] == "revoked"
    assert _verify(region, operator, "RS")["reason"] == "revoked"
    result = runner.invoke(args=["registry", "audit"])
    assert result.exit_code == 0 and "void" not in result.stdout, result.output


def test_a_back_dated_revocation_by_a_fresh_key_voids_what_the_thief_signed(region, now, runner, client, tmp_path):
    k1 = region.own_key("RS")
    operator = operator_id("RS", 1)
    now.advance(hours=1)
    assert _publish(region, k1, 1).status_code == 201
    now.advance(hours=1)
    compromised = now()
    now.advance(hours=1)
    stolen_version = _publish(region, k1, 2, status="suspended", reason="a thief's suspension")
    assert stolen_version.status_code == 200
    now.advance(hours=1)
    k2 = keys.generate()
    enrolled_by_thief = _post_key(region, _key_change(k1, "add", k2))
    assert enrolled_by_thief.status_code == 201
    now.advance(hours=1)
    assert _publish(region, k2, 3, status="revoked", reason="the thief again").status_code == 200
    assert _verify(region, operator, "AL")["reason"] == "revoked"
    # The administrator enrols a fresh key after an out-of-band check; RS dates the compromise back with it.
    now.advance(hours=1)
    k3 = region.own_key("RS")
    now.advance(hours=1)
    revocation = _post_key(region, _key_change(k3, "revoke", k1, revoked_at=format_time(compromised)))
    assert revocation.status_code == 201, revocation.get_json()

    # Versions 2 and 3 are void (3 signed by k2, which a void statement enrolled): version 1 stands.
    assert _verify(region, operator, "AL")["reason"] == "recognised"
    keys_now = {k["kid"]: k["status"] for k in client.get("/api/v1/parties/RS").get_json()["keys"]}
    assert {kid: keys_now[kid] for kid in (k1.kid, k2.kid, k3.kid)} == {k1.kid: "revoked", k2.kid: "void",
                                                                         k3.kid: "active"}
    assert _publish(region, k2, 4, status="active").status_code == 400  # k2 can sign nothing
    detail = client.get("/api/v1/licences/RSAEOF000001", headers=region.headers("RS")).get_json()
    assert detail["licence"]["version"] == 1
    assert [bool(v.get("void")) for v in detail["history"]] == [False, True, True]
    # The lifecycle is judged against version 1: RS can revoke again, as version 4.
    now.advance(hours=1)
    again = _publish(region, k3, 4, status="revoked", reason="fraud, stated with a valid key")
    assert again.status_code == 200, again.get_json()
    assert _verify(region, operator, "AL")["reason"] == "revoked"

    # Feeds and snapshots keep the void statements, marked; the offline verifier and audit agree.
    feed = client.get("/api/v1/feed?after=-1&limit=1000", headers=region.headers("AL", "customs")).get_json()
    void_indices = {item["index"] for item in feed["items"] if item.get("void")}
    assert stolen_version.get_json()["log_index"] in void_indices
    assert enrolled_by_thief.get_json()["log_index"] in void_indices
    snapshot = client.get("/api/v1/snapshot", headers=region.headers("AL", "customs")).get_json()
    snap = offline.open_snapshot(snapshot, client.get("/.well-known/jwks.json").get_json())
    assert offline.answer(snap, operator, "AL", now()).reason == "revoked"
    result = runner.invoke(args=["registry", "audit"])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("VOID ") == 3  # versions 2 and 3 and k2's enrolment


def test_a_revocation_may_not_reach_back_before_the_keys_enrolment(region, now):
    k1 = region.own_key("RS")
    before = now() - timedelta(days=1)
    now.advance(hours=1)
    k2 = region.own_key("RS")
    response = _post_key(region, _key_change(k2, "revoke", k1, revoked_at=format_time(before)))
    assert response.status_code == 400
    assert "before the key was enrolled" in response.get_json()["errors"]["statement.revoked_at"][0]


# --- 4. the self-check says what partners see ---------------------------------------------------


def _public_check(client, operator, certificate):
    return client.get("/api/v1/public/check", query_string={"operator_id": operator, "certificate": certificate})


@pytest.mark.parametrize(("partners", "public", "lookup", "history"), list(itertools.product(
    (True, False), (True, False), ("id", "alias", "dropped alias"),
    ("active", "suspended", "suspended in AEOC", "revoked", "AEOC"))))
def test_the_self_check_lists_exactly_the_parties_whose_verification_recognises(region, now, client, partners,
                                                                              public, lookup, history):
    former = operator_id("MK", 900)
    fields = licence_fields("MK", 1, type="AEOC" if history == "AEOC" else "AEOF",
                            consent={"partners": partners, "public": public},
                            operator={"id": operator_id("MK", 1), "name": "Vardar", "aliases": [former],
                                      "address": None})
    assert region.put("MKAEOF000001", fields).status_code == 201
    now.advance(days=1)
    changes = {"suspended": {"status": "suspended"}, "suspended in AEOC": {"status": "suspended",
                                                                            "suspended_scope": "AEOC"},
               "revoked": {"status": "revoked"}}.get(history, {})
    if lookup == "dropped alias":
        changes["operator"] = {**fields["operator"], "aliases": []}
    if changes:
        assert region.put("MKAEOF000001", {**fields, **changes}).status_code == 200
    asked = operator_id("MK", 1) if lookup == "id" else former
    response = _public_check(client, asked, "MKAEOF000001")
    verdicts = {party: _verify(region, asked, party) for party in ("AL", "MD", "MK", "RS")}
    if lookup == "dropped alias":
        assert response.status_code == 404
        assert all(v["reason"] == "unknown_operator" for v in verdicts.values())
        return
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    listed = {entry["party"] for entry in body["recognised_by"]}
    assert listed == {party for party, verdict in verdicts.items() if verdict["recognised"]}
    for entry in body["recognised_by"]:
        assert entry["agreement"] == verdicts[entry["party"]]["recognition"]["agreement"]
    assert body["shared_with_partners"] is partners
    assert (body["operator"] is not None) is public
    if not partners:
        assert listed <= {"MK"}
        assert all(verdicts[p]["reason"] == "no_consent" for p in ("AL", "MD", "RS"))


def test_the_self_check_page_tells_the_trader_when_a_licence_is_not_shared(region, client):
    fields = licence_fields("MK", 1, consent={"partners": False, "public": True})
    assert region.put("MKAEOF000001", fields).status_code == 201
    page = client.get("/check", query_string={"operator_id": operator_id("MK", 1), "certificate": "MKAEOF000001"})
    assert page.status_code == 200
    assert "not agreed to share" in page.get_data(as_text=True)


# --- 5. audit sees the tables answers come from ----------------------------------------------------


def _sql(app, statement, **params):
    engine = Runtime.of(app).database.engine
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        else:
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        assert connection.execute(text(statement), params).rowcount >= 1


@pytest.fixture
def audited(region, now):
    region.put("MKAEOF000001", licence_fields("MK", 1, consent={"partners": False, "public": False}))
    region.put("MKAEOF000002", licence_fields("MK", 2))
    now.advance(days=1)
    region.put("MKAEOF000002", licence_fields("MK", 2, status="revoked"))
    return region


@pytest.mark.parametrize(("edit", "named"), [
    ("UPDATE licence_version SET certificate = 'MKAEOF000001' WHERE certificate = 'MKAEOF000002' AND version = 2",
     "indexed as version 2 of MKAEOF000001"),
    (f"DELETE FROM licence_identifier WHERE identifier = '{operator_id('MK', 2)}'",
     f"table licence_identifier: identifier and certificate ('{operator_id('MK', 2)}', 'MKAEOF000002') is in the "
     "log but not in the table"),
    ("UPDATE party_key SET revoked_at = '2020-01-01 00:00:00.000000', status = 'revoked' WHERE party_code = 'MD'",
     "status, revoked_at differ from what the log says"),
    ("UPDATE licence SET consent_partners = true WHERE certificate = 'MKAEOF000001'",
     "table licence: certificate MKAEOF000001 holds consent_partners True where the log says False"),
    ("DELETE FROM licence WHERE certificate = 'MKAEOF000002'",
     "table licence: certificate MKAEOF000002 is in the log but not in the table"),
])
def test_audit_recomputes_every_table_answers_come_from(audited, app, runner, edit, named):
    assert runner.invoke(args=["registry", "audit"]).exit_code == 0
    _sql(app, edit)
    result = runner.invoke(args=["registry", "audit"])
    assert result.exit_code == 1
    assert named in result.stderr, result.stderr


def test_a_flipped_consent_flag_would_hand_a_partner_the_statement(audited, app, client):
    """Why the consent column matters: the feed reads it; audit (above) catches the flip."""
    _sql(app, "UPDATE licence SET consent_partners = true WHERE certificate = 'MKAEOF000001'")
    feed = client.get("/api/v1/feed?after=-1&limit=1000", headers=audited.headers("AL", "customs")).get_json()
    assert any("statement" in item and '"subject":"MKAEOF000001"' in item["leaf"] for item in feed["items"])


# --- 6. never two inconsistent checkpoints -------------------------------------------------------------


def test_the_registry_never_signs_a_checkpoint_inconsistent_with_its_last_note(region, app, client):
    assert region.put("MKAEOF000001", licence_fields("MK", 1)).status_code == 201
    signed = client.get("/api/v1/log/checkpoint").get_data(as_text=True)
    size = region.log_size()
    rewrite_last_leaf(app)
    response = region.put("MKAEOF000002", licence_fields("MK", 2))
    assert response.status_code == 503
    assert response.get_json()["type"].endswith("log-integrity")
    assert "not consistent with the checkpoint signed at size" in response.get_json()["detail"]
    assert region.log_size() == size
    assert client.get("/api/v1/log/checkpoint").get_data(as_text=True) == signed
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "not consistent with the checkpoint signed" in ready.get_json()["detail"]


def test_readyz_is_ready_on_an_honest_log(region, client):
    assert region.put("MKAEOF000001", licence_fields("MK", 1)).status_code == 201
    assert client.get("/readyz").status_code == 200


# --- 7. the offline verifier trusts only the keys it is given ------------------------------------------


def _forged_snapshot(client, token):
    """A snapshot re-made with new registry and log keys, a forged MK key and a forged active statement."""
    genuine = client.get("/api/v1/snapshot", headers={"Authorization": f"Bearer {token}"}).get_json()
    payload = jws.open_envelope(genuine["jws"], jws.TYP_SNAPSHOT).payload()
    answer_key, mk_key = keys.generate(), keys.generate()
    payload["registry"]["keys"] = [{**keys.public_jwk(answer_key), "aeo_use": "answers"}]
    forged = sign_licence(mk_key, licence_payload("MKAEOF999999", 1, serial=999))
    payload["licences"].append({"certificate": "MKAEOF999999", "party": "MK",
                                "versions": [{"log_index": 0, "statement": forged, "leaf": "{}"}]})
    return {"jws": jws.sign_bytes(canonical_json(payload), answer_key, jws.TYP_SNAPSHOT)}


def test_the_offline_verifier_refuses_to_answer_without_trusted_keys(region, client, tmp_path, runner):
    assert region.put("MKAEOF000001", licence_fields("MK", 1)).status_code == 201
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(_forged_snapshot(client, region.token("AL", "customs"))))
    run = subprocess.run([sys.executable, "-m", "registry.offline", "verify", str(path), operator_id("MK", 999),
                          "--as", "AL"], capture_output=True, text=True, check=False)
    assert run.returncode == 1
    assert "--jwks is required" in run.stderr
    assert run.stdout == ""
    jwks = tmp_path / "jwks.json"
    jwks.write_text(client.get("/.well-known/jwks.json").get_data(as_text=True))
    run = subprocess.run([sys.executable, "-m", "registry.offline", "verify", str(path), operator_id("MK", 999),
                          "--as", "AL", "--jwks", str(jwks)], capture_output=True, text=True, check=False)
    assert run.returncode == 1 and "not by a registry answer key" in run.stderr
    # The admin CLI needs no --jwks: it trusts the registry's own keys.
    result = runner.invoke(args=["registry", "verify-offline", str(path), operator_id("MK", 999), "--as", "AL"])
    assert result.exit_code == 1
    assert "not by a registry answer key" in result.stderr


# --- 8. evidence of any size ----------------------------------------------------------------------------


def test_a_jws_over_joserfcs_default_limit_verifies():
    key = keys.generate()
    payload = {"results": ["x" * 1000] * 500}  # half a megabyte
    assert jws.verify(jws.sign(payload, key, jws.TYP_VERIFICATION), keys.public_only(key),
                      jws.TYP_VERIFICATION) == payload


@pytest.mark.slow
def test_a_5000_id_batch_with_statements_and_proofs_checks(region, client, tmp_path):
    items = [{"certificate": f"MKAEOF{n:06d}", **licence_fields("MK", n)} for n in range(1, 5001)]
    assert region.batch(items).status_code == 200
    body = {"operator_ids": [operator_id("MK", n) for n in range(1, 5001)], "include_statements": True,
            "proofs": True}
    answer = client.post("/api/v1/verify:batch", json=body, headers=region.headers("AL", "customs"))
    assert answer.status_code == 200
    assert len(answer.data) > 4 * 1024 * 1024
    snapshot = client.get("/api/v1/snapshot", headers=region.headers("AL", "customs")).get_json()
    jwks = client.get("/.well-known/jwks.json").get_json()
    report = offline.check_answer(answer.get_json(), offline.open_snapshot(snapshot, jwks))
    assert report.proven == 5000 and all(r["recognised"] for r in report.results)
    (tmp_path / "answer.json").write_bytes(answer.data)
    (tmp_path / "snapshot.json").write_text(json.dumps(snapshot))
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    run = subprocess.run([sys.executable, "-m", "registry.offline", "check-answer", str(tmp_path / "answer.json"),
                          "--snapshot", str(tmp_path / "snapshot.json"), "--jwks", str(tmp_path / "jwks.json")],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    page = client.post("/evidence", data={"document": answer.get_data(as_text=True)})
    assert page.status_code == 200


@pytest.mark.slow
def test_a_snapshot_of_100000_licences_verifies(region, client):
    for start in range(1, 100_001, 10_000):
        items = [{"certificate": f"MKAEOS{n:06d}", **licence_fields("MK", n, type="AEOS", operator={
            "id": operator_id("MK", n), "name": f"Firm {n}", "aliases": [], "address": None})}
            for n in range(start, start + 10_000)]
        assert region.batch(items).status_code == 200
    response = client.get("/api/v1/snapshot", headers=region.headers("AL", "customs"))
    assert response.status_code == 200
    snap = offline.open_snapshot(response.get_json(), client.get("/.well-known/jwks.json").get_json())
    assert len(snap.licence_versions) == 100_000
    assert offline.answer(snap, operator_id("MK", 77_777), "AL", snap.generated_at).reason == "recognised"
