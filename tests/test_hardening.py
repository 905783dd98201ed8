"""Issue 21, "Hardening": what an attacker or an administrator found, each pinned by a test.

Findings 1 and 3 (bad input, statements partners cannot parse) are here; the
others have a section each below.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import stat
from urllib.parse import parse_qsl, urlsplit

import pytest
from sqlalchemy import event

from registry import create_app
from registry.config import ConfigError
from registry.crypto import jws, keys
from registry.crypto.canonical import canonical_json
from registry.domain.recognition import Result
from registry.keyring import Keyring
from registry.runtime import Runtime
from registry.runtime.limits import RateLimiter
from registry.services import evidence, verification

from .helpers import import_row, licence_fields, licence_payload, operator_id, sign_licence, write_import_csv

MK_OP = operator_id("MK", 1)
DEEP = b"[" * 200_000 + b"]" * 200_000


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def problem(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status
    if field is not None:
        assert field in body.get("errors", {}), body
    return body


@pytest.fixture
def own(mk):
    """MK with its own key besides the hosted one; MKAEOF000001 is at version 1."""
    return mk.own_key("MK")


# --- 1. no 500 for bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "role"), [
    ("PUT", "/api/v1/licences/MKAEOF000002", "authority"),
    ("POST", "/api/v1/licences:batch", "authority"),
    ("POST", "/api/v1/verify:batch", "customs"),
])
@pytest.mark.parametrize("body", [DEEP, b'{"a": ' * 100_000 + b"1" + b"}" * 100_000])
def test_deeply_nested_bodies_are_a_400_naming_the_body(mk, client, method, path, role, body):
    size = mk.log_size()
    response = client.open(path, method=method, data=body, content_type="application/json",
                           headers=mk.headers("MK", role))
    assert "nested more than 64 levels" in problem(response, 400, "body")["errors"]["body"][0]
    assert mk.log_size() == size


@pytest.mark.parametrize(("method", "path", "role"), [
    ("PUT", "/api/v1/licences/MKAEOF000002", "authority"),
    ("POST", "/api/v1/licences:batch", "authority"),
    ("POST", "/api/v1/verify:batch", "customs"),
])
@pytest.mark.parametrize(("body", "why"), [
    (b'{"operator_ids": ["MK1"], "operator_ids": ["MK2"]}', "duplicate member name"),
    (b"\xef\xbb\xbf{}", "byte order mark"),
    ('{"licences": []}'.encode("utf-16"), "not UTF-8"),
    (b'{"nonce": NaN}', "NaN"),
])
def test_bodies_that_are_not_i_json_are_a_400_naming_the_body(mk, client, method, path, role, body, why):
    response = client.open(path, method=method, data=body, content_type="application/json",
                           headers=mk.headers("MK", role))
    assert why in problem(response, 400, "body")["errors"]["body"][0]


def test_a_statement_whose_header_nests_deeply_is_a_400(own, mk):
    header = _b64url(b"[" * 24_000 + b"]" * 24_000).decode()
    statement = f"{header}.{_b64url(b'{}').decode()}.c2ln"
    body = problem(mk.put("MKAEOF000002", {"statement": statement}), 400, "statement")
    assert "nested more than 64 levels" in body["errors"]["statement"][0]


def test_deep_evidence_without_a_token_is_a_plain_400_page(mk, client):
    for data in ({"document": DEEP.decode()}, {"file": (io.BytesIO(DEEP), "answer.json")}):
        response = client.post("/evidence", data=data, content_type="multipart/form-data")
        assert response.status_code == 400 and response.mimetype == "text/html"
        assert "This is not a JSON document." in response.get_data(as_text=True)


def test_deep_nesting_inside_an_evidence_jws_header_is_a_plain_400_page(mk, client):
    header = _b64url(b"[" * 50_000 + b"]" * 50_000).decode()
    document = json.dumps({"jws": f"{header}.e30.c2ln"})
    response = client.post("/evidence", data={"document": document}, content_type="multipart/form-data")
    assert response.status_code == 400
    assert "This is not a verification answer or a snapshot" in response.get_data(as_text=True)


def test_a_lone_surrogate_in_a_signed_operator_name_is_a_400(own, mk):
    payload = licence_payload("MKAEOF000002", 1, serial=2)
    text = canonical_json(payload).replace(b"Operator 2 of MK", b"Operator \\ud800 of MK")
    size = mk.log_size()
    body = problem(mk.put("MKAEOF000002", {"statement": jws.sign_bytes(text, own, jws.TYP_LICENCE)}),
                   400, "statement")
    assert "lone surrogate" in body["errors"]["statement"][0] and "operator.name" in body["errors"]["statement"][0]
    assert mk.log_size() == size


def test_a_lone_surrogate_in_plain_fields_is_a_400(mk, client):
    body = json.dumps(licence_fields("MK", 2)).replace("Operator 2 of MK", "Operator \\udc00 of MK")
    response = client.put("/api/v1/licences/MKAEOF000002", data=body, content_type="application/json",
                          headers=mk.headers("MK"))
    assert "operator.name" in problem(response, 400, "body")["errors"]["body"][0]


# --- 3. statements partners cannot parse ------------------------------------------------------------


def _signed(key, text: bytes) -> str:
    return jws.sign_bytes(text, key, jws.TYP_LICENCE)


@pytest.mark.parametrize(("encode", "why"), [
    (lambda text: text.decode().encode("utf-16"), "not UTF-8"),
    (lambda text: text.decode().encode("utf-16-le"), "not JSON"),
    (lambda text: b"\xef\xbb\xbf" + text, "byte order mark"),
    (lambda text: text.replace(b'"status":"suspended"', b'"status":"revoked","status":"suspended"'),
     "duplicate member name 'status'"),
    (lambda text: text.replace(b'"version":2', b'"version":2.0e0'), "version"),
    (lambda text: text.replace(b'"version":2', b'"version":9007199254740993'), "beyond"),
])
def test_statements_that_are_not_i_json_are_refused_and_not_logged(own, mk, encode, why):
    payload = {**licence_payload("MKAEOF000001", 2, status="suspended", reason="audit"),
               "effective_at": "2026-11-27T10:00:00Z"}
    text = encode(canonical_json(payload))
    size = mk.log_size()
    body = problem(mk.put("MKAEOF000001", {"statement": _signed(own, text)}), 400)
    assert any(why in f"{path}: {message}" for path, messages in body["errors"].items() for message in messages), body
    assert set(body["errors"]) <= {"statement", "statement.version"}
    assert mk.log_size() == size
    # The same statement as canonical UTF-8 is accepted: only the encoding was wrong.
    assert mk.put("MKAEOF000001", {"statement": sign_licence(own, payload)}).status_code == 200


def test_a_key_statement_that_is_not_i_json_is_refused(own, mk, client):
    new = keys.generate()
    text = canonical_json({"party": "MK", "action": "add", "jwk": keys.public_jwk(new), "valid_from": None,
                           "revoked_at": None}).replace(b'"action":"add"', b'"action":"revoke","action":"add"')
    size = mk.log_size()
    response = client.post("/api/v1/parties/MK/keys", json={"statement": jws.sign_bytes(text, own, jws.TYP_PARTY_KEY)},
                           headers=mk.headers("MK"))
    assert "duplicate member name" in problem(response, 400, "statement")["errors"]["statement"][0]
    assert mk.log_size() == size


SPOOFS = ["\u202e", "\u202d", "\u2066", "\u2069", "\u200f", "\u200e", "\u061c", "\u200b", "\u00ad", "\ufeff",
          "\x00", "\x07", "\t", "\n", "\r", "\x7f", "\x85", "\u2028"]


@pytest.mark.parametrize("char", SPOOFS)
@pytest.mark.parametrize(("field", "change"), [
    ("operator.name", lambda b, c: b["operator"].update(name=f"Vardar {c}LEEDOOD")),
    ("operator.address.street", lambda b, c: b["operator"]["address"].update(street=f"Partizanska{c} 1")),
    ("operator.address.city", lambda b, c: b["operator"]["address"].update(city=f"Skopje{c}")),
    ("reason", lambda b, c: b.update(status="suspended", reason=f"audit{c}findings")),
])
def test_control_and_formatting_characters_are_refused_in_every_form(own, mk, client, char, field, change):
    fields = licence_fields("MK", 1)
    change(fields, char)
    size = mk.log_size()
    problem(mk.put("MKAEOF000001", fields), 400, field)
    problem(mk.batch([{"certificate": "MKAEOF000001", **fields}]), 400, f"licences.0.{field}")
    payload = {**licence_payload("MKAEOF000001", 2), **fields, "effective_at": "2026-11-27T10:00:00Z"}
    problem(mk.put("MKAEOF000001", {"statement": sign_licence(own, payload)}), 400, f"statement.{field}")
    assert mk.log_size() == size


def test_letters_of_every_script_and_plain_spaces_are_still_names(mk):
    for name in ("Вардар Логистика ДООЕЛ", "Çelik Shpk – Tiranë", "株式会社 Ōsaka", "Firm\u00a0A & Söhne",
                 "شركة الشحن"):
        response = mk.put("MKAEOF000001", licence_fields("MK", 1, operator={
            "id": MK_OP, "name": name, "aliases": [], "address": None}))
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["licence"]["operator"]["name"] == name


# --- 1. odd query parameters on pages ---------------------------------------------------------------

ODD = {"endpoint": "x", "_method": "POST", "_external": "1", "_scheme": "javascript", "_anchor": "x",
       "v": "1", "values": "x", "utm_source": "mail"}


def _language_links(html: str) -> list[str]:
    return re.findall(r'<a href="([^"]*)" lang="[^"]+" hreflang=', html)


@pytest.mark.parametrize(("path", "own"), [
    ("/", {}),
    ("/check", {}),
    ("/check?operator_id=MK1&certificate=MKAEOF1", {"operator_id": "MK1", "certificate": "MKAEOF1"}),
    ("/certificate/MKAEOF000001?operator=" + MK_OP, {"operator": MK_OP}),
    ("/evidence", {}),
])
@pytest.mark.parametrize("name", sorted(ODD))
def test_pages_read_only_their_own_query_parameters(mk, client, path, own, name):
    response = client.get(path + ("&" if "?" in path else "?") + f"{name}={ODD[name]}")
    assert response.status_code in (200, 400, 404) and response.mimetype == "text/html"
    links = _language_links(response.get_data(as_text=True))
    assert len(links) == 4
    for link in links:
        assert link.startswith("/") and "#" not in link and "javascript" not in link, link
        query = dict(parse_qsl(urlsplit(html.unescape(link)).query))
        assert set(query) == {*own, "lang"}, link
        assert all(query[key] == value for key, value in own.items())


def test_a_posted_evidence_page_with_odd_parameters(mk, client):
    response = client.post("/evidence?endpoint=x&_method=GET&_external=1", data={"document": ""},
                           content_type="multipart/form-data")
    assert response.status_code == 400
    assert all(link.startswith("/evidence?lang=") for link in _language_links(response.get_data(as_text=True)))


# --- 2. evidence: signatures first, then bounded lookups -----------------------------------------------


def _statements_recorded(app):
    """Every SQL statement the app's engines run from now on."""
    database = Runtime.of(app).database
    seen: list[str] = []
    for engine in (database.engine, database.read_engine):
        event.listen(engine, "before_cursor_execute", lambda conn, cursor, sql, *rest: seen.append(sql))
    return seen


def test_evidence_with_a_bogus_signature_looks_nothing_up(mk, client, app):
    answer_kid = Runtime.of(app).keyring.answer_key.kid
    statement = mk.put("MKAEOF000002", licence_fields("MK", 2)).get_json()["statement"]
    verification = {"verifier": "MK", "at": "2026-11-27T10:00:00Z", "nonce": None,
                    "produced_at": "2026-11-27T10:00:00Z", "next_update": "2026-11-27T10:05:00Z",
                    "checkpoint": {"tree_size": 3, "root_hash": "AAAA"},
                    "results": [{"operator_id": MK_OP, "recognised": True, "reason": "recognised", "operator": None,
                                 "recognition": None,
                                 "licences": [{"log_index": n, "statement": statement} for n in range(150)]}]}
    header = _b64url(json.dumps({"alg": "Ed25519", "kid": answer_kid, "typ": jws.TYP_VERIFICATION}).encode())
    forged = f"{header.decode()}.{_b64url(canonical_json(verification)).decode()}.{'A' * 86}"
    seen = _statements_recorded(app)
    document = json.dumps({"verification": verification, "jws": forged}).encode()
    response = client.post("/evidence", data={"file": (io.BytesIO(document), "answer.json")},
                           content_type="multipart/form-data")
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "This document does not verify" in text
    assert seen == []


def test_statements_of_a_signed_answer_are_looked_up_in_bounded_chunks(mk, app):
    statement = mk.put("MKAEOF000002", licence_fields("MK", 2)).get_json()["statement"]
    index = mk.log_size() - 1
    licences = [{"log_index": index, "statement": statement}] + [
        {"log_index": n, "statement": "x.y.z"} for n in range(index + 1, index + 1_200)]
    verification = {"checkpoint": {"tree_size": index + 1}, "results": [{"licences": licences}]}
    seen = _statements_recorded(app)
    with mk.session() as session:
        found = evidence.logged_statements(session, verification)
    assert list(found) == [statement] and found[statement].log_index == index
    lookups = [sql for sql in seen if "log_entry.statement" in sql]
    assert len(lookups) == 3 and all(sql.count("?") + sql.count("%(") <= 501 for sql in lookups), lookups


# --- 4 and 8. rate limits -----------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.value = 1000.0

    def __call__(self):
        return self.value


@pytest.fixture
def failures(app):
    count, window = app.config["REGISTRY"].auth_failure_rate
    limiter = Runtime.of(app).auth_failures = RateLimiter(count, window, clock=FakeClock())
    return limiter


@pytest.mark.parametrize("path", ["/api/v1/licences", f"/api/v1/verify/{MK_OP}"])
def test_a_valid_token_is_never_refused_because_others_failed(mk, client, failures, path):
    # Behind a proxy with REGISTRY_PROXY_HOPS=0 every partner has the proxy's address.
    for n in range(2 * failures.limit):
        assert client.get(path, headers={"Authorization": f"Bearer aeo_guess{n:08d}"}).status_code in (401, 429)
    problem(client.get(path, headers={"Authorization": "Bearer aeo_guess"}), 429)
    for role in ("authority", "customs"):
        response = client.get(path, headers=mk.headers("MK", role))
        assert response.status_code in (200, 403), response.get_json()


def test_failures_are_counted_per_token_prefix_across_addresses(mk, client, failures):
    bad = {"Authorization": "Bearer aeo_LeakedPrefix-rest-of-a-wrong-token"}
    for n in range(failures.limit):
        problem(client.get("/api/v1/licences", headers=bad, environ_base={"REMOTE_ADDR": f"10.0.{n}.1"}), 401)
    same_prefix = {"Authorization": "Bearer aeo_LeakedPrefix-and-another-ending"}
    problem(client.get("/api/v1/licences", headers=same_prefix, environ_base={"REMOTE_ADDR": "10.9.9.9"}), 429)
    problem(client.get("/api/v1/licences", headers={"Authorization": "Bearer aeo_OtherPrefix"},
                       environ_base={"REMOTE_ADDR": "10.9.9.9"}), 401)


def test_the_limiter_stays_bounded_and_remembers_active_offenders():
    clock = FakeClock()
    limiter = RateLimiter(3, 60, clock=clock, max_keys=100)
    for _ in range(3):
        assert limiter.hit("offender") is None
    assert limiter.hit("offender") is not None
    for n in range(10_000):  # cycling addresses
        clock.value += 0.001
        limiter.hit(f"198.51.100.{n}")
        assert len(limiter) <= 100
    assert limiter.hit("offender") is not None and limiter.retry_after("offender") is not None
    clock.value += 60
    assert limiter.hit("offender") is None


def test_a_quiet_key_makes_room_before_a_busy_one():
    clock = FakeClock()
    limiter = RateLimiter(2, 60, clock=clock, max_keys=3)
    for key in ("a", "b", "c"):
        limiter.hit(key)
    limiter.hit("a")  # a is over its limit next time, and the least recently active is b
    limiter.hit("d")
    assert limiter.retry_after("b") is None and len(limiter) == 3
    assert limiter.hit("a") is not None


@pytest.mark.parametrize(("first", "second", "shared"), [
    ("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", True),  # one /64: one subscriber's LAN
    ("2001:db8:1:2::1", "2001:db8:1:3::1", False),
    ("::ffff:192.0.2.1", "192.0.2.1", True),
    ("192.0.2.1", "192.0.2.2", False),
])
def test_public_checks_are_limited_per_ipv4_address_and_per_ipv6_64(mk, app, client, first, second, shared):
    Runtime.of(app).public_checks = RateLimiter(2, 60, clock=FakeClock())
    query = {"operator_id": MK_OP, "certificate": "MKAEOF000001"}
    for _ in range(2):
        assert client.get("/api/v1/public/check", query_string=query,
                          environ_base={"REMOTE_ADDR": first}).status_code == 200
    api = client.get("/api/v1/public/check", query_string=query, environ_base={"REMOTE_ADDR": second})
    page = client.get("/check", query_string=query, environ_base={"REMOTE_ADDR": second})
    assert (api.status_code, page.status_code) == ((429, 429) if shared else (200, 200))


def test_failed_authentications_are_counted_per_ipv6_64(mk, client, failures):
    for n in range(failures.limit):
        problem(client.get("/api/v1/licences", headers={"Authorization": f"Bearer aeo_g{n:011d}"},
                           environ_base={"REMOTE_ADDR": f"2001:db8::{n + 1:x}"}), 401)
    problem(client.get("/api/v1/licences", headers={"Authorization": "Bearer aeo_gx"},
                       environ_base={"REMOTE_ADDR": "2001:db8::ffff"}), 429)


# --- 5. revoking a leaked token by id or prefix -------------------------------------------------------


@pytest.fixture
def cli(runner):
    def run(*args, ok=True):
        result = runner.invoke(args=["registry", *map(str, args)])
        assert (result.exit_code == 0) == ok, (result.output, result.stderr)
        return result

    return run


def _listed(cli) -> dict[str, tuple[str, str]]:
    """token list as {prefix: (id, state)}."""
    rows = [line.split() for line in cli("token", "list").stdout.splitlines()]
    return {row[1].rstrip("…"): (row[0], row[4]) for row in rows}


@pytest.mark.parametrize("by", ["id", "prefix", "prefix as listed", "token"])
def test_a_token_is_revoked_by_its_id_or_the_prefix_token_list_shows(mk, cli, client, by):
    token = cli("token", "issue", "MK", "--role", "customs").stdout.strip()
    other = mk.token("MK", "authority")
    ident, state = _listed(cli)[token[:12]]
    assert state == "active"
    reference = {"id": ident, "prefix": token[:12], "prefix as listed": token[:12] + "…", "token": token}[by]
    assert f"revoked token {ident} {token[:12]}… of MK (customs)" in cli("token", "revoke", reference).stdout
    assert _listed(cli)[token[:12]][1] == "revoked"
    problem(client.get(f"/api/v1/verify/{MK_OP}", headers={"Authorization": f"Bearer {token}"}), 401)
    assert client.get(f"/api/v1/verify/{MK_OP}", headers={"Authorization": f"Bearer {other}"}).status_code == 200


def test_an_ambiguous_prefix_lists_the_candidates_and_revokes_nothing(mk, cli):
    issued = [cli("token", "issue", "MK", "--role", "customs").stdout.strip() for _ in range(40)]
    shared = next(p for p in {t[:5] for t in issued} if sum(t.startswith(p) for t in issued) > 1)
    result = cli("token", "revoke", shared, ok=False)
    assert result.stdout == "" and "matches" in result.stderr and "give the id" in result.stderr
    for token in issued:
        if token.startswith(shared):
            assert token[:12] in result.stderr
    assert all(state == "active" for _, state in _listed(cli).values())
    assert "too short" in cli("token", "revoke", "aeo_", ok=False).stderr
    assert "no such token" in cli("token", "revoke", "aeo_nothinglike", ok=False).stderr
    assert "no such token" in cli("token", "revoke", "999999", ok=False).stderr


# --- 6. production mode ---------------------------------------------------------------------------------


def _cli_app(tmp_path, env: str, keys_dir=None):
    settings = {"env": env, "database_url": f"sqlite:///{tmp_path / 'data' / 'registry.sqlite3'}",
                "keys_dir": keys_dir or tmp_path / "keys", "log_origin": "aeo-registry.test/log"}
    return create_app(settings, environ={})


def test_demo_is_refused_in_production_and_writes_nothing(tmp_path):
    keys_dir = tmp_path / "keys"
    Keyring(keys_dir, "prod").ensure_registry_keys()
    app = _cli_app(tmp_path, "production", keys_dir)
    tokens_file = tmp_path / "tokens.json"
    result = app.test_cli_runner().invoke(args=["registry", "demo", "--tokens-file", str(tokens_file)])
    Runtime.of(app).database.dispose()
    assert result.exit_code != 0 and "refused with REGISTRY_ENV=production" in result.stderr
    assert "aeo_" not in result.output
    assert not tokens_file.exists() and not (tmp_path / "data").exists()


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_cli_creates_the_database_and_keys_private(tmp_path):
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir(mode=0o755)
    keys_dir.chmod(0o755)  # as a checkout leaves the committed keys/ folder
    app = _cli_app(tmp_path, "development", keys_dir)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["registry", "init"]).exit_code == 0
    assert runner.invoke(args=["registry", "party", "add", "MK", "--name", "North Macedonia",
                               "--authority", "Customs", "--hosted-key"]).exit_code == 0
    with Runtime.of(app).database.engine.connect() as connection:  # WAL files exist while one is open
        database = tmp_path / "data" / "registry.sqlite3"
        sidecars = [database.with_name(database.name + suffix) for suffix in ("-wal", "-shm")]
        assert all(path.exists() for path in sidecars)
        assert {path.name: _mode(path) for path in [database, *sidecars]} == {
            path.name: 0o600 for path in [database, *sidecars]}
        assert connection is not None
    Runtime.of(app).database.dispose()
    assert _mode(tmp_path / "data") == 0o700
    assert _mode(keys_dir) == 0o700
    assert {path.name: _mode(path) for path in keys_dir.iterdir()} == {
        path.name: 0o600 for path in keys_dir.iterdir()}


def test_production_refuses_a_keys_folder_open_to_others(tmp_path):
    keys_dir = tmp_path / "keys"
    Keyring(keys_dir, "prod").ensure_registry_keys()
    keys_dir.chmod(0o755)
    with pytest.raises(ConfigError, match="chmod 700"):
        _cli_app(tmp_path, "production", keys_dir)


# --- 7. duplicate ids in a batch -------------------------------------------------------------------------


def test_an_id_asked_many_times_is_answered_once_at_every_position(mk, client, monkeypatch):
    calls = {"recognise": 0, "as_json": 0}
    real_recognise, real_as_json = verification.recognise, Result.as_json

    def counting_recognise(*args, **kwargs):
        calls["recognise"] += 1
        return real_recognise(*args, **kwargs)

    def counting_as_json(self, **kwargs):
        calls["as_json"] += 1
        return real_as_json(self, **kwargs)

    monkeypatch.setattr(verification, "recognise", counting_recognise)
    monkeypatch.setattr(Result, "as_json", counting_as_json)
    other = operator_id("MK", 2)
    asked = [MK_OP, other, MK_OP.lower(), "MK-1", f" {MK_OP} "] + [MK_OP] * 4_995
    for proofs in (False, True):
        calls.update(recognise=0, as_json=0)
        response = client.post("/api/v1/verify:batch", headers=mk.headers("MK", "customs"),
                               json={"operator_ids": asked, "include_statements": True, "proofs": proofs})
        assert response.status_code == 200
        results = response.get_json()["verification"]["results"]
        assert [r["operator_id"] for r in results] == [MK_OP, other, MK_OP, "MK-1", *[MK_OP] * 4_996]
        assert [i for i, r in enumerate(results) if "error" in r] == [3]
        assert results[3]["error"].startswith("operator_ids.3: ")
        assert all(r == results[0] for i, r in enumerate(results) if i not in (1, 3))
        assert results[0]["recognised"] and results[0]["licences"][0]["statement"]
        assert proofs == ("inclusion_proof" in results[0]["licences"][0])
        assert calls == {"recognise": 2, "as_json": 3}


# --- 9. what a customs token reads of its own party's licences --------------------------------------------


def test_customs_reads_its_own_partys_statements_through_feed_and_snapshot_but_cannot_list_them(registry, client):
    """docs/threat-model.md: customs of P reads P's statements (names, addresses) through verification,
    the feed and snapshots, as docs/api.md's "Change feed" and "Offline use" say; it cannot list or manage them."""
    registry.add_party("MK").add_party("AL")
    quiet = licence_fields("MK", 1, consent={"partners": False, "public": False})
    statement = registry.put("MKAEOF000001", quiet).get_json()["statement"]
    for party, sees in (("MK", True), ("AL", False)):
        headers = registry.headers(party, "customs")
        feed = client.get("/api/v1/feed?after=-1", headers=headers).get_json()["items"]
        (item,) = [i for i in feed if i["kind"] == "licence"]
        assert ("statement" in item) == sees and item.get("statement", statement) == statement
        payload = jws.logged_payload(client.get("/api/v1/snapshot", headers=headers).get_json()["jws"])
        carried = [v["statement"] for licence in payload["licences"] for v in licence["versions"]]
        assert carried == ([statement] if sees else [])
        if sees:
            assert jws.logged_payload(carried[0])["operator"]["address"]["street"] == "Partizanska 1"
    mk_customs = registry.headers("MK", "customs")
    problem(client.get("/api/v1/licences/MKAEOF000001", headers=mk_customs), 403)
    problem(client.get("/api/v1/licences", headers=mk_customs), 403)
    problem(client.put("/api/v1/licences/MKAEOF000002", json=licence_fields("MK", 2), headers=mk_customs), 403)
    answer = client.get(f"/api/v1/verify/{MK_OP}", headers=mk_customs).get_json()["verification"]
    assert answer["results"][0]["operator"]["name"] == "Operator 1 of MK"  # national basis


def test_an_import_row_with_a_bidi_override_is_refused_by_line_and_field(mk, cli, tmp_path):
    path = write_import_csv(tmp_path / "rows.csv", [import_row(5), import_row(6, operator_name="Firm \u202e6")])
    size = mk.log_size()
    result = cli("import", "MK", path, ok=False)
    assert "operator.name" in result.stderr and "U+202E" in result.stderr
    assert mk.log_size() == size
