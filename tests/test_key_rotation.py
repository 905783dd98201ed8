"""A party rotates its own keys; the registry's operator cannot do it for them."""

from __future__ import annotations

import pytest

from registry.crypto import jws, keys
from registry.domain.timefmt import format_time

from .helpers import licence_payload, operator_id, sign_licence


@pytest.fixture
def mk(registry):
    registry.add_party("MK", hosted=False).add_party("RS", hosted=False).add_party("AL")
    registry.own_key("MK")
    return registry


def key_statement(signer, action, target, **extra):
    payload = {"party": "MK", "action": action, "jwk": keys.public_jwk(target),
               "valid_from": None, "revoked_at": None, **extra}
    return jws.sign(payload, signer, jws.TYP_PARTY_KEY)


def post(registry, statement, code="MK", token_party="MK", role="authority"):
    return registry.client.post(f"/api/v1/parties/{code}/keys", json={"statement": statement},
                                headers=registry.headers(token_party, role))


def publish(registry, key, certificate, version, **changes):
    return registry.put(certificate, {"statement": sign_licence(key, licence_payload(certificate, version,
                                                                                      **changes))})


def test_rotate_publish_and_retire(mk, client, runner):
    old = mk.own_keys["MK"]
    new = keys.generate()
    response = post(mk, key_statement(old, "add", new))
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["kid"] == new.kid
    assert publish(mk, new, "MKAEOF000001", 1).status_code == 201
    assert post(mk, key_statement(new, "retire", old)).status_code == 201
    keys_now = {k["kid"]: k for k in client.get("/api/v1/parties/MK").get_json()["keys"]}
    assert keys_now[old.kid]["status"] == "retired" and keys_now[old.kid]["retired_at"]
    assert keys_now[new.kid]["status"] == "active"
    refused = publish(mk, old, "MKAEOF000001", 2, status="suspended")
    assert refused.status_code == 400
    assert "retired" in refused.get_json()["errors"]["statement"][0]
    kids = [k["kid"] for k in client.get("/api/v1/parties/MK/jwks.json").get_json()["keys"]]
    assert old.kid in kids and new.kid in kids  # old keys stay published
    result = runner.invoke(args=["registry", "audit"])
    assert result.exit_code == 0, result.output


def test_key_change_is_logged_with_the_partys_own_kid(mk, client):
    old = mk.own_keys["MK"]
    size = mk.log_size()
    post(mk, key_statement(old, "add", keys.generate()))
    entry = client.get(f"/api/v1/log/entries?start={size}&limit=1").get_json()["items"][0]
    assert '"kind":"party_key"' in entry["leaf"] and f'"kid":"{old.kid}"' in entry["leaf"]


def test_key_statement_by_another_partys_key_is_refused(mk):
    rs_key = mk.own_key("RS")
    response = post(mk, key_statement(rs_key, "add", keys.generate()))
    assert response.status_code == 400
    assert "a key of RS" in response.get_json()["errors"]["statement"][0]


def test_key_statement_by_the_registrys_keys_is_refused(mk):
    for registry_key in (mk.keyring.answer_key, mk.keyring.log_key):
        response = post(mk, key_statement(registry_key, "add", keys.generate()))
        assert response.status_code == 400
        assert "not a key of any party" in response.get_json()["errors"]["statement"][0]


def test_another_partys_authority_cannot_change_keys(mk):
    response = post(mk, key_statement(mk.own_keys["MK"], "add", keys.generate()), token_party="RS")
    assert response.status_code == 403


def test_customs_cannot_change_keys(mk):
    response = post(mk, key_statement(mk.own_keys["MK"], "add", keys.generate()), role="customs")
    assert response.status_code == 403


@pytest.mark.parametrize(("changes", "field"), [
    ({"party": "RS"}, "statement.party"),
    ({"action": "replace"}, "statement.action"),
    ({"jwk": {"kty": "RSA", "n": "x", "e": "AQAB"}}, "statement.jwk"),
    ({"colour": "blue"}, "statement.colour"),
    ({"revoked_at": "2099-01-01T00:00:00Z"}, "statement.revoked_at"),
])
def test_malformed_key_statements(mk, changes, field):
    target = keys.generate()
    payload = {"party": "MK", "action": "add", "jwk": keys.public_jwk(target), "valid_from": None,
               "revoked_at": None, **changes}
    response = post(mk, jws.sign(payload, mk.own_keys["MK"], jws.TYP_PARTY_KEY))
    assert response.status_code == 400
    assert field in response.get_json()["errors"]


def test_wrong_typ_is_refused(mk):
    statement = jws.sign({"party": "MK", "action": "add", "jwk": keys.public_jwk(keys.generate())},
                         mk.own_keys["MK"], jws.TYP_LICENCE)
    assert post(mk, statement).status_code == 400


def test_a_back_dated_revocation_voids_what_the_key_signed_since_and_audit_lists_it(mk, client, runner, now):
    first = mk.own_keys["MK"]
    second = keys.generate()
    post(mk, key_statement(first, "add", second))
    now.advance(hours=1)
    assert publish(mk, second, "MKAEOF000001", 1).status_code == 201
    compromise = now()
    now.advance(hours=1)
    stolen = publish(mk, second, "MKAEOF000002", 1, serial=2)  # logged after the compromise
    assert stolen.status_code == 201
    now.advance(hours=1)
    response = post(mk, key_statement(first, "revoke", second, revoked_at=format_time(compromise)))
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["revoked_at"] == format_time(compromise)
    refused = publish(mk, second, "MKAEOF000003", 1, serial=3)
    assert refused.status_code == 400
    assert "revoked" in refused.get_json()["errors"]["statement"][0]
    # The void statement stays in the log: audit lists it, and counts no fault.
    result = runner.invoke(args=["registry", "audit"])
    assert result.exit_code == 0, result.output
    assert f"VOID entry {stolen.get_json()['log_index']} (licence MKAEOF000002)" in result.stdout
    assert "1 statements void" in result.stdout
    # Verification no longer counts the statement logged after the compromise...
    answer = client.get(f"/api/v1/verify/{operator_id('MK', 2)}", headers=mk.headers("MK", "customs")).get_json()
    assert answer["verification"]["results"][0]["reason"] == "unknown_operator"
    # ...but keeps the one logged before it.
    answer = client.get(f"/api/v1/verify/{operator_id('MK', 1)}", headers=mk.headers("MK", "customs")).get_json()
    assert answer["verification"]["results"][0]["recognised"] is True


def test_a_revoked_key_cannot_change_keys(mk, now):
    first = mk.own_keys["MK"]
    second = keys.generate()
    post(mk, key_statement(first, "add", second))
    now.advance(minutes=1)
    assert post(mk, key_statement(second, "revoke", first)).status_code == 201
    response = post(mk, key_statement(first, "add", keys.generate()))
    assert response.status_code == 400
    assert "revoked" in response.get_json()["errors"]["statement"][0]
    assert post(mk, key_statement(second, "revoke", first)).status_code == 409
