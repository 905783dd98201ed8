"""The registry signs and checks Ed25519 JWS without joserfc on hot paths; joserfc agrees byte for byte."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jws as joserfc_jws

from registry.crypto import jws, keys
from registry.crypto.canonical import canonical_json


@pytest.fixture(scope="module")
def key():
    return keys.generate()


@settings(max_examples=50, deadline=None)
@given(payload=st.dictionaries(st.text(max_size=5), st.text(max_size=20) | st.integers(-1000, 1000), max_size=5),
       typ=st.sampled_from([jws.TYP_LICENCE, jws.TYP_VERIFICATION, jws.TYP_AGREEMENT]))
def test_direct_signing_equals_joserfc(key, payload, typ):
    raw = canonical_json(payload)
    header = {"alg": jws.SIGNING_ALG, "kid": key.kid, "typ": typ}
    reference = joserfc_jws.serialize_compact(header, raw, key, algorithms=[jws.SIGNING_ALG])
    assert jws.sign_bytes(raw, key, typ) == reference
    assert jws.verify(reference, keys.public_only(key), typ) == payload


def test_signature_holds_agrees_with_verify_envelope(key):
    public = keys.public_only(key)
    raw = public.public_key.public_bytes_raw()
    text = jws.sign({"a": 1}, key, jws.TYP_AGREEMENT)
    envelope = jws.open_envelope(text, jws.TYP_AGREEMENT)
    jws.verify_envelope(envelope, public)
    assert jws.signature_holds(text, raw)
    header, payload, signature = text.split(".")
    other = jws.sign({"a": 2}, key, jws.TYP_AGREEMENT).split(".")[1]
    for forged in (f"{header}.{other}.{signature}", f"{header}.{payload}.{signature[:-4]}AAAA",
                   f"{header}.{payload}.{signature[:10]}"):
        opened = jws.open_envelope(forged, jws.TYP_AGREEMENT)
        with pytest.raises(jws.JWSError):
            jws.verify_envelope(opened, public)
        assert not jws.signature_holds(forged, raw)
    assert not jws.signature_holds(text, keys.generate().public_key.public_bytes_raw())


def test_only_ed25519_keys_sign():
    from joserfc.jwk import OKPKey

    ed448 = OKPKey.generate_key("Ed448", private=True)
    with pytest.raises(jws.JWSError):
        jws.sign_bytes(b"{}", ed448, jws.TYP_LICENCE)
