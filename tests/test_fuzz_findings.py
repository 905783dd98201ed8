"""What fuzzing found, pinned down as plain tests so it cannot come back."""

from __future__ import annotations

import base64
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.domain import identifiers
from registry.domain.timefmt import format_time, parse_moment

from .helpers import licence_fields, operator_id

MK_OP = operator_id("MK", 1)


def assert_field_error(response, field):
    assert response.status_code == 400, response.get_json()
    assert response.headers["Content-Type"] == "application/problem+json"
    assert field in response.get_json()["errors"], response.get_json()


@pytest.mark.parametrize("path", [
    "/api/v1/log/checkpoints?tree_size=7840810659867201325272360646868992",
    "/api/v1/log/entries?start=9223372036854775808",
    "/api/v1/log/proof/inclusion?index=0&tree_size=9223372036854775808",
    "/api/v1/log/proof/consistency?first=1&second=9223372036854775808",
])
def test_numbers_beyond_bigint_are_refused_not_a_500(mk, client, path):
    response = client.get(path)
    assert_field_error(response, re.search(r"[?&](\w+)=\d{19}", path).group(1))


def test_a_feed_position_beyond_bigint_is_refused(mk, client):
    response = client.get("/api/v1/feed?after=9487097724391378944", headers=mk.headers("MK", "customs"))
    assert_field_error(response, "after")


def test_largest_bigint_is_still_a_plain_answer(mk, client):
    assert client.get("/api/v1/log/checkpoints?tree_size=9223372036854775807").status_code == 404
    assert client.get("/api/v1/log/entries?start=9223372036854775807").get_json() == {"items": []}


def test_a_cursor_beyond_bigint_is_refused(mk, client):
    cursor = base64.urlsafe_b64encode(json.dumps({"after": 2**70}).encode()).decode().rstrip("=")
    response = client.get(f"/api/v1/licences?cursor={cursor}", headers=mk.headers("MK"))
    assert_field_error(response, "cursor")


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_times_outside_what_utc_can_hold_are_refused(mk, client, at):
    response = client.get(f"/api/v1/verify/{MK_OP}", query_string={"at": at}, headers=mk.headers("MK", "customs"))
    assert_field_error(response, "at")
    fields = licence_fields("MK", 2, effective_at=at)
    assert_field_error(mk.put("MKAEOF000002", fields), "effective_at")


def test_years_before_1000_are_written_with_four_digits():
    assert format_time(parse_moment("0057-09-18T09:22:45-02:58")) == "0057-09-18T12:20:45Z"


def test_an_early_at_comes_back_as_rfc3339(mk, client):
    response = client.get(f"/api/v1/verify/{MK_OP}", query_string={"at": "0057-09-18"},
                          headers=mk.headers("MK", "customs"))
    assert response.get_json()["verification"]["at"] == "0057-09-18T00:00:00Z"


@pytest.mark.parametrize("value", [0, 1, 1.0, "true", None])
def test_booleans_are_json_booleans_only(mk, client, value):
    response = client.post("/api/v1/verify:batch", json={"operator_ids": [MK_OP], "proofs": value},
                           headers=mk.headers("MK", "customs"))
    assert_field_error(response, "proofs")
    fields = licence_fields("MK", 2)
    fields["consent"]["partners"] = value
    assert_field_error(mk.put("MKAEOF000002", fields), "consent.partners")


def test_null_in_a_verify_batch_is_a_result_with_an_error_like_any_malformed_id(mk, client):
    response = client.post("/api/v1/verify:batch", json={"operator_ids": [None, MK_OP]},
                           headers=mk.headers("MK", "customs"))
    assert response.status_code == 200, response.get_json()
    first, second = response.get_json()["verification"]["results"]
    assert first["reason"] == "unknown_operator" and first["error"].startswith("operator_ids.0: ")
    assert second["recognised"] is True


@pytest.mark.parametrize("raw", ["MKß1", "MKAEOFﬁ1", "ＭＫ4030000375897", "MK４030000375897"])
def test_non_ascii_letters_are_not_transliterated_into_an_id(raw):
    # str.upper() turns "ß" into "SS" and "ﬁ" into "FI"; such input must be refused, not read as another id.
    with pytest.raises(identifiers.IdentifierError):
        identifiers.certificate(raw)


_ID_TEXT = st.text(alphabet=st.sampled_from("XKxk019AZaz -\t\u00a0ßﬁ_!"), max_size=70)


@settings(max_examples=300, derandomize=True, database=None)
@given(_ID_TEXT)
def test_published_patterns_accept_exactly_what_the_normaliser_accepts(raw):
    """The OpenAPI patterns are what clients code against; they must not drift from the parser."""
    def accepted(parse):
        try:
            parse(raw)
            return True
        except identifiers.IdentifierError:
            return False

    def documented(pattern):
        return len(raw) <= identifiers.MAX_RAW_LENGTH and bool(re.match(pattern, raw))

    assert documented(identifiers.CERTIFICATE_INPUT) == accepted(identifiers.certificate), raw
    if documented(identifiers.OPERATOR_ID_INPUT) != accepted(identifiers.operator_id):
        # Only a national check digit may refuse what the pattern allows.
        assert documented(identifiers.OPERATOR_ID_INPUT), raw
        assert identifiers.normalise(raw)[:2] in identifiers.NATIONAL_VALIDATORS, raw


def test_path_parameters_are_documented_with_their_patterns(client):
    spec = client.get("/openapi.json").get_json()
    parameters = {p["name"]: p for path in spec["paths"].values() for p in path.get("parameters", [])}
    assert parameters["certificate"]["schema"]["pattern"] == identifiers.CERTIFICATE_INPUT
    assert parameters["operator_id"]["schema"]["pattern"] == identifiers.OPERATOR_ID_INPUT
    assert parameters["code"]["schema"]["pattern"] == identifiers.PARTY_CODE.pattern
    items = spec["components"]["schemas"]["PublishBatch"]["properties"]["licences"]["items"]
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in items["oneOf"]} == {"BatchStatement", "BatchLicenceFields"}
    for name in ("BatchStatement", "BatchLicenceFields"):
        assert "certificate" in spec["components"]["schemas"][name]["required"]


@pytest.mark.parametrize(("path", "field"), [
    ("/api/v1/parties/M%00", "code"),
    ("/api/v1/parties/M%00/jwks.json", "code"),
    ("/api/v1/agreements/A%00B", "agreement_id"),
    ("/api/v1/log/entries?start=0&x%00=1", "x\x00"),
    ("/api/v1/public/check?certificate=MKAEOF000001&certificate=MK%00&operator_id=MK1", "certificate"),
])
def test_nul_characters_are_refused_before_they_reach_the_database(mk, client, path, field):
    # PostgreSQL refuses NUL in text even in a WHERE clause: this was a 500 there.
    assert_field_error(client.get(path), field)


def test_nul_characters_in_a_protected_path_are_refused_too(mk, client):
    response = client.get("/api/v1/licences/MK%00", headers=mk.headers("MK"))
    assert_field_error(response, "certificate")
