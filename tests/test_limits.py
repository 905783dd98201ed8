"""Limits with clear errors: body size, batch sizes, nonce, page size, id lengths, rate limits."""

from __future__ import annotations

import dataclasses

import pytest

from registry.runtime import Runtime
from registry.runtime.limits import RateLimiter
from registry.services.statements import MAX_STATEMENT_CHARS

from .helpers import licence_fields, operator_id

MK_OP = operator_id("MK", 1)


def settings(app, **changes):
    app.config["REGISTRY"] = dataclasses.replace(app.config["REGISTRY"], **changes)


def problem(response, status, field=None):
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["detail"]
    if field is not None:
        assert field in body.get("errors", {}), body
    return body


class FakeClock:
    def __init__(self):
        self.value = 1000.0

    def __call__(self):
        return self.value


def test_body_larger_than_the_limit_is_413(mk, app):
    app.config["MAX_CONTENT_LENGTH"] = 2048
    body = licence_fields("MK", 2, reason="x" * 500)
    assert mk.put("MKAEOF000002", body).status_code == 201
    body["operator"]["name"] = "y" * 3000
    answer = problem(mk.put("MKAEOF000003", body), 413)
    assert "2048" in answer["detail"]
    assert mk.log_size() == 3  # nothing of the refused body was published


def test_default_body_limit_is_16_mib(app):
    assert app.config["MAX_CONTENT_LENGTH"] == 16 * 1024 * 1024


def test_publish_batch_limit(mk, app):
    settings(app, publish_batch_max=3)
    items = [{"certificate": f"MKAEOF00010{n}", **licence_fields("MK", 10 + n)} for n in range(4)]
    answer = problem(mk.batch(items), 400, "licences")
    assert "limit is 3" in answer["detail"]
    assert mk.batch(items[:3]).status_code == 200


def test_verify_batch_limit(mk, app, client):
    settings(app, verify_batch_max=2)
    headers = mk.headers("MK", "customs")
    problem(client.post("/api/v1/verify:batch", json={"operator_ids": [MK_OP] * 3}, headers=headers),
            400, "operator_ids")
    assert client.post("/api/v1/verify:batch", json={"operator_ids": [MK_OP] * 2},
                       headers=headers).status_code == 200


@pytest.mark.parametrize(("nonce", "ok"), [("n" * 128, True), ("n" * 129, False), ("", False),
                                           ("line\nbreak", False), ("ünïcödé ok", True)])
def test_nonce_length_and_characters(mk, client, nonce, ok):
    headers = mk.headers("MK", "customs")
    single = client.get(f"/api/v1/verify/{MK_OP}", query_string={"nonce": nonce}, headers=headers)
    batch = client.post("/api/v1/verify:batch", json={"operator_ids": [MK_OP], "nonce": nonce}, headers=headers)
    for response in (single, batch):
        if ok:
            assert response.status_code == 200
            assert response.get_json()["verification"]["nonce"] == nonce
        else:
            problem(response, 400, "nonce")


@pytest.mark.parametrize("path", ["/api/v1/licences", "/api/v1/log/entries"])
@pytest.mark.parametrize(("limit", "ok"), [(1, True), (1000, True), (1001, False), (0, False), (-1, False)])
def test_page_size(mk, client, path, limit, ok):
    response = client.get(path, query_string={"limit": limit}, headers=mk.headers("MK"))
    if ok:
        assert response.status_code == 200 and len(response.get_json()["items"]) <= limit
    else:
        problem(response, 400, "limit")


def test_id_lengths(mk, client):
    headers = mk.headers("MK", "customs")
    long_id = "MK" + "1" * 63  # 65 characters
    problem(client.get(f"/api/v1/verify/{long_id}", headers=headers), 400, "operator_id")
    problem(client.get(f"/api/v1/verify/MK{'1' * 16}", headers=headers), 400, "operator_id")  # 18 after the prefix
    problem(mk.put(f"MKAEOF{'1' * 59}", licence_fields("MK", 3)), 400, "certificate")
    problem(mk.put(f"MK{'1' * 34}", licence_fields("MK", 3)), 400, "certificate")
    problem(client.get("/api/v1/public/check", query_string={"operator_id": MK_OP, "certificate": "M" * 65}),
            400, "certificate")
    # Spaces and hyphens count towards the raw limit, not towards the id.
    assert client.get(f"/api/v1/verify/{'-'.join(MK_OP)}", headers=headers).status_code == 200


def test_statement_length(mk):
    problem(mk.put("MKAEOF000004", {"statement": "a" * (MAX_STATEMENT_CHARS + 1)}), 400, "statement")


def test_public_check_is_rate_limited_per_address(mk, app, client):
    clock = FakeClock()
    count, window = app.config["REGISTRY"].public_check_rate
    Runtime.of(app).public_checks = RateLimiter(count, window, clock=clock)
    query = {"operator_id": MK_OP, "certificate": "MKAEOF000001"}
    for _ in range(count):
        assert client.get("/api/v1/public/check", query_string=query).status_code == 200
    limited = client.get("/api/v1/public/check", query_string=query)
    problem(limited, 429)
    assert 1 <= int(limited.headers["Retry-After"]) <= window
    other = client.get("/api/v1/public/check", query_string=query, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert other.status_code == 200
    clock.value += window
    assert client.get("/api/v1/public/check", query_string=query).status_code == 200


def test_failed_authentications_are_rate_limited_per_address(mk, app, client):
    clock = FakeClock()
    count, window = app.config["REGISTRY"].auth_failure_rate
    Runtime.of(app).auth_failures = RateLimiter(count, window, clock=clock)
    good = mk.headers("MK")
    for n in range(count):
        assert client.get("/api/v1/licences", headers=good).status_code == 200  # successes do not count
        bad = {"Authorization": f"Bearer aeo_guess{n:08d}"} if n % 2 else {}
        problem(client.get("/api/v1/licences", headers=bad), 401)
    blocked = client.get("/api/v1/licences", headers={"Authorization": "Bearer aeo_another_guess"})
    problem(blocked, 429)
    assert 1 <= int(blocked.headers["Retry-After"]) <= window
    # A valid token from there still gets through; another address is not limited, nor are public endpoints.
    assert client.get("/api/v1/licences", headers=good).status_code == 200
    problem(client.get("/api/v1/licences", environ_base={"REMOTE_ADDR": "192.0.2.8"}), 401)
    assert client.get("/api/v1/parties").status_code == 200
    clock.value += window
    problem(client.get("/api/v1/licences"), 401)


def test_rate_settings_are_read_from_the_environment():
    from registry.config import ConfigError, Settings

    loaded = Settings.load({"REGISTRY_PUBLIC_CHECK_RATE": "5/10", "REGISTRY_AUTH_FAILURE_RATE": "3/120"})
    assert loaded.public_check_rate == (5, 10) and loaded.auth_failure_rate == (3, 120)
    with pytest.raises(ConfigError, match="REGISTRY_PUBLIC_CHECK_RATE"):
        Settings.load({"REGISTRY_PUBLIC_CHECK_RATE": "0/60"})
