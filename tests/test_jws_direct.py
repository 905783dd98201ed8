"""The registry signs and checks Ed25519 JWS without joserfc on hot paths; joserfc agrees byte for byte."""

from __future__ import annotations

import json

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
    reference = joserfc_jws.serialize_compact(header, raw, key, registry=jws._REGISTRY)
    assert jws.sign_bytes(raw, key, typ) == reference
    assert jws.verify(reference, keys.public_only(key), typ) == payload


def test_verify_signature_agrees_with_verify_envelope(key):
    public = keys.public_only(key)
    text = jws.sign({"a": 1}, key, jws.TYP_AGREEMENT)
    envelope = jws.open_envelope(text, jws.TYP_AGREEMENT)
    jws.verify_envelope(envelope, public)
    jws.verify_signature(envelope, public.public_key)
    header, payload, signature = text.split(".")
    other = jws.sign({"a": 2}, key, jws.TYP_AGREEMENT).split(".")[1]
    for forged in (f"{header}.{other}.{signature}", f"{header}.{payload}.{signature[:-4]}AAAA",
                   f"{header}.{payload}.{signature[:10]}"):
        opened = jws.open_envelope(forged, jws.TYP_AGREEMENT)
        with pytest.raises(jws.JWSError):
            jws.verify_envelope(opened, public)
        with pytest.raises(jws.JWSError):
            jws.verify_signature(opened, public.public_key)
    stranger = keys.generate()
    with pytest.raises(jws.JWSError):
        jws.verify_signature(envelope, stranger.public_key)


def test_only_ed25519_keys_sign():
    from joserfc.jwk import OKPKey

    ed448 = OKPKey.generate_key("Ed448", private=True)
    with pytest.raises(jws.JWSError):
        jws.sign_bytes(b"{}", ed448, jws.TYP_LICENCE)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-2**70, 2**70) | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


def _same(a, b) -> bool:
    """Equal, with the same types all the way down (1 is not 1.0, NaN equals NaN)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@settings(max_examples=300, deadline=None)
@given(payload=st.dictionaries(st.text(max_size=6), _JSON, max_size=5), ascii_only=st.booleans())
def test_logged_payloads_read_as_the_standard_library_reads_them(payload, ascii_only):
    raw = json.dumps(payload, ensure_ascii=ascii_only).encode()
    statement = f"e30.{jws._b64url(raw).decode()}.c2ln"
    assert _same(jws.logged_payload(statement), json.loads(raw))


@pytest.mark.parametrize("raw", [b'{"v":18446744073709551616}', b'{"v":-9223372036854775809}', b'{"v":NaN}',
                                 b'{"v":1e400}', b'{"v":"\\ud800"}', b'{"v":1,"v":2}', b'{"v":1.0}'])
def test_logged_payloads_orjson_would_read_otherwise(raw):
    assert _same(jws.logged_payload(f"e30.{jws._b64url(raw).decode()}.c2ln"), json.loads(raw))
