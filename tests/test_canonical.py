"""The fast canonical JSON path writes exactly what the rfc8785 reference writes, or defers to it."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.crypto import jws, keys
from registry.crypto.canonical import _fast_path_applies, canonical_json, canonical_json_typed
from registry.domain.agreement import AgreementVersion
from registry.domain.recognition import Result, licence_json
from registry.services import log

# Any text, lone surrogates and control characters included.
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=20)
SCALARS = st.none() | st.booleans() | st.integers(min_value=-(2**60), max_value=2**60) | st.floats() | TEXT
KEYS = st.text(st.characters(codec=None, exclude_categories=()), max_size=8) | st.sampled_from(
    ["a", "b", "aa", "\ue000", "\U0001f600", "\x7f", "Z", "_"])
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=5) | st.tuples(children, children)
    | st.dictionaries(KEYS, children, max_size=6),
    max_leaves=40,
)


def _reference(value):
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError) as exc:  # the reference raises both
        return type(exc)


def _outcome(encode, value):
    try:
        return encode(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError) as exc:  # the reference raises both
        return type(exc)


def _ours(value):
    return _outcome(canonical_json, value)


class _Key(str):
    def __lt__(self, other):  # a subclass may order itself differently: left to the reference
        return not str.__lt__(self, other)


@settings(max_examples=400, deadline=None)
@given(JSON_VALUES)
def test_any_json_value_matches_the_reference(value):
    assert _ours(value) == _reference(value)


DATES = st.dates(min_value=date(1000, 1, 1)).map(lambda d: d.isoformat())
MOMENTS = st.datetimes(min_value=datetime(1000, 1, 1), timezones=st.just(UTC))
TIMES = MOMENTS.map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ"))
NAMES = st.text(max_size=40)
IDS = st.from_regex(r"[A-Z]{2}[0-9A-Z]{1,15}", fullmatch=True)


@st.composite
def licence_payloads(draw):
    """The shape of a licence statement's payload, with arbitrary text in every free field."""
    address = draw(st.none() | st.fixed_dictionaries({
        "street": st.none() | NAMES, "city": st.none() | NAMES, "postcode": st.none() | NAMES,
        "country": st.none() | st.sampled_from(["MK", "RS"])}))
    return {
        "certificate": draw(IDS), "party": draw(st.sampled_from(["AL", "BA", "MD", "ME", "MK", "RS", "XK"])),
        "version": draw(st.integers(1, 2**31)),
        "operator": {"id": draw(IDS), "name": draw(NAMES), "aliases": draw(st.lists(IDS, max_size=3)),
                     "address": address},
        "type": draw(st.sampled_from(["AEOC", "AEOS", "AEOF"])),
        "status": draw(st.sampled_from(["active", "suspended", "revoked", "annulled"])),
        "suspended_scope": draw(st.none() | st.sampled_from(["AEOC", "AEOS"])),
        "consent": {"partners": draw(st.booleans()), "public": draw(st.booleans())},
        "valid_from": draw(DATES), "valid_until": draw(st.none() | DATES),
        "effective_at": draw(TIMES), "reason": draw(st.none() | NAMES),
    }


@st.composite
def answers(draw):
    """The shape of a verification answer, with results drawn from licence payloads."""
    results = []
    for payload in draw(st.lists(licence_payloads(), max_size=4)):
        version = _version(payload)
        result = Result(payload["operator"]["id"], draw(st.sampled_from(["recognised", "no_agreement"])),
                        None, version, (version,))
        results.append(result.as_json(include_statements=draw(st.booleans())))
    return {"verifier": "AL", "at": draw(TIMES), "nonce": draw(st.none() | st.text(max_size=128)),
            "produced_at": draw(TIMES), "next_update": draw(TIMES),
            "checkpoint": {"tree_size": draw(st.integers(0, 2**40)), "root_hash": "AAAA"}, "results": results}


def _version(payload):
    from registry.domain.licence import LicenceVersion

    return LicenceVersion.from_payload(payload, log_index=7, logged_at=datetime(2026, 1, 1, tzinfo=UTC),
                                       kid="k", statement="a.b.c")


@settings(max_examples=100, deadline=None)
@given(licence_payloads())
def test_licence_payloads_match_the_reference(payload):
    assert canonical_json(payload) == rfc8785.dumps(payload)
    assert canonical_json(licence_json(_version(payload))) == rfc8785.dumps(licence_json(_version(payload)))


@settings(max_examples=50, deadline=None)
@given(answers())
def test_verification_answers_match_the_reference(answer):
    assert canonical_json(answer) == rfc8785.dumps(answer)
    assert canonical_json_typed(answer) == rfc8785.dumps(answer)


# What canonical_json_typed's callers vouch for: no floats, no non-ASCII keys.
TYPED_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**60), max_value=2**60) | TEXT,
    lambda children: st.lists(children, max_size=5) | st.tuples(children, children)
    | st.dictionaries(st.text(st.characters(max_codepoint=127), max_size=8), children, max_size=6),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(TYPED_VALUES)
def test_typed_values_match_the_reference(value):
    assert _outcome(canonical_json_typed, value) == _reference(value)


@pytest.mark.parametrize("value", [
    {"a": _Key("x")}, {_Key("b"): 1, _Key("a"): 2}, [date(2026, 1, 1)], [2**53], [-(2**53)], {"a": {1, 2}},
    [b"x"], {1: 2}, "\ud800", [True.__class__(1)],
])
def test_what_the_typed_path_leaves_to_the_reference(value):
    assert _outcome(canonical_json_typed, value) == _reference(value)


def test_licence_and_agreement_versions_refuse_fields_an_answer_could_not_show_as_is():
    payload = {"certificate": "MKAEOF1", "party": "MK", "version": 1, "type": "AEOF", "status": "active",
               "valid_from": "2026-01-01", "operator": {"id": "MK4030000375897", "name": "Firm"}}
    assert _version(payload).version == 1
    for field, value in (("version", 1.0), ("version", True), ("status", None), ("suspended_scope", 1)):
        with pytest.raises(ValueError, match="not of its JSON type"):
            _version({**payload, field: value})
    with pytest.raises(ValueError, match="not of its JSON type"):
        _version({**payload, "operator": {"id": "MK4030000375897", "name": 1.5}})
    agreement = {"id": "A1", "version": 1, "title": "t", "status": "in_force", "in_force_from": "2026-01-01",
                 "recognition": [{"verifier": "AL", "issuer": "MK", "types": ["AEOC"]}], "benefits": ["b"]}
    AgreementVersion.from_payload(agreement, log_index=1, logged_at=datetime(2026, 1, 1, tzinfo=UTC))
    for changed in ({"benefits": [1.5]}, {"recognition": [{"verifier": "AL", "issuer": "MK", "types": [1]}]}):
        with pytest.raises(ValueError, match="must be strings"):
            AgreementVersion.from_payload({**agreement, **changed}, log_index=1,
                                          logged_at=datetime(2026, 1, 1, tzinfo=UTC))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["licence", "party_key", "agreement"]), st.none() | st.sampled_from(["MK", "RS"]), IDS,
       st.integers(0, 2**31), NAMES, MOMENTS)
def test_log_leaves_match_the_reference(kind, party, subject, version, statement, logged_at):
    entry = log.NewEntry(kind, party, subject, version, "kid", statement)
    leaf = log.leaf_for(entry, logged_at)
    assert leaf.encode() == rfc8785.dumps(json.loads(leaf))


@pytest.mark.parametrize("value", [
    1.5, 2**53, -(2**53), {1: "x"}, {"\U0001f600": 1, "\ue000": 2}, "\ud800", True.__class__(1),
    {_Key("a"): 1, _Key("b"): 2}, {}, [], {"a": {}},
])
def test_what_the_fast_path_leaves_to_the_reference(value):
    assert _ours(value) == _reference(value)


def test_the_fast_path_takes_the_usual_payloads():
    assert _fast_path_applies({"a": [1, "x", None, True, {"b": ("c",)}]})
    assert not _fast_path_applies({"a": 1.0})
    assert not _fast_path_applies({"é": 1})


def test_signed_payload_is_the_canonical_form():
    key = keys.generate()
    payload = {"z": "ž\n", "a": [1, None]}
    text = jws.sign(payload, key, jws.TYP_AGREEMENT)
    assert jws.open_envelope(text, jws.TYP_AGREEMENT).payload_bytes == rfc8785.dumps(payload)
