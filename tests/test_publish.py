"""Publishing licences: both forms, versions, lifecycle, signatures, batches."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest
from joserfc import jws as joserfc_jws
from joserfc.jwk import OctKey

from registry.crypto import jws, keys
from registry.domain.licence import ALLOWED_TRANSITIONS, STATUSES

from .helpers import licence_fields, licence_payload, operator_id, sign_licence

CERT = "MKAEOF000123"


@pytest.fixture
def mk(registry):
    registry.add_party("MK").add_party("RS")
    return registry


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_new_licence_with_hosted_key(mk, client):
    response = mk.put(CERT, licence_fields())
    assert response.status_code == 201
    body = response.get_json()
    assert body["licence"]["version"] == 1
    assert body["licence"]["party"] == "MK"
    assert body["licence"]["certificate"] == CERT
    assert body["licence"]["effective_at"] == "2026-11-27T10:00:00Z"
    assert body["log_index"] == mk.log_size() - 1
    header = json.loads(base64.urlsafe_b64decode(body["statement"].split(".")[0] + "=="))
    assert header["alg"] == "Ed25519" and header["typ"] == "aeo-licence+jws"
    jwks = client.get("/api/v1/parties/MK/jwks.json").get_json()
    key = keys.public_from_jwk(next(k for k in jwks["keys"] if k["kid"] == header["kid"]))
    assert jws.verify(body["statement"], key, jws.TYP_LICENCE) == body["licence"]


def test_new_version_and_read_back_with_history(mk, client):
    mk.put(CERT, licence_fields())
    mk.now.advance(hours=1)
    second = mk.put(CERT, licence_fields(status="suspended", reason="audit findings"))
    assert second.status_code == 200
    assert second.get_json()["licence"]["version"] == 2
    got = client.get(f"/api/v1/licences/{CERT}", headers=mk.headers("MK")).get_json()
    assert got["licence"]["status"] == "suspended"
    assert [v["licence"]["version"] for v in got["history"]] == [1, 2]
    assert got["history"][-1]["statement"] == second.get_json()["statement"]


def test_statement_signed_by_own_key(mk):
    key = mk.own_key("MK")
    statement = sign_licence(key, licence_payload(CERT, 1))
    response = mk.put(CERT, {"statement": statement})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["statement"] == statement  # stored and returned exactly as received


def test_deprecated_eddsa_alg_is_accepted(mk):
    key = mk.own_key("MK")
    # Built by hand, as an older library would, with a non-canonical payload: kept exactly as sent.
    header = _b64(json.dumps({"alg": "EdDSA", "kid": key.kid, "typ": "aeo-licence+jws"}).encode())
    payload = _b64(json.dumps(licence_payload(CERT, 1), indent=1).encode())
    signature = _b64(key.private_key.sign(f"{header}.{payload}".encode()))
    statement = f"{header}.{payload}.{signature}"
    response = mk.put(CERT, {"statement": statement})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["statement"] == statement


def test_resent_statement_returns_same_index_and_adds_nothing(mk):
    key = mk.own_key("MK")
    statement = sign_licence(key, licence_payload(CERT, 1))
    first = mk.put(CERT, {"statement": statement})
    size = mk.log_size()
    mk.now.advance(minutes=5)
    again = mk.put(CERT, {"statement": statement})
    assert again.status_code == 200
    assert again.get_json()["log_index"] == first.get_json()["log_index"]
    assert mk.log_size() == size


def test_same_plain_fields_again_add_nothing(mk):
    first = mk.put(CERT, licence_fields())
    size = mk.log_size()
    mk.now.advance(minutes=5)
    again = mk.put(CERT, licence_fields())
    assert again.status_code == 200
    assert again.get_json()["log_index"] == first.get_json()["log_index"]
    assert mk.log_size() == size


@pytest.mark.parametrize("version", [1, 3, 7])
def test_version_must_be_current_plus_one(mk, version):
    key = mk.own_key("MK")
    mk.put(CERT, {"statement": sign_licence(key, licence_payload(CERT, 1))})
    size = mk.log_size()
    response = mk.put(CERT, {"statement": sign_licence(key, licence_payload(CERT, version, reason="x"))})
    assert response.status_code == 409
    assert response.get_json()["errors"] == {"statement.version": ["must be 2"]}
    assert mk.log_size() == size


def test_first_version_must_be_one(mk):
    key = mk.own_key("MK")
    response = mk.put(CERT, {"statement": sign_licence(key, licence_payload(CERT, 2))})
    assert response.status_code == 409
    assert response.get_json()["errors"] == {"statement.version": ["must be 1"]}


def _reach(mk, status: str) -> None:
    """Publish version 1 active, then move to ``status`` if it is not active."""
    mk.put(CERT, licence_fields())
    if status != "active":
        mk.now.advance(minutes=1)
        assert mk.put(CERT, licence_fields(status=status, reason="step")).status_code == 200


@pytest.mark.parametrize("before", STATUSES)
@pytest.mark.parametrize("after", STATUSES)
def test_status_changes(mk, before, after):
    _reach(mk, before)
    size = mk.log_size()
    mk.now.advance(minutes=1)
    response = mk.put(CERT, licence_fields(status=after, reason="next step"))
    if (before, after) in ALLOWED_TRANSITIONS:
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["licence"]["status"] == after
        assert mk.log_size() == size + 1
    else:
        assert response.status_code == 409, response.get_json()
        assert "status" in response.get_json()["errors"]
        assert mk.log_size() == size


def test_every_final_status_is_final():
    for final in ("revoked", "annulled"):
        assert not [(a, b) for a, b in ALLOWED_TRANSITIONS if a == final and b not in ("annulled",)]
    assert ("annulled", "annulled") not in ALLOWED_TRANSITIONS


def test_partial_suspension_rules(mk):
    ok = mk.put(CERT, licence_fields(status="suspended", suspended_scope="AEOC"))
    assert ok.status_code == 201
    bad = mk.put("MKAEOS000001", licence_fields(type="AEOS", status="suspended", suspended_scope="AEOC"))
    assert bad.status_code == 400
    assert "suspended_scope" in bad.get_json()["errors"]
    bad = mk.put("MKAEOF000002", licence_fields(status="active", suspended_scope="AEOS"))
    assert bad.status_code == 400


def test_effective_at_cannot_go_back_before_previous_version(mk):
    mk.put(CERT, licence_fields(effective_at="2026-11-01T00:00:00Z"))
    response = mk.put(CERT, licence_fields(status="suspended", effective_at="2026-10-01T00:00:00Z"))
    assert response.status_code == 409
    assert "effective_at" in response.get_json()["errors"]


def test_statement_signed_by_another_partys_key_is_refused(mk):
    rs_key = mk.own_key("RS")
    response = mk.put(CERT, {"statement": sign_licence(rs_key, licence_payload(CERT, 1))})
    assert response.status_code == 400
    assert "a key of RS" in response.get_json()["errors"]["statement"][0]


def test_statement_signed_by_unknown_key_is_refused(mk):
    response = mk.put(CERT, {"statement": sign_licence(keys.generate(), licence_payload(CERT, 1))})
    assert response.status_code == 400
    assert "not a key the registry knows" in response.get_json()["errors"]["statement"][0]


def test_statement_signed_by_the_registrys_own_key_is_refused(mk):
    response = mk.put(CERT, {"statement": sign_licence(mk.keyring.answer_key, licence_payload(CERT, 1))})
    assert response.status_code == 400


def test_alg_none_is_refused(mk):
    key = mk.own_key("MK")
    header = _b64(json.dumps({"alg": "none", "kid": key.kid, "typ": "aeo-licence+jws"}).encode())
    payload = _b64(json.dumps(licence_payload(CERT, 1)).encode())
    response = mk.put(CERT, {"statement": f"{header}.{payload}."})
    assert response.status_code == 400
    response = mk.put(CERT, {"statement": f"{header}.{payload}.c2ln"})
    assert response.status_code == 400
    assert "alg 'none' is not accepted" in response.get_json()["errors"]["statement"][0]


def test_hs256_is_refused_even_with_the_public_key_as_secret(mk):
    key = mk.own_key("MK")
    secret = OctKey.import_key(json.dumps(keys.public_jwk(key)).encode())
    header = {"alg": "HS256", "kid": key.kid, "typ": "aeo-licence+jws"}
    statement = joserfc_jws.serialize_compact(header, json.dumps(licence_payload(CERT, 1)), secret,
                                              algorithms=["HS256"])
    response = mk.put(CERT, {"statement": statement})
    assert response.status_code == 400
    assert "HS256" in response.get_json()["errors"]["statement"][0]


def test_tampered_payload_is_refused(mk):
    key = mk.own_key("MK")
    header, _, signature = sign_licence(key, licence_payload(CERT, 1)).split(".")
    forged = _b64(json.dumps(licence_payload(CERT, 1, status="active", type="AEOS")).encode())
    response = mk.put(CERT, {"statement": f"{header}.{forged}.{signature}"})
    assert response.status_code == 400
    assert response.get_json()["errors"]["statement"] == ["signature does not verify"]


def test_tampered_header_is_refused(mk):
    key = mk.own_key("MK")
    _, payload, signature = sign_licence(key, licence_payload(CERT, 1)).split(".")
    header = _b64(json.dumps({"alg": "Ed25519", "kid": key.kid, "typ": "aeo-licence+jws", "x": 1}).encode())
    response = mk.put(CERT, {"statement": f"{header}.{payload}.{signature}"})
    assert response.status_code == 400
    assert response.get_json()["errors"]["statement"] == ["signature does not verify"]


def test_wrong_typ_is_refused(mk):
    key = mk.own_key("MK")
    statement = jws.sign(licence_payload(CERT, 1), key, jws.TYP_AGREEMENT)
    response = mk.put(CERT, {"statement": statement})
    assert response.status_code == 400
    assert "typ must be" in response.get_json()["errors"]["statement"][0]


def test_statement_for_another_certificate_is_refused(mk):
    key = mk.own_key("MK")
    response = mk.put(CERT, {"statement": sign_licence(key, licence_payload("MKAEOF999", 1))})
    assert response.status_code == 400
    assert "statement.certificate" in response.get_json()["errors"]


def test_certificate_of_another_party_is_forbidden(mk):
    response = mk.put("RSAEOF000001", licence_fields("RS"))
    assert response.status_code == 403
    assert response.get_json()["errors"]["certificate"]


def test_statement_for_another_party_is_forbidden(mk):
    mk_key = mk.own_key("MK")
    size = mk.log_size()
    payload = licence_payload("MKAEOF000001", 1, party="RS")
    response = mk.put("MKAEOF000001", {"statement": sign_licence(mk_key, payload)})
    assert response.status_code == 403
    assert "statement.party" in response.get_json()["errors"]
    assert mk.log_size() == size


def test_customs_token_cannot_publish(mk):
    response = mk.put(CERT, licence_fields(), role="customs")
    assert response.status_code == 403
    assert response.headers["Content-Type"] == "application/problem+json"
    assert mk.batch([{"certificate": CERT, **licence_fields()}], role="customs").status_code == 403


def test_no_or_bad_token_is_401(mk, client):
    assert client.put(f"/api/v1/licences/{CERT}", json=licence_fields()).status_code == 401
    response = client.put(f"/api/v1/licences/{CERT}", json=licence_fields(),
                          headers={"Authorization": "Bearer aeo_nope"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_party_without_hosted_key_must_send_statements(registry):
    registry.add_party("AL", hosted=False)
    response = registry.put("ALAEOF000001", licence_fields("AL"), code="AL")
    assert response.status_code == 409
    assert "hosted key" in response.get_json()["detail"]


@pytest.mark.parametrize(("raw", "stored"), [
    ("mk-4030000375897", "MK4030000375897"),
    ("  MK 4030000375897 ", "MK4030000375897"),
])
def test_operator_ids_are_normalised(mk, raw, stored):
    body = licence_fields()
    body["operator"]["id"] = raw
    response = mk.put(CERT, body)
    assert response.status_code == 201
    assert response.get_json()["licence"]["operator"]["id"] == stored


@pytest.mark.parametrize(("field", "value", "message"), [
    ("id", "M", "must be two letters"),
    ("id", "MK12345678901234567", "must be two letters"),
    ("id", "MK4030000375890", "not a valid MK EDB"),  # bad check digit
    ("id", "RS101134703", "not a valid RS PIB"),
    ("id", "ALZ91402501L", "not a valid AL NIPT"),
    ("id", "ME02655283", "not a valid ME PIB"),
    ("id", "MD1008600038412", "not a valid MD IDNO"),
    ("id", "MK/4030000375897", "must be two letters"),
    ("aliases", ["RS101134703"], "not a valid RS PIB"),
])
def test_malformed_operator_ids_and_tax_numbers(mk, field, value, message):
    body = licence_fields()
    body["operator"][field] = value
    response = mk.put(CERT, body)
    assert response.status_code == 400
    errors = response.get_json()["errors"]
    path = "operator.id" if field == "id" else "operator.aliases.0"
    assert message in errors[path][0], errors
    assert mk.log_size() == 2


def test_ids_of_parties_without_a_validator_only_follow_the_pattern(mk):
    body = licence_fields()
    body["operator"]["aliases"] = ["DE123456789012345"[:17], "XK810000000", "BA4200000000001"]
    assert mk.put(CERT, body).status_code == 201


@pytest.mark.parametrize(("body", "path"), [
    ({**licence_fields(), "colour": "blue"}, "colour"),
    ({**licence_fields(), "type": "AEOX"}, "type"),
    ({**licence_fields(), "valid_from": "01.03.2024"}, "valid_from"),
    ({**licence_fields(), "valid_until": "2020-01-01"}, "valid_until"),
    ({**licence_fields(), "consent": {"partners": "yes", "public": True}}, "consent.partners"),
    ({**licence_fields(), "effective_at": "2026-11-27 10:00"}, "effective_at"),
    ({k: v for k, v in licence_fields().items() if k != "consent"}, "consent"),
])
def test_invalid_fields_are_named(mk, body, path):
    response = mk.put(CERT, body)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"
    assert path in response.get_json()["errors"], response.get_json()


def test_body_that_is_not_json(mk, client):
    response = client.put(f"/api/v1/licences/{CERT}", data="{nope", headers={
        **mk.headers("MK"), "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.get_json()["errors"] == {
        "body": ["not JSON: Expecting property name enclosed in double quotes at line 1 column 2"]}


def test_oversize_body_is_413(mk, client, app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    response = client.put(f"/api/v1/licences/{CERT}", data=b"{" + b" " * limit + b"}",
                          headers={**mk.headers("MK"), "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/problem+json"
    assert mk.log_size() == 2


def test_batch_publishes_all(mk):
    items = [{"certificate": f"MKAEOF{n:06d}", **licence_fields(serial=n)} for n in range(1, 31)]
    response = mk.batch(items)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert len(body["licences"]) == 30
    assert body["tree_size"] == mk.log_size() == 32


def test_batch_with_one_bad_item_writes_nothing(mk):
    items = [{"certificate": f"MKAEOF{n:06d}", **licence_fields(serial=n)} for n in range(1, 11)]
    items[6]["operator"]["id"] = "MK4030000375890"
    items[8]["status"] = "retired"
    response = mk.batch(items)
    assert response.status_code == 400
    errors = response.get_json()["errors"]
    assert set(errors) == {"licences.6.operator.id", "licences.8.status"}
    assert mk.log_size() == 2
    with mk.session() as session:
        from registry.store.models import Licence

        assert session.query(Licence).count() == 0


def test_batch_mixes_forms_and_versions_of_one_licence(mk):
    key = mk.own_key("MK")
    items = [
        {"certificate": CERT, **licence_fields()},
        {"certificate": CERT, "statement": sign_licence(key, licence_payload(CERT, 2, status="suspended",
                                                                            effective_at="2026-11-27T10:00:00Z"))},
        {"certificate": CERT, **licence_fields(status="active", reason="reinstated")},
    ]
    response = mk.batch(items)
    assert response.status_code == 200, response.get_json()
    assert [r["licence"]["version"] for r in response.get_json()["licences"]] == [1, 2, 3]


def test_batch_of_another_partys_certificate_is_forbidden(mk):
    response = mk.batch([{"certificate": "RSAEOF000001", **licence_fields("RS")}])
    assert response.status_code == 403
    assert "licences.0.certificate" in response.get_json()["errors"]


def test_batch_item_without_certificate(mk):
    response = mk.batch([licence_fields()])
    assert response.status_code == 400
    assert "licences.0.certificate" in response.get_json()["errors"]


def test_batch_over_the_limit_is_refused(mk, app):
    app.config["REGISTRY"] = dataclasses.replace(app.config["REGISTRY"], publish_batch_max=3)
    items = [{"certificate": f"MKAEOF{n:06d}", **licence_fields(serial=n)} for n in range(1, 5)]
    response = mk.batch(items)
    assert response.status_code == 400
    assert "licences" in response.get_json()["errors"]


def test_listing_is_paged_and_filtered(mk, client):
    for n in range(1, 8):
        mk.put(f"MKAEOF{n:06d}", licence_fields(serial=n))
    mk.put("MKAEOF000003", licence_fields(serial=3, status="suspended"))
    headers = mk.headers("MK")
    page = client.get("/api/v1/licences?limit=3", headers=headers).get_json()
    seen = [i["licence"]["certificate"] for i in page["items"]]
    while page["next_cursor"]:
        page = client.get(f"/api/v1/licences?limit=3&cursor={page['next_cursor']}", headers=headers).get_json()
        seen += [i["licence"]["certificate"] for i in page["items"]]
    assert sorted(seen) == [f"MKAEOF{n:06d}" for n in range(1, 8)]
    assert seen[-1] == "MKAEOF000003"  # log order: the latest change comes last
    suspended = client.get("/api/v1/licences?status=suspended", headers=headers).get_json()
    assert [i["licence"]["certificate"] for i in suspended["items"]] == ["MKAEOF000003"]
    bad = client.get("/api/v1/licences?limit=5000", headers=headers)
    assert bad.status_code == 400 and "limit" in bad.get_json()["errors"]
    assert client.get("/api/v1/licences?cursor=garbage", headers=headers).status_code == 400


def test_reading_another_partys_licence_is_forbidden(mk, client):
    mk.put(CERT, licence_fields())
    assert client.get(f"/api/v1/licences/{CERT}", headers=mk.headers("RS")).status_code == 403
    assert client.get("/api/v1/licences/RSAEOF1", headers=mk.headers("RS")).status_code == 404
    assert client.get("/api/v1/licences/MKAEOF999", headers=mk.headers("MK")).status_code == 404


def test_operator_id_helper_makes_valid_ids():
    from registry.domain import identifiers

    for party in ("AL", "BA", "MD", "ME", "MK", "RS", "XK"):
        assert identifiers.operator_id(operator_id(party, 42)) == operator_id(party, 42)
