"""Compact JWS with Ed25519 keys over canonical JSON (RFC 7515, RFC 8037, RFC 9864).

joserfc does the signing and verifying; this module pins what the registry
accepts: only Ed25519 keys, only the ``Ed25519`` algorithm (and, on input, the
deprecated ``EdDSA`` that older libraries still emit), a ``typ`` per kind of
statement, a ``kid`` that is the key's RFC 7638 thumbprint, and a payload that
is a JSON object.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from joserfc import jws as joserfc_jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwa import EdDSAAlgorithm
from joserfc.jwk import OKPKey
from joserfc.jws import JWSRegistry

from .canonical import canonical_json

SIGNING_ALG = "Ed25519"
ACCEPTED_ALGS = frozenset({"Ed25519", "EdDSA"})

TYP_LICENCE = "aeo-licence+jws"
TYP_VERIFICATION = "aeo-verification+jws"
TYP_SNAPSHOT = "aeo-snapshot+jws"
TYP_AGREEMENT = "aeo-agreement+jws"
TYP_PARTY_KEY = "aeo-party-key+jws"

# Header members whose meaning would change how the signature is checked; a
# verifier that does not act on them must refuse them (RFC 7515 4.1.11).
_REFUSED_HEADER_MEMBERS = ("crit", "b64", "jku", "jwk", "x5u", "x5c")


class _LegacyEdDSA(EdDSAAlgorithm):
    """RFC 9864 deprecates ``EdDSA``; the API still accepts it from older libraries.

    Accepting it is policy here, so joserfc's per-call warning is only noise.
    """

    security_warning = None


class _Registry(JWSRegistry):
    algorithms: ClassVar = {"Ed25519": JWSRegistry.algorithms["Ed25519"], "EdDSA": _LegacyEdDSA()}
    # joserfc refuses payloads over 128,000 bytes by default, a guard for
    # tokens. The registry signs answers of 5,000 licences and snapshots of a
    # million, and must verify all of them; what it is handed is bounded
    # before it gets here (request bodies, the statement schema, the files
    # an operator chooses to check).
    max_payload_length: ClassVar[int] = 1 << 40


# Unknown header members are ignored, as RFC 7515 asks of members not listed
# in "crit" (refused above); the signature covers them anyway.
_REGISTRY = _Registry(algorithms=sorted(ACCEPTED_ALGS), strict_check_header=False)


class JWSError(ValueError):
    """A statement that is malformed, of the wrong kind, or whose signature fails."""


@dataclass(frozen=True)
class Envelope:
    """A compact JWS split open but not yet verified."""

    text: str
    header: dict[str, Any]
    payload_bytes: bytes

    @property
    def kid(self) -> str:
        return self.header["kid"]

    @property
    def alg(self) -> str:
        return self.header["alg"]

    def payload(self) -> dict[str, Any]:
        try:
            value = json.loads(self.payload_bytes)
        except ValueError as exc:
            raise JWSError("payload is not JSON") from exc
        if not isinstance(value, dict):
            raise JWSError("payload is not a JSON object")
        return value


def _b64url_decode(part: str) -> bytes:
    if "=" in part:
        raise JWSError("base64url must not be padded")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError) as exc:
        raise JWSError("not base64url") from exc


def logged_payload(text: str) -> dict[str, Any]:
    """The payload of a statement that was verified when it was logged; not checked again here."""
    raw = _b64url_decode(text.split(".")[1])
    try:
        # orjson reads a licence payload much faster than json: this runs
        # for every version a batch answer looks at, and for every entry audited.
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)  # what orjson refuses (a lone surrogate, NaN): read as it was when logged


def open_envelope(text: str, typ: str) -> Envelope:
    """Parse a compact JWS and check its header, without checking the signature."""
    if not isinstance(text, str) or text.count(".") != 2:
        raise JWSError("not a compact JWS (three base64url parts)")
    header_part, payload_part, signature_part = text.split(".")
    if not header_part or not signature_part:
        raise JWSError("not a compact JWS (three base64url parts)")
    try:
        header = json.loads(_b64url_decode(header_part))
    except ValueError as exc:
        raise JWSError("protected header is not JSON") from exc
    if not isinstance(header, dict):
        raise JWSError("protected header is not a JSON object")
    alg = header.get("alg")
    if alg not in ACCEPTED_ALGS:
        raise JWSError(f"alg {alg!r} is not accepted; use Ed25519")
    refused = [member for member in _REFUSED_HEADER_MEMBERS if member in header]
    if refused:
        raise JWSError(f"header member {refused[0]!r} is not accepted")
    if header.get("typ") != typ:
        raise JWSError(f"typ must be {typ!r}")
    if not isinstance(header.get("kid"), str) or not header["kid"]:
        raise JWSError("header has no kid")
    return Envelope(text, header, _b64url_decode(payload_part))


def verify_envelope(envelope: Envelope, key: OKPKey) -> None:
    if key.key_type != "OKP" or key.curve_name != "Ed25519":
        raise JWSError("only Ed25519 keys verify statements")
    try:
        joserfc_jws.deserialize_compact(envelope.text, key, registry=_REGISTRY)
    except BadSignatureError as exc:
        raise JWSError("signature does not verify") from exc
    except JoseError as exc:
        raise JWSError(f"statement refused: {exc.description or exc}") from exc
    except (ValueError, TypeError) as exc:
        raise JWSError("signature does not verify") from exc


def verify(text: str, key: OKPKey, typ: str) -> dict[str, Any]:
    """Check a compact JWS fully; returns its payload object."""
    envelope = open_envelope(text, typ)
    if envelope.kid != kid_of(key):
        raise JWSError("kid does not name the verifying key")
    verify_envelope(envelope, key)
    return envelope.payload()


def kid_of(key: OKPKey) -> str:
    """The RFC 7638 thumbprint; keys loaded through ``crypto.keys`` carry it already."""
    return key.kid or key.thumbprint()


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


@functools.lru_cache(maxsize=256)
def _header_segment(kid: str, typ: str) -> bytes:
    # Written as joserfc writes it (compact JSON, ASCII), so statements are byte-for-byte what it would sign.
    return _b64url(json.dumps({"alg": SIGNING_ALG, "kid": kid, "typ": typ}, separators=(",", ":")).encode())


def sign_bytes(payload: bytes, key: OKPKey, typ: str) -> str:
    """A compact JWS over ``payload``.

    Signed with the key's Ed25519 private key directly rather than through
    joserfc, whose per-call checks cost more than the signature itself on the
    verify and bulk-publishing paths; Ed25519 is deterministic, so the output
    is identical (tests/test_interop_jose.py checks it against joserfc).
    """
    if key.key_type != "OKP" or key.curve_name != "Ed25519":
        raise JWSError("only Ed25519 keys sign statements")
    signing_input = _header_segment(kid_of(key), typ) + b"." + _b64url(payload)
    signature = key.private_key.sign(signing_input)
    return (signing_input + b"." + _b64url(signature)).decode("ascii")


def _check_ed25519(text: str, public: Ed25519PublicKey) -> None:
    header_part, payload_part, signature_part = text.split(".")
    signature = _b64url_decode(signature_part)
    try:
        public.verify(signature, f"{header_part}.{payload_part}".encode("ascii"))
    except (InvalidSignature, ValueError, UnicodeEncodeError) as exc:
        raise JWSError("signature does not verify") from exc


def signature_holds(text: str, public_raw: bytes) -> bool:
    """Whether the Ed25519 signature of a compact JWS holds under a raw 32-byte public key.

    What ``verify_envelope`` checks of the signature, without joserfc's key
    objects, so that audit can verify cheaply and in worker processes.

    Only the signature: the caller opened the envelope (``open_envelope``)
    and checked its header and kid.
    """
    try:
        _check_ed25519(text, Ed25519PublicKey.from_public_bytes(public_raw))
    except (JWSError, ValueError):
        return False
    return True


def verify_many(items: list[tuple[str, bytes]]) -> list[bool]:
    """``signature_holds`` for each (JWS, raw public key): a unit of work for a process pool."""
    return [signature_holds(text, public_raw) for text, public_raw in items]


def sign(payload: dict[str, Any], key: OKPKey, typ: str) -> str:
    return sign_bytes(canonical_json(payload), key, typ)
