"""The access matrix: every route x every kind of caller, expectations read from the route's mark.

Routes come from the application's own route table, so a new route is in the
matrix the moment it exists: it fails here if its view carries no ``access``
mark (registry.auth ``require``/``public``), or if this file does not know how
to fill in its path parameters or its body. Expectations are derived from the
mark alone: public routes answer everyone; others answer 401 without a valid
token, 403 to a role the mark does not name, 403 to an authority of another
party where the path names a party, and 2xx otherwise. Path parameters always
name records of party X (MK).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask

from registry.crypto import jws, keys
from registry.http.auth import Access
from registry.runtime import Runtime
from registry.runtime.limits import RateLimiter
from registry.services import agreements, tokens

from .helpers import licence_fields, operator_id

X, Y = "MK", "AL"
X_CERTIFICATE = "MKAEOF000001"
SKIPPED_METHODS = {"HEAD", "OPTIONS"}

# Real records of party X for every path parameter any route may name.
PATH_VALUES = {
    "certificate": X_CERTIFICATE,
    "code": X,
    "operator_id": operator_id(X, 1),
    "agreement_id": "CEFTA-AP5",
    "filename": "swagger-ui.css",
    # The log's first tile and bundle at width 1: they exist once the log holds one entry.
    "level": "0",
    "index": "000.p/1",
}
# Where one name means different things on different routes.
PATH_VALUES_BY_ENDPOINT = {
    "web.asset": {"filename": "site.css"},
}
# Query strings a route needs to answer at all (not expectations).
QUERIES = {
    "verify.public_check": {"operator_id": operator_id(X, 1), "certificate": X_CERTIFICATE},
    "log.checkpoint_at": {"tree_size": 0},
    "log.inclusion": {"index": 0, "tree_size": 1},
    "log.consistency": {"first": 1, "second": 1},
    "log.proof_file": {"index": 0},
    "web.certificate": {"operator": operator_id(X, 1)},
    "web.certificate_proof": {"operator": operator_id(X, 1)},
}


@dataclass(frozen=True)
class Caller:
    name: str
    party: str | None = None
    role: str | None = None
    token: str | None = None  # "unknown" or "revoked" for the invalid ones

    @property
    def valid(self) -> bool:
        return self.role is not None


CALLERS = [
    Caller("no token"),
    Caller("unknown token", token="unknown"),
    Caller("revoked token", token="revoked"),
    Caller("customs of X", X, "customs"),
    Caller("authority of X", X, "authority"),
    Caller("authority of Y", Y, "authority"),
]


def expected_status(access: Access, caller: Caller) -> str:
    """What the mark promises this caller: "2xx", 401 or 403."""
    if access.public:
        return "2xx"
    if not caller.valid:
        return "401"
    if caller.role not in access.roles:
        return "403"
    if access.party_bound and caller.party != X:
        return "403"
    return "2xx"


@dataclass(frozen=True)
class Form:
    """A body sent as an HTML form rather than JSON."""

    fields: dict[str, str]


def _stored_answer(world) -> Form:
    answer = world.client.get(f"/api/v1/verify/{operator_id(X, 1)}", headers=world.headers(X, "customs"))
    return Form({"document": answer.get_data(as_text=True)})


def _key_change(world, party: str) -> dict[str, Any]:
    """A fresh add-key statement, signed by one of the party's current keys."""
    payload = {"party": party, "action": "add", "jwk": keys.public_jwk(keys.generate())}
    return {"statement": jws.sign(payload, world.own_keys[party], jws.TYP_PARTY_KEY)}


# Bodies that succeed when the caller may call the route at all; they use the
# caller's own party where the path does not name one (party X's otherwise).
BODIES: dict[str, Callable[[Any, str], Any]] = {
    "licences.put_licence": lambda world, party: licence_fields(X, 1),
    "licences.publish_batch": lambda world, party: {
        "licences": [{"certificate": f"{party}AEOF000001", **licence_fields(party, 1)}]},
    "verify.verify_batch": lambda world, party: {"operator_ids": [operator_id(X, 1)]},
    "parties.change_key": lambda world, party: _key_change(world, X),
    "web.evidence_page": lambda world, party: _stored_answer(world),
}


def routes(app: Flask) -> list[tuple[str, str, str, Access]]:
    """(endpoint, method, path, access) for every route; refuses a view without a mark."""
    found = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        access = getattr(view, "access", None)
        if not isinstance(access, Access):
            raise AssertionError(f"{rule.rule} ({rule.endpoint}) has no access mark: use auth.require or auth.public")
        unknown = set(rule.arguments) - PATH_VALUES.keys()
        if unknown:
            raise AssertionError(f"{rule.rule}: add a real value of party {X} for {sorted(unknown)} to PATH_VALUES")
        values = {**PATH_VALUES, **PATH_VALUES_BY_ENDPOINT.get(rule.endpoint, {})}
        path = rule.build({name: values[name] for name in rule.arguments}, append_unknown=False)[1]
        for method in sorted(rule.methods - SKIPPED_METHODS):
            if method in ("POST", "PUT", "PATCH") and rule.endpoint not in BODIES:
                raise AssertionError(f"{method} {rule.rule}: add a body that succeeds to BODIES")
            found.append((rule.endpoint, method, path, access))
    return found


@pytest.fixture
def world(registry, app):
    # Limits are tested in test_limits.py; the matrix fails authentication on purpose many times.
    Runtime.of(app).auth_failures = RateLimiter(1_000_000, 60)
    Runtime.of(app).public_checks = RateLimiter(1_000_000, 60)
    for code in (X, Y):
        registry.add_party(code)
        registry.own_key(code)
    with registry.session() as session:
        agreements.put(session, registry.keyring, {
            "id": "CEFTA-AP5", "title": "CEFTA AP5", "status": "in_force", "in_force_from": "2021-01-01",
            "mutual": {"parties": [X, Y], "types": ["AEOS", "AEOF"]}, "benefits": ["priority"]}, registry.now())
    assert registry.put(X_CERTIFICATE, licence_fields(X, 1)).status_code == 201
    assert registry.put(f"{Y}AEOF000001", licence_fields(Y, 1), code=Y).status_code == 201
    return registry


def _headers(world, caller: Caller) -> dict[str, str]:
    if caller.valid:
        return world.headers(caller.party, caller.role)
    if caller.token == "unknown":
        return {"Authorization": f"Bearer {tokens.TOKEN_PREFIX}{secrets.token_urlsafe(32)}"}
    if caller.token == "revoked":
        with world.session() as session:
            token = tokens.issue(session, X, "authority", world.now())
            tokens.revoke(session, token, world.now())
        return {"Authorization": f"Bearer {token}"}
    return {}


def _matches(expected: str, status: int) -> bool:
    return 200 <= status < 300 if expected == "2xx" else status == int(expected)


@pytest.mark.parametrize("caller", CALLERS, ids=[c.name for c in CALLERS])
def test_access_matrix(world, app, client, caller):
    headers = _headers(world, caller)
    wrong = []
    for endpoint, method, path, access in routes(app):
        body = BODIES[endpoint](world, caller.party or X) if endpoint in BODIES and method != "GET" else None
        sent = {"data": body.fields} if isinstance(body, Form) else {"json": body}
        response = client.open(path, method=method, headers=headers, query_string=QUERIES.get(endpoint, {}),
                               **sent)
        expected = expected_status(access, caller)
        if not _matches(expected, response.status_code):
            detail = response.get_json(silent=True) or response.status
            wrong.append(f"{method} {path}: expected {expected}, got {response.status_code} {detail}")
        if response.status_code in (401, 403):
            assert response.mimetype == "application/problem+json", (method, path)
        if response.status_code == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer"), (method, path)
        response.close()
    assert not wrong, "\n".join(wrong)


def test_the_matrix_covers_every_route_and_both_kinds_of_mark(app):
    found = routes(app)
    assert len({(e, m) for e, m, _, _ in found}) == sum(
        len(rule.methods - SKIPPED_METHODS) for rule in app.url_map.iter_rules())
    assert any(a.public for *_, a in found) and any(a.party_bound for *_, a in found)
    assert {role for *_, a in found for role in a.roles} == {"authority", "customs"}


def test_a_route_without_a_mark_fails_the_matrix(app):
    app.add_url_rule("/api/v1/forgotten", "forgotten", lambda: "oops")
    with pytest.raises(AssertionError, match=r"forgotten.*no access mark"):
        routes(app)


def test_a_route_with_a_parameter_the_matrix_cannot_fill_fails_it(app):
    from registry.http.auth import public

    app.add_url_rule("/api/v1/things/<thing_id>", "thing", public(lambda thing_id: "ok"))
    with pytest.raises(AssertionError, match="thing_id"):
        routes(app)


@pytest.mark.parametrize(("access", "caller", "expected"), [
    (Access(()), CALLERS[0], "2xx"),
    (Access(("authority",)), CALLERS[0], "401"),
    (Access(("authority",)), CALLERS[2], "401"),
    (Access(("authority",)), CALLERS[3], "403"),
    (Access(("authority",), party_bound=True), CALLERS[4], "2xx"),
    (Access(("authority",), party_bound=True), CALLERS[5], "403"),
    (Access(("authority",)), CALLERS[5], "2xx"),
    (Access(("customs", "authority")), CALLERS[3], "2xx"),
])
def test_expectations_follow_the_mark(access, caller, expected):
    assert expected_status(access, caller) == expected
