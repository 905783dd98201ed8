"""The hand-written licence_payload_json equals what LicencePayloadSchema dumps, for every loaded shape."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from registry import schemas
from registry.services.demo import national_number

PARTIES = ["AL", "BA", "MD", "ME", "MK", "RS", "XK"]
TEXT = st.text(min_size=1, max_size=20)  # within every Text field's limit


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
