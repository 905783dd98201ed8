"""Verification answers, the trader's self-check and agreements, through the API."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json

import pytest
from joserfc import jws as joserfc_jws
from joserfc.jwk import KeySet

from registry.crypto import merkle, note
from registry.runtime import Runtime
from registry.services import agreements
from registry.store.reads import Reader

from .helpers import AL_OP, AP5, MK_ALIAS, MK_OP, licence_fields, operator_id


def verify(registry, operator, code="AL", role="customs", **query):
    return registry.client.get(f"/api/v1/verify/{operator}", query_string=query, headers=registry.headers(code, role))


def test_answer_jws_verifies_with_the_published_jwks(world, client):
    response = verify(world, MK_OP, nonce="n-1")
    assert response.status_code == 200
    body = response.get_json()
    jwks = KeySet.import_key_set(client.get("/.well-known/jwks.json").get_json())
    token = joserfc_jws.deserialize_compact(body["jws"], jwks, algorithms=["Ed25519"])
    assert token.headers()["typ"] == "aeo-verification+jws"
    assert token.headers()["kid"] == next(k["kid"] for k in jwks.as_dict()["keys"] if k.get("aeo_use") == "answers")
    assert json.loads(token.payload) == body["verification"]
    result = body["verification"]["results"][0]
    assert result["recognised"] is True
    assert result["recognition"] == {"basis": "agreement", "agreement": "CEFTA-AP5", "types": ["AEOS", "AEOF"],
                                     "benefits": ["priority"]}
    assert result["operator"] == {"id": MK_OP, "name": "Operator 1 of MK"}
    assert body["verification"]["verifier"] == "AL"
    assert body["verification"]["nonce"] == "n-1"
    assert body["verification"]["checkpoint"]["tree_size"] == world.log_size()


def test_licence_statement_in_the_answer_verifies_with_the_issuers_jwks(world, client):
    body = verify(world, MK_OP).get_json()
    licence = body["verification"]["results"][0]["licences"][0]
    jwks = KeySet.import_key_set(client.get("/api/v1/parties/MK/jwks.json").get_json())
    payload = json.loads(joserfc_jws.deserialize_compact(licence["statement"], jwks, algorithms=["Ed25519"]).payload)
    assert (payload["certificate"], payload["version"], payload["status"]) == ("MKAEOF000001", 1, "active")


def test_national_basis_for_own_operator(world):
    result = verify(world, MK_OP, code="MK").get_json()["verification"]["results"][0]
    assert result["recognition"]["basis"] == "national"
    assert result["recognition"]["agreement"] is None


def test_alias_and_normalised_spelling_find_the_operator(world):
    result = verify(world, MK_ALIAS.lower()[:5] + "-" + MK_ALIAS[5:]).get_json()["verification"]["results"][0]
    assert result["operator_id"] == MK_ALIAS
    assert result["operator"]["id"] == MK_OP


def test_reasons_through_the_api(world):
    assert verify(world, AL_OP, code="MK").get_json()["verification"]["results"][0]["reason"] == "type_not_covered"
    assert verify(world, operator_id("MK", 999)).get_json()["verification"]["results"][0]["reason"] == \
        "unknown_operator"
    assert verify(world, MK_OP, code="BA").get_json()["verification"]["results"][0]["reason"] == "no_agreement"


def test_past_at_gives_the_status_of_that_time(world):
    world.now.advance(days=10)
    world.put("MKAEOF000001", licence_fields("MK", 1, status="suspended", reason="audit",
                                             effective_at="2026-12-01T00:00:00Z",
                                             operator={**licence_fields()["operator"], "aliases": [MK_ALIAS]}))
    during = verify(world, MK_OP, at="2026-12-02").get_json()["verification"]
    assert during["at"] == "2026-12-02T00:00:00Z"
    assert during["results"][0]["reason"] == "suspended"
    before = verify(world, MK_OP, at="2026-11-30T23:59:59Z").get_json()["verification"]["results"][0]
    assert before["reason"] == "recognised"
    assert before["licences"][0]["version"] == 1
    assert verify(world, MK_OP, at="2020-01-01").get_json()["verification"]["results"][0]["reason"] == \
        "not_yet_valid"


def test_no_partner_consent_discloses_nothing(world):
    fields = licence_fields("MK", 5, consent={"partners": False, "public": False})
    world.put("MKAEOF000005", fields)
    result = verify(world, operator_id("MK", 5)).get_json()["verification"]["results"][0]
    assert result == {"operator_id": operator_id("MK", 5), "recognised": False, "reason": "no_consent",
                      "operator": None, "recognition": None, "licences": []}
    national = verify(world, operator_id("MK", 5), code="MK").get_json()["verification"]["results"][0]
    assert national["recognised"] is True and national["operator"]["name"] == "Operator 5 of MK"


def test_the_verifier_is_always_the_tokens_party(world):
    assert verify(world, MK_OP, code="RS").get_json()["verification"]["verifier"] == "RS"
    response = verify(world, MK_OP, code="RS", verifier="AL")
    assert response.status_code == 400
    assert "verifier" in response.get_json()["errors"]
    batch = world.client.post("/api/v1/verify:batch", json={"operator_ids": [MK_OP], "verifier": "AL"},
                              headers=world.headers("RS", "customs"))
    assert batch.status_code == 400 and "verifier" in batch.get_json()["errors"]


def test_authority_may_verify_too(world):
    assert verify(world, MK_OP, role="authority").status_code == 200


def test_unauthenticated_verification_is_refused(world, client):
    assert client.get(f"/api/v1/verify/{MK_OP}").status_code == 401


def test_a_malformed_id_without_a_valid_token_is_401_not_400(world, client):
    # The token is checked first, whether or not the id can be looked up with it.
    assert client.get("/api/v1/verify/MK4030000375890").status_code == 401
    bad = {"Authorization": "Bearer aeo_" + "x" * 43}
    assert client.get("/api/v1/verify/MK4030000375890", headers=bad).status_code == 401
    assert client.get(f"/api/v1/verify/{MK_OP}", headers=bad).status_code == 401


def test_malformed_single_id_is_400(world):
    response = verify(world, "MK4030000375890")
    assert response.status_code == 400
    assert "operator_id" in response.get_json()["errors"]


@pytest.mark.parametrize(("query", "field"), [
    ({"nonce": "x" * 129}, "nonce"),
    ({"nonce": "tab\there"}, "nonce"),
    ({"at": "yesterday"}, "at"),
    ({"at": "2026-11-27T10:00:00"}, "at"),
    ({"proofs": "maybe"}, "proofs"),
])
def test_bad_query_is_400(world, query, field):
    response = verify(world, MK_OP, **query)
    assert response.status_code == 400
    assert field in response.get_json()["errors"]


def test_batch_of_5000_in_order_with_malformed_ids_reported(world):
    kinds = []
    ids = []
    for n in range(5000):
        kind = ("known", "alias", "unknown", "malformed", "not-a-string")[n % 5]
        kinds.append(kind)
        ids.append({"known": MK_OP, "alias": MK_ALIAS, "unknown": operator_id("RS", 1000 + n),
                    "malformed": f"MK{n}-!", "not-a-string": n}[kind])
    response = world.client.post("/api/v1/verify:batch", json={"operator_ids": ids, "nonce": "batch-1"},
                                 headers=world.headers("AL", "customs"))
    assert response.status_code == 200
    results = response.get_json()["verification"]["results"]
    assert len(results) == 5000
    for n, (kind, result) in enumerate(zip(kinds, results, strict=True)):
        if kind in ("known", "alias"):
            assert result["recognised"] is True
            assert "statement" not in result["licences"][0]  # left out of batches unless asked
        elif kind == "unknown":
            assert result["reason"] == "unknown_operator" and "error" not in result
            assert result["operator_id"] == ids[n]
        else:
            assert result["reason"] == "unknown_operator"
            assert result["error"].startswith(f"operator_ids.{n}: ")


def test_batch_reports_an_invalid_tax_number_only_for_ids_it_does_not_hold(world):
    # The national check runs after the lookup in a batch; its answer must not change.
    ids = ["MK4030000375890", MK_OP, "mk-4030000375890", MK_ALIAS]  # bad check digit, twice
    response = world.client.post("/api/v1/verify:batch", json={"operator_ids": ids},
                                 headers=world.headers("AL", "customs"))
    assert response.status_code == 200
    bad, known, bad_again, alias = response.get_json()["verification"]["results"]
    for position, result in ((0, bad), (2, bad_again)):
        assert result["reason"] == "unknown_operator" and result["licences"] == []
        assert result["error"] == f"operator_ids.{position}: 4030000375890 is not a valid MK EDB: " \
            "The number's checksum or check digit is invalid."
        assert result["operator_id"] == ids[position]
    assert known["recognised"] and alias["recognised"] and "error" not in known


def test_batch_limit_and_statements_on_request(world):
    response = world.client.post("/api/v1/verify:batch", json={"operator_ids": [MK_OP] * 5001},
                                 headers=world.headers("AL", "customs"))
    assert response.status_code == 400 and "operator_ids" in response.get_json()["errors"]
    response = world.client.post("/api/v1/verify:batch", json={"operator_ids": [MK_OP], "include_statements": True},
                                 headers=world.headers("AL", "customs"))
    assert response.get_json()["verification"]["results"][0]["licences"][0]["statement"].count(".") == 2
    response = world.client.post("/api/v1/verify:batch", json={"operator_ids": []},
                                 headers=world.headers("AL", "customs"))
    assert response.status_code == 400


def test_proofs_make_the_answer_evidence_on_its_own(world, client):
    body = verify(world, MK_OP, proofs="true").get_json()["verification"]
    log_info = client.get("/api/v1/log").get_json()
    checkpoint = note.open_checkpoint(body["checkpoint"]["note"], note.Verifier.from_vkey(log_info["verifier_key"]))
    assert checkpoint.tree_size == body["checkpoint"]["tree_size"]
    assert base64.b64encode(checkpoint.root_hash).decode() == body["checkpoint"]["root_hash"]
    licence = body["results"][0]["licences"][0]
    proof = licence["inclusion_proof"]
    leaf = json.loads(proof["leaf"])
    assert leaf["statement_sha256"] == hashlib.sha256(licence["statement"].encode()).hexdigest()
    merkle.verify_inclusion(licence["log_index"], checkpoint.tree_size, merkle.leaf_hash(proof["leaf"].encode()),
                            [base64.b64decode(h) for h in proof["hashes"]], checkpoint.root_hash)


def test_answer_is_a_function_of_the_log_below_its_checkpoint(world):
    from registry.services import log, verification

    with world.session() as session:
        before = verification.current(session)
    world.now.advance(minutes=1)
    world.put("MKAEOF000001", licence_fields("MK", 1, status="revoked", reason="fraud",
                                             operator={**licence_fields()["operator"], "aliases": [MK_ALIAS]}))
    query = verification.Query("AL", [MK_OP], None, None)
    with world.session() as session:
        lookups = verification.Lookups(Reader.of(session))
        old = verification.results_for(lookups, before, query, world.now())
        new = verification.results_for(lookups, verification.current(session), query, world.now())
        assert log.tree_size(lookups.reader) > before.size
    assert old[0].reason == "recognised"
    assert new[0].reason == "revoked"


def test_answer_ttl_is_configurable(world, app):
    app.config["REGISTRY"] = dataclasses.replace(app.config["REGISTRY"], answer_ttl_seconds=60)
    body = verify(world, MK_OP).get_json()["verification"]
    assert body["produced_at"] == "2026-11-27T10:00:00Z"
    assert body["next_update"] == "2026-11-27T10:01:00Z"


# --- the trader's self-check -------------------------------------------------------------


def check(client, operator, certificate):
    return client.get("/api/v1/public/check", query_string={"operator_id": operator, "certificate": certificate})


def test_public_check_answers_with_recognition(world, client):
    response = check(client, MK_OP, "MKAEOF000001")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["party"], body["type"], body["status"], body["reason"]) == ("MK", "AEOF", "active", "recognised")
    assert body["recognised_by"] == [
        {"party": "AL", "agreement": "CEFTA-AP5", "types": ["AEOS", "AEOF"]},
        {"party": "MK", "agreement": None, "types": ["AEOF"]},
        {"party": "RS", "agreement": "RS-MK", "types": ["AEOC", "AEOS", "AEOF"]},
    ]
    assert check(client, MK_ALIAS, "mkaeof000001").status_code == 200


def test_public_check_gives_the_same_404_for_either_mismatch(world, client):
    wrong_certificate = check(client, MK_OP, "MKAEOF000002")
    wrong_operator = check(client, operator_id("MK", 2), "MKAEOF000001")
    other_licence = check(client, AL_OP, "MKAEOF000001")
    assert wrong_certificate.status_code == wrong_operator.status_code == other_licence.status_code == 404
    assert wrong_certificate.get_data() == wrong_operator.get_data() == other_licence.get_data()


def test_public_check_malformed_input_is_400(world, client):
    response = check(client, "MK-!", "MKAEOF000001")
    assert response.status_code == 400 and "operator_id" in response.get_json()["errors"]
    assert client.get("/api/v1/public/check?operator_id=MK1").status_code == 400


def test_public_check_is_rate_limited(world, client, app):
    limiter = Runtime.of(app).public_checks
    for _ in range(limiter.limit):
        assert check(client, MK_OP, "MKAEOF000001").status_code == 200
    response = check(client, MK_OP, "MKAEOF000001")
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["Content-Type"] == "application/problem+json"


# --- agreements ------------------------------------------------------------------------------


def test_agreements_are_signed_logged_and_versioned(world, client):
    listing = client.get("/api/v1/agreements").get_json()["items"]
    assert [a["agreement"]["id"] for a in listing] == ["CEFTA-AP5", "RS-MK"]
    ap5 = client.get("/api/v1/agreements/CEFTA-AP5").get_json()
    assert len(ap5["agreement"]["recognition"]) == 6  # mutual among three, spelt out
    assert "mutual" not in ap5["agreement"]
    jwks = KeySet.import_key_set(client.get("/.well-known/jwks.json").get_json())
    token = joserfc_jws.deserialize_compact(ap5["statement"], jwks, algorithms=["Ed25519"])
    assert token.headers()["typ"] == "aeo-agreement+jws"
    assert json.loads(token.payload) == ap5["agreement"]
    with world.session() as session:
        _, added = agreements.put(session, world.keyring, AP5, world.now())
        assert not added
        _, added = agreements.put(session, world.keyring, {**AP5, "status": "suspended"}, world.now())
        assert added
    ap5 = client.get("/api/v1/agreements/CEFTA-AP5").get_json()
    assert [v["agreement"]["version"] for v in ap5["history"]] == [1, 2]
    assert verify(world, MK_OP).get_json()["verification"]["results"][0]["reason"] == "no_agreement"
    assert client.get("/api/v1/agreements/NOPE").status_code == 404


def test_agreement_put_from_the_cli(world, runner, tmp_path):
    path = tmp_path / "al-ba.json"
    path.write_text(json.dumps({"id": "AL-BA", "title": "AL-BA", "status": "in_force",
                                "in_force_from": "2026-01-01", "mutual": {"parties": ["AL", "BA"],
                                                                          "types": ["AEOF"]}}))
    result = runner.invoke(args=["registry", "agreement", "put", str(path)])
    assert result.exit_code == 0, result.output
    assert "version 1" in result.stdout
    assert verify(world, MK_OP, code="BA").get_json()["verification"]["results"][0]["reason"] == "no_agreement"
    path.write_text(json.dumps({"id": "AL-ZZ", "title": "x", "status": "in_force", "in_force_from": "2026-01-01",
                                "mutual": {"parties": ["AL", "ZZ"], "types": ["AEOF"]}}))
    result = runner.invoke(args=["registry", "agreement", "put", str(path)])
    assert result.exit_code == 1 and "unknown parties: ZZ" in result.stderr
    path.write_text(json.dumps({"id": "AL-BA", "title": "x", "status": "ended", "in_force_from": "2026-01-01"}))
    result = runner.invoke(args=["registry", "agreement", "put", str(path)])
    assert result.exit_code == 1 and "status" in result.stderr


def test_answers_at_different_moments_of_one_log_size_each_see_their_own_agreements(world):
    later = {"id": "BA-MK", "title": "BA-MK protocol", "status": "in_force", "in_force_from": "2027-01-01",
             "mutual": {"parties": ["BA", "MK"], "types": ["AEOF"]}, "benefits": ["priority"]}
    with world.session() as session:
        agreements.put(session, world.keyring, later, world.now())
    # Alternating moments at one checkpoint: what one moment worked out is not another's.
    for at, reason in [("2027-01-02", "recognised"), ("2026-12-31", "no_agreement"),
                       ("2027-01-02", "recognised"), ("2026-12-31T23:59:59Z", "no_agreement"),
                       ("2027-01-01T00:30:00+01:00", "no_agreement"), ("2027-01-01T00:00:00Z", "recognised")]:
        result = verify(world, MK_OP, code="BA", at=at).get_json()["verification"]["results"][0]
        assert result["reason"] == reason, at
