"""Property-based fuzzing of the whole HTTP API from its OpenAPI spec (schemathesis).

Every operation in /openapi.json is called with generated requests, valid and
invalid (schemathesis' positive and negative modes, its examples and coverage
phases), with an authority token and a customs token of party MK against a
registry that holds parties, keys, an agreement and licence versions. On top
of schemathesis' own checks (no 5xx, status codes, content types, response
bodies and headers as the spec says, invalid input rejected, protected
operations refuse requests without a token, unsupported methods refused) each
response must carry the security headers, and each error must be problem+json
whose ``status`` is the response's and, for a 400, whose ``errors`` name the
offending field.

Left out: schemathesis' ``positive_data_acceptance``. Some rules cannot be
written in OpenAPI (the check digits of national tax numbers, ``index`` below
``tree_size``, an opaque ``cursor``, the lifecycle of a licence), so a request
the spec allows can still be refused; ``rejections_name_a_field`` below holds
such refusals to the contract instead (a 400 problem naming the field).

The normal suite runs a bounded, derandomised run (REGISTRY_FUZZ_EXAMPLES,
default 25 per operation and role); ``make fuzz`` runs many more with fresh
randomness.
"""

from __future__ import annotations

import html
import json
import os
import re
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

from registry import create_app
from registry.runtime import Runtime
from registry.runtime.limits import RateLimiter
from registry.services import agreements

from .helpers import licence_fields, licence_payload, sign_licence

LONG_RUN = "REGISTRY_FUZZ_EXAMPLES" in os.environ
EXAMPLES = int(os.environ.get("REGISTRY_FUZZ_EXAMPLES", "25"))
# The spec's path parameter examples name these, so the examples phase reaches real records.
EXAMPLE_CERTIFICATE = "MKAEOF000123"
EXAMPLE_OPERATOR = "MK4030000375897"
EXAMPLE_AGREEMENT = "CEFTA-AP5"


def _spec() -> dict:
    """The app's own spec; building it touches neither a database nor keys."""
    app = create_app({"env": "testing", "database_url": "sqlite://"}, environ={})
    return app.test_client().get("/openapi.json").get_json()


schema = schemathesis.openapi.from_dict(_spec())
# The token is the test's to choose (one per role); that requests without it or with a bad one
# are refused is schemathesis' ignored_auth check and test_access_matrix.py.
schema.config.generation.update(with_security_parameters=False)


def problem_details(ctx, response, case) -> None:
    """Every error is RFC 9457 problem+json, never HTML or a stack trace."""
    if response.status_code < 400:
        return
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.startswith("application/problem+json"), f"error as {content_type!r}"
    body = json.loads(response.content)
    for member, kind in (("type", str), ("title", str), ("status", int), ("detail", str)):
        assert isinstance(body.get(member), kind), f"problem without a {kind.__name__} {member}: {body}"
    assert body["status"] == response.status_code, body
    assert "Traceback" not in response.text and "sqlalchemy" not in response.text.lower(), body
    if response.status_code == 429:
        assert response.headers.get("retry-after"), "429 without Retry-After"


def rejections_name_a_field(ctx, response, case) -> None:
    """A 400 says which field is wrong (docs/api.md: errors keyed by field path)."""
    if response.status_code != 400:
        return
    errors = json.loads(response.content).get("errors")
    assert isinstance(errors, dict) and errors, f"400 without field errors: {response.text}"
    for path, messages in errors.items():
        assert isinstance(path, str) and path, errors
        assert isinstance(messages, list) and messages and all(isinstance(m, str) and m for m in messages), errors


def security_headers(ctx, response, case) -> None:
    """Security headers on every response; CORS never on a token-protected operation."""
    headers = response.headers
    assert headers.get("x-content-type-options") == ["nosniff"], headers
    assert headers.get("x-frame-options") == ["DENY"], headers
    assert headers.get("referrer-policy") == ["no-referrer"], headers
    assert "default-src 'none'" in (headers.get("content-security-policy") or [""])[0], headers
    if case.operation.definition.raw.get("security"):
        assert "access-control-allow-origin" not in headers, headers
        cache = (headers.get("cache-control") or [""])[0]
        assert cache == "no-store" or cache.startswith("private"), headers


CHECKS = [problem_details, rejections_name_a_field, security_headers]


@pytest.fixture
def world(registry, app, now):
    """Parties, keys, an agreement and licence versions for the fuzzer to run into."""
    # Limits are tested on their own (test_limits.py); here they would only turn the rest of the run into 429s.
    Runtime.of(app).auth_failures = RateLimiter(1_000_000, 60)
    Runtime.of(app).public_checks = RateLimiter(1_000_000, 60)
    for code in ("AL", "MK", "RS"):
        registry.add_party(code)
    own = registry.own_key("MK")
    with registry.session() as session:
        agreements.put(session, registry.keyring, {
            "id": EXAMPLE_AGREEMENT, "title": "CEFTA AP5", "status": "in_force", "in_force_from": "2021-01-01",
            "mutual": {"parties": ["AL", "MK", "RS"], "types": ["AEOS", "AEOF"]}, "benefits": ["priority"]},
            now())
    fields = licence_fields("MK", 1)
    fields["operator"]["id"] = EXAMPLE_OPERATOR
    assert registry.put(EXAMPLE_CERTIFICATE, fields).status_code == 201
    payload = licence_payload(EXAMPLE_CERTIFICATE, 2, status="suspended", reason="audit")
    payload["operator"]["id"] = EXAMPLE_OPERATOR
    payload["effective_at"] = "2026-11-27T10:00:00Z"
    assert registry.put(EXAMPLE_CERTIFICATE, {"statement": sign_licence(own, payload)}).status_code == 200
    assert registry.put("ALAEOC000001", licence_fields("AL", 1, type="AEOC"), code="AL").status_code == 201
    return registry


fuzz_settings = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not LONG_RUN,
    database=None if not LONG_RUN else settings.default.database,
    # The app fixture is set up once per operation on purpose: state accumulates across its examples.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def _call(case, world, role: str) -> None:
    # Checks that send follow-up requests (e.g. without the token) reach the same app.
    case.operation.schema.app = case.operation.app = world.app
    case.call_and_validate(headers=world.headers("MK", role),
                           additional_checks=CHECKS, excluded_checks=[positive_data_acceptance])


@pytest.mark.slow
@schema.parametrize()
@fuzz_settings
def test_fuzz_as_authority(case, world):
    _call(case, world, "authority")


@pytest.mark.slow
@schema.parametrize()
@fuzz_settings
def test_fuzz_as_customs(case, world):
    _call(case, world, "customs")


def test_every_operation_is_fuzzed():
    """The parametrisation covers the spec; a new operation is fuzzed without more code."""
    operations = {(r.ok().method.upper(), r.ok().path) for r in schema.get_all_operations()}
    spec = _spec()
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops if m != "parameters"}
    assert operations == documented and len(operations) >= 20


# --- hostile shapes the spec does not describe (issue 21) -----------------------------------------

SPOOFING = "\u202e\u202d\u2066\u2067\u2068\u2069\u200e\u200f\u061c\u200b\u00ad\ufeff\x00\x1b\t\n\x7f\x85\u2028"
BODY_OPERATIONS = [("PUT", "/api/v1/licences/MKAEOF000777", "authority"),
                   ("POST", "/api/v1/licences:batch", "authority"),
                   ("POST", "/api/v1/verify:batch", "customs"),
                   ("POST", "/api/v1/parties/MK/keys", "authority")]


@st.composite
def deep_nesting(draw) -> bytes:
    depth = draw(st.integers(65, 5_000))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"operator_ids":[', "]}")]))
    return (opener * depth + draw(st.sampled_from(["1", '"x"', "null", ""])) + closer * depth).encode()


@st.composite
def spoofed_fields(draw) -> bytes:
    """Plain licence fields, a batch of them or a verify batch, with control, bidi or surrogate text inside."""
    weird = draw(st.text(st.sampled_from(SPOOFING), min_size=1, max_size=3))
    fields = licence_fields("MK", 777)
    where = draw(st.sampled_from(["name", "street", "reason", "alias", "id"]))
    if where == "name":
        fields["operator"]["name"] = f"Vardar {weird}DOOEL"
    elif where == "street":
        fields["operator"]["address"]["street"] = weird
    elif where == "reason":
        fields.update(status="suspended", reason=f"audit{weird}")
    elif where == "alias":
        fields["operator"]["aliases"] = [f"MK{weird}1"]
    else:
        fields["operator"]["id"] = weird + fields["operator"]["id"]
    body = draw(st.sampled_from([fields, {"licences": [{"certificate": "MKAEOF000777", **fields}]},
                                 {"operator_ids": [fields["operator"]["id"], weird], "nonce": weird}]))
    text = json.dumps(body)
    if draw(st.booleans()):  # a lone surrogate, escaped, somewhere a string is
        text = text.replace('"MK', '"\\ud800MK', 1) if draw(st.booleans()) else text.replace("DOOEL", "\\udfff")
    return text.encode()


@st.composite
def huge_arrays(draw) -> bytes:
    count = draw(st.integers(5_001, 200_000))
    item = draw(st.sampled_from(['"MK4030000375897"', "1", "null", "{}", '"\\u202e"', "[]"]))
    member = draw(st.sampled_from(["operator_ids", "licences", "statement"]))
    return f'{{"{member}": [{",".join([item] * count)}]}}'.encode()


@st.composite
def odd_encodings(draw) -> bytes:
    text = json.dumps(draw(st.sampled_from([licence_fields("MK", 777), {"operator_ids": ["MK1"]}])))
    kind = draw(st.sampled_from(["utf-16", "utf-32", "bom", "duplicate", "nan", "big"]))
    if kind in ("utf-16", "utf-32"):
        return text.encode(kind)
    if kind == "bom":
        return b"\xef\xbb\xbf" + text.encode()
    if kind == "duplicate":
        return text.replace("{", '{"type": "AEOC", ', 1).encode()
    return text.replace("}", ', "x": ' + ("NaN" if kind == "nan" else "9" * 400) + "}", 1).encode()


HOSTILE_BODIES = deep_nesting() | spoofed_fields() | huge_arrays() | odd_encodings()


@pytest.mark.slow
@pytest.mark.parametrize(("method", "path", "role"), BODY_OPERATIONS)
@given(body=HOSTILE_BODIES)
@fuzz_settings
def test_hostile_bodies_are_refused_plainly_and_change_nothing(world, method, path, role, body):
    size = world.log_size()
    response = world.client.open(path, method=method, data=body, content_type="application/json",
                                 headers=world.headers("MK", role))
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    if response.status_code >= 400:
        assert response.mimetype == "application/problem+json"
        problem = response.get_json()
        assert problem["status"] == response.status_code
        if response.status_code == 400:
            assert problem["errors"] and all(problem["errors"].values()), problem
        assert world.log_size() == size


PAGES = ["/", "/check", "/check?operator_id=MK4030000375897&certificate=MKAEOF000123",
         "/certificate/MKAEOF000123?operator=MK4030000375897", "/evidence"]
PAGE_OWN = {"web.index": set(), "web.check": {"operator_id", "certificate"}, "web.certificate": {"operator"},
            "web.evidence_page": set()}
QUERY_NAMES = st.sampled_from(["endpoint", "_method", "_external", "_scheme", "_anchor", "values", "v", "lang",
                               "operator_id", "certificate", "operator", "file", "document"]) | st.text(max_size=12)
QUERY_VALUES = st.sampled_from(["POST", "1", "javascript", "https", "en", "xx", "//evil.example", "#x"]) \
    | st.text(st.characters(codec="utf-8") | st.sampled_from(SPOOFING), max_size=40)


@pytest.mark.slow
@given(path=st.sampled_from(PAGES), query=st.lists(st.tuples(QUERY_NAMES, QUERY_VALUES), max_size=6),
       post=st.booleans())
@fuzz_settings
def test_pages_take_any_query_parameters_without_a_500(world, path, query, post):
    separator = "&" if "?" in path else "?"
    url = path + (separator + urlencode(query) if query else "")
    response = world.client.post(url, data={"document": ""}) if post and path == "/evidence" else \
        world.client.get(url)
    assert response.status_code < 500 and response.mimetype == "text/html", (url, response.status_code)
    endpoint = world.app.url_map.bind("localhost").match(urlsplit(path).path)[0]
    for link in re.findall(r'<a href="([^"]*)" lang="[^"]+" hreflang=', response.get_data(as_text=True)):
        parts = urlsplit(html.unescape(link))
        assert not parts.scheme and not parts.netloc and not parts.fragment, link
        assert set(dict(parse_qsl(parts.query))) <= PAGE_OWN[endpoint] | {"lang"}, link
