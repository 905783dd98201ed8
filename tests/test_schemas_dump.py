"""The hand-written licence_payload_json equals what LicencePayloadSchema dumps, for every loaded shape."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.services import statements as schemas
from registry.services.demo import national_number

PARTIES = ["AL", "BA", "MD", "ME", "MK", "RS", "XK"]
# Within every Text field's limit, and of characters it allows (schemas.REFUSED_TEXT_CATEGORIES).
TEXT = st.text(st.characters(exclude_categories=sorted(schemas.REFUSED_TEXT_CATEGORIES)), min_size=1, max_size=20)


@st.composite
def bodies(draw):
    party = draw(st.sampled_from(PARTIES))
    serials = draw(st.lists(st.integers(1, 99_999), min_size=1, max_size=4, unique=True))
    ids = [party + national_number(party, serial) for serial in serials]
    licence_type = draw(st.sampled_from(["AEOC", "AEOS", "AEOF"]))
    status = draw(st.sampled_from(["active", "suspended", "revoked", "annulled"]))
    scope = draw(st.none() | st.sampled_from(["AEOC", "AEOS"])) if (
        status == "suspended" and licence_type == "AEOF") else None
    address = draw(st.none() | st.fixed_dictionaries(
        {}, optional={"street": st.none() | TEXT, "city": st.none() | TEXT, "postcode": st.none() | TEXT,
                      "country": st.none() | st.sampled_from(PARTIES)}))
    body = {
        "certificate": f"{party}AEO{draw(st.integers(0, 10**9))}", "party": party,
        "version": draw(st.integers(1, 2**31)),
        "operator": {"id": ids[0], "name": draw(TEXT), "aliases": ids[1:], "address": address},
        "type": licence_type, "status": status, "suspended_scope": scope,
        "consent": {"partners": draw(st.booleans()), "public": draw(st.booleans())},
        "valid_from": "2024-03-01",
        "valid_until": draw(st.none() | st.sampled_from(["2024-03-01", "2030-12-31"])),
        "reason": draw(st.none() | TEXT),
    }
    for optional in ("suspended_scope", "valid_until", "reason"):
        if body[optional] is None and draw(st.booleans()):
            del body[optional]
    if not body["operator"]["aliases"] and draw(st.booleans()):
        del body["operator"]["aliases"]
    if draw(st.booleans()):
        moment = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                                   timezones=st.just(UTC)))
        body["effective_at"] = moment.isoformat().replace("+00:00", "Z")
    return body


@settings(max_examples=200, deadline=None)
@given(bodies())
def test_hand_written_dump_equals_the_schema(body):
    loaded = schemas.load(schemas.LicencePayloadSchema(), body)
    assert schemas.licence_payload_json(loaded) == schemas.LicencePayloadSchema().dump(loaded)


# --- load_licence_fields: the fast reading of plain input equals the schema's -------------

_NOT_FIELDS = ("certificate", "party", "version")
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2**40) | st.floats(allow_nan=False) | st.text(max_size=400)
    | st.sampled_from(["", "AEOC", "AEOF", "suspended", "MK", "MK4030000375897", "2024-02-30", "2024-03-01",
                       "2026-11-27T10:00:00Z", "2026-11-27T10:00:00+01:00"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6)


def _fields(body):
    return {k: v for k, v in body.items() if k not in _NOT_FIELDS}


def _schema_load(body):
    try:
        return schemas.load(schemas.LicenceFieldsSchema(), body)
    except schemas.InvalidInputError:
        return None


@st.composite
def mutated(draw):
    """A valid body with one value replaced, one key dropped or one key added, anywhere in it."""
    body = _fields(draw(bodies()))
    containers = [body, body["operator"], body["consent"]]
    if isinstance(body["operator"].get("address"), dict):
        containers.append(body["operator"]["address"])
    target = draw(st.sampled_from(containers))
    action = draw(st.sampled_from(["replace", "drop", "add"]))
    if action == "add" or not target:
        target[draw(st.text(max_size=10))] = draw(JSON_VALUES)
    elif action == "drop":
        del target[draw(st.sampled_from(sorted(target)))]
    else:
        target[draw(st.sampled_from(sorted(target)))] = draw(JSON_VALUES)
    return body


@settings(max_examples=300, deadline=None)
@given(bodies())
def test_fast_licence_fields_read_every_valid_body_as_the_schema_does(body):
    body = _fields(body)
    fast = schemas.plain_licence_fields(body)
    assert fast is not None, "plain valid input must not need the schema"
    assert fast == _schema_load(body)


@settings(max_examples=1500, deadline=None)
@given(mutated())
def test_fast_licence_fields_answer_only_where_the_schema_agrees(body):
    fast = schemas.plain_licence_fields(body)
    if fast is not None:
        assert fast == _schema_load(body)


def test_fast_licence_fields_leave_errors_to_the_schema():
    body = _fields({"operator": {"id": "MK4030000375897", "name": "x", "aliases": ["MK4030000375898"]},
                    "type": "AEOC", "status": "active", "consent": {"partners": True, "public": 1},
                    "valid_from": "2024-03-01"})
    with pytest.raises(schemas.InvalidInputError) as caught:
        schemas.load_licence_fields(body, "statement")
    assert set(caught.value.errors) == {"statement.operator.aliases.0", "statement.consent.public"}
