"""What the registry signs, checked by panva/jose (npm), which shares no code with it.

`make test` installs jose with `npm ci`; without it this test fails rather
than skips, because interoperability is a promise to partners.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from registry.services import agreements

from .helpers import licence_fields, licence_payload, operator_id, sign_licence

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "interop" / "jose-verify.mjs"


def jose(jwks: dict, items: list[dict]) -> dict:
    node = shutil.which("node")
    assert node, "node is needed for the interoperability test (make test installs it)"
    assert (ROOT / "node_modules" / "jose").is_dir(), "run `npm ci` (make test does)"
    completed = subprocess.run([node, str(SCRIPT)], input=json.dumps({"jwks": jwks, "items": items}),
                               capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


@pytest.fixture
def signed(registry):
    for code in ("AL", "MK"):
        registry.add_party(code)
    key = registry.own_key("MK")
    with registry.session() as session:
        agreements.put(session, registry.keyring, {
            "id": "CEFTA-AP5", "title": "AP5", "status": "in_force", "in_force_from": "2021-01-01",
            "mutual": {"parties": ["AL", "MK"], "types": ["AEOS", "AEOF"]}}, registry.now())
    hosted = registry.put("MKAEOF000001", licence_fields()).get_json()["statement"]
    own = sign_licence(key, licence_payload("MKAEOF000002", 1, serial=2))
    assert registry.put("MKAEOF000002", {"statement": own}).status_code == 201
    return registry, hosted, own


def test_jose_verifies_answers_agreements_and_statements(signed, client):
    registry, hosted, own = signed
    answer = client.get(f"/api/v1/verify/{operator_id('MK', 1)}?nonce=jose",
                        headers=registry.headers("AL", "customs")).get_json()
    agreement = client.get("/api/v1/agreements/CEFTA-AP5").get_json()
    registry_jwks = client.get("/.well-known/jwks.json").get_json()
    out = jose(registry_jwks, [{"jws": answer["jws"], "typ": "aeo-verification+jws"},
                               {"jws": agreement["statement"], "typ": "aeo-agreement+jws"}])
    assert all(r["ok"] for r in out["results"]), out
    assert out["results"][0]["payload"] == answer["verification"]
    assert out["results"][0]["header"]["alg"] == "Ed25519"
    assert out["results"][1]["payload"] == agreement["agreement"]
    assert out["thumbprints"] == {k["kid"]: k["kid"] for k in registry_jwks["keys"]}

    party_jwks = client.get("/api/v1/parties/MK/jwks.json").get_json()
    out = jose(party_jwks, [{"jws": hosted, "typ": "aeo-licence+jws"}, {"jws": own, "typ": "aeo-licence+jws"}])
    assert all(r["ok"] for r in out["results"]), out
    assert [r["payload"]["certificate"] for r in out["results"]] == ["MKAEOF000001", "MKAEOF000002"]
    assert out["thumbprints"] == {k["kid"]: k["kid"] for k in party_jwks["keys"]}


def test_jose_refuses_what_the_registry_refuses(signed, client):
    _, hosted, _ = signed
    header, payload, signature = hosted.split(".")
    tampered = f"{header}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{signature}"
    registry_jwks = client.get("/.well-known/jwks.json").get_json()
    out = jose(client.get("/api/v1/parties/MK/jwks.json").get_json(),
               [{"jws": tampered, "typ": "aeo-licence+jws"}])
    assert not out["results"][0]["ok"]
    out = jose(registry_jwks, [{"jws": hosted, "typ": "aeo-licence+jws"}])  # not signed by a registry key
    assert not out["results"][0]["ok"]
