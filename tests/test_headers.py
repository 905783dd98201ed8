"""Security headers on every response; CORS only on public read endpoints."""

from __future__ import annotations

import re

import pytest

from registry.http.headers import HTML_POLICY, JSON_POLICY

from .helpers import licence_fields, operator_id

BASELINE = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


def assert_baseline(response):
    for name, value in BASELINE.items():
        assert response.headers.get(name) == value, (name, response.status_code)
    assert response.headers.get("Content-Security-Policy"), response.status_code


@pytest.mark.parametrize(("method", "path", "status"), [
    ("get", "/healthz", 200),
    ("get", "/api/v1/parties", 200),
    ("get", "/api/v1/log/checkpoint", 200),
    ("get", "/api/v1/licences", 401),
    ("get", "/nope", 404),
    ("delete", "/api/v1/parties", 405),
    ("get", "/api/v1/log/entries?limit=0", 400),
])
def test_baseline_headers_on_successes_and_errors(mk, client, method, path, status):
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert_baseline(response)
    assert response.headers["Content-Security-Policy"] == JSON_POLICY


def test_json_policy_is_strict_and_html_policy_allows_only_own_files(mk, client):
    assert "default-src 'none'" in JSON_POLICY and "frame-ancestors 'none'" in JSON_POLICY
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert_baseline(page)
    policy = page.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    assert policy == HTML_POLICY.format(nonce=nonce)
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy and "http" not in policy
    html = page.get_data(as_text=True)
    # Every inline script carries this response's nonce; the rest come from our own /docs/assets/.
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html)
    assert inline and all(f'nonce="{nonce}"' in attrs for attrs in inline)
    for source in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert source.startswith("/docs/assets/"), source
    assert nonce not in client.get("/docs").headers["Content-Security-Policy"]  # fresh per response


def test_authenticated_responses_are_not_stored(mk, client, registry):
    response = client.get("/api/v1/licences", headers=registry.headers("MK"))
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert client.get("/api/v1/licences").headers["Cache-Control"] == "no-store"  # the 401 too
    forbidden = client.get("/api/v1/licences", headers=registry.headers("MK", "customs"))
    assert forbidden.status_code == 403 and forbidden.headers["Cache-Control"] == "no-store"
    # A verification answer may be kept by the partner itself until next_update, never by a shared cache.
    answer = client.get(f"/api/v1/verify/{operator_id('MK', 1)}", headers=registry.headers("MK", "customs"))
    assert answer.status_code == 200 and answer.headers["Cache-Control"].startswith("private, max-age=")
    assert "Access-Control-Allow-Origin" not in answer.headers


def test_cors_on_public_reads_with_the_configured_origin(mk, client, app):
    response = client.get("/api/v1/parties", headers={"Origin": "https://customs.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Origin" in response.headers["Vary"]
    app.config["REGISTRY"] = __import__("dataclasses").replace(app.config["REGISTRY"],
                                                               cors_origin="https://portal.example")
    assert client.get("/api/v1/log").headers["Access-Control-Allow-Origin"] == "https://portal.example"


def test_cors_preflight_for_public_reads_only(mk, client):
    asked = {"Origin": "https://customs.example", "Access-Control-Request-Method": "GET",
             "Access-Control-Request-Headers": "authorization, content-type"}
    preflight = client.options("/api/v1/public/check", headers=asked)
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert preflight.headers["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"
    assert "authorization" not in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert int(preflight.headers["Access-Control-Max-Age"]) > 0
    for path in ("/api/v1/licences", "/api/v1/licences/MKAEOF000001", "/api/v1/verify:batch",
                 "/api/v1/parties/MK/keys"):
        response = client.options(path, headers=asked)
        assert not any(h.startswith("Access-Control-") for h, _ in response.headers), path


def test_no_cors_on_protected_routes_even_when_called_from_a_browser(mk, client, registry):
    headers = {"Origin": "https://evil.example", **registry.headers("MK")}
    for response in (client.get("/api/v1/licences", headers=headers),
                     client.get("/api/v1/licences", headers={"Origin": "https://evil.example"}),
                     client.put("/api/v1/licences/MKAEOF000002", json=licence_fields("MK", 2), headers=headers)):
        assert "Access-Control-Allow-Origin" not in response.headers
        assert_baseline(response)


def test_hsts_only_over_https(mk, client):
    assert "Strict-Transport-Security" not in client.get("/healthz").headers
    secure = client.get("/healthz", base_url="https://registry.example")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")


def test_each_header_once_and_no_session(mk, client, registry, app):
    answer = client.get(f"/api/v1/verify/{operator_id('MK', 1)}", headers=registry.headers("MK", "customs"))
    page = client.get("/?lang=mk")  # sets the language cookie, the one cookie the registry writes
    for response in (client.get("/healthz"), answer, page, client.get("/docs"), client.get("/nope")):
        names = [name.lower() for name, _ in response.headers if name.lower() != "set-cookie"]
        assert len(names) == len(set(names)), names
        assert_baseline(response)
    assert [c.split("=")[0] for c in page.headers.getlist("Set-Cookie")] == ["lang"]
    assert "Cookie" not in answer.headers.get("Vary", "")
    # The API knows callers by their tokens: there is no session to keep anything in.
    with app.test_request_context("/"):
        from flask import session
        with pytest.raises(RuntimeError, match="session is unavailable"):
            session["caller"] = "MK"
