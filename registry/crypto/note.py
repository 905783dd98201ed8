"""C2SP signed notes (Ed25519) and tlog checkpoints.

No maintained Python library implements these formats, so they are written
here and held to the Go reference's test vector (tests/test_note.py).
Specs: https://c2sp.org/signed-note and https://c2sp.org/tlog-checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALG_ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "  # em dash and a space


class NoteError(ValueError):
    """A note or key string that is malformed or whose signature does not verify."""


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def key_hash(name: str, public: bytes, alg: int = ALG_ED25519) -> int:
    """The key ID of signed-note: SHA-256(name || 0x0A || signature type || public key)[:4]."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public).digest()
    return int.from_bytes(digest[:4], "big")


def vkey_text(name: str, alg: int, public: bytes) -> str:
    """A verifier key string ``name+hash+base64(type || key)``, as Go's note package writes them."""
    encoded = base64.b64encode(bytes([alg]) + public).decode()
    return f"{name}+{key_hash(name, public, alg):08x}+{encoded}"


def parse_vkey(vkey: str, algs: tuple[int, ...]) -> tuple[str, int, bytes]:
    """(name, signature type, 32-byte Ed25519 key) of a verifier key string of one of ``algs``.

    The hash in the string must be the one its own type gives: a key that
    names itself wrongly was copied wrongly, or is not what it claims.
    """
    name, _, rest = vkey.partition("+")
    hash_hex, _, encoded = rest.partition("+")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise NoteError("verifier key is not base64") from exc
    if not valid_name(name) or len(hash_hex) != 8 or len(raw) != 33 or raw[0] not in algs:
        raise NoteError("malformed Ed25519 verifier key")
    if f"{key_hash(name, raw[1:], raw[0]):08x}" != hash_hex.lower():
        raise NoteError("verifier key hash does not match its name and key")
    return name, raw[0], raw[1:]


@dataclass(frozen=True)
class Verifier:
    name: str
    key: Ed25519PublicKey

    ALG: ClassVar[int] = ALG_ED25519  # the signature type: its key ID and verifier key name it
    VKEY_ALGS: ClassVar[tuple[int, ...]] = (ALG_ED25519,)  # the verifier key types ``from_vkey`` takes

    @property
    def hash(self) -> int:
        return key_hash(self.name, raw_public(self.key), self.ALG)

    def vkey(self) -> str:
        """The verifier key string that partners configure, e.g. ``name+1a2b3c4d+AQ...``."""
        return vkey_text(self.name, self.ALG, raw_public(self.key))

    @classmethod
    def from_vkey(cls, vkey: str) -> Self:
        name, _, public = parse_vkey(vkey, cls.VKEY_ALGS)
        return cls(name, Ed25519PublicKey.from_public_bytes(public))

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (the bytes after the key hash) is this key's over the note text."""
        return ed25519_verifies(self.key, signature, text)


def ed25519_verifies(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class Signer:
    name: str
    key: Ed25519PrivateKey

    VERIFIER: ClassVar[type[Verifier]] = Verifier

    def __post_init__(self):
        if not valid_name(self.name):
            raise NoteError(f"invalid signer name {self.name!r}")

    @property
    def verifier(self) -> Verifier:
        return self.VERIFIER(self.name, self.key.public_key())

    @classmethod
    def from_skey(cls, skey: str) -> Self:
        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("malformed signer key")
        try:
            raw = base64.b64decode(parts[4], validate=True)
        except binascii.Error as exc:
            raise NoteError("signer key is not base64") from exc
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("signer key is not an Ed25519 key")
        signer = cls(parts[2], Ed25519PrivateKey.from_private_bytes(raw[1:]))
        # The hash an skey carries is the plain Ed25519 one, also when a subclass signs another type.
        if f"{key_hash(signer.name, raw_public(signer.key.public_key())):08x}" != parts[3].lower():
            raise NoteError("signer key hash does not match its name and key")
        return signer


def signature_line(name: str, key_id: int, signature: bytes) -> str:
    """One signature line: em dash, space, key name, space, base64(key ID || signature), newline."""
    return f"{SIGNATURE_PREFIX}{name} {base64.b64encode(key_id.to_bytes(4, 'big') + signature).decode()}\n"


def sign(text: str, signer: Signer) -> str:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    return f"{text}\n{signature_line(signer.name, signer.verifier.hash, signer.key.sign(text.encode()))}"


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: int
    signature: bytes  # what follows the key ID


def _parse_signature(line: str) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteError("malformed signature line")
    name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not valid_name(name):
        raise NoteError("malformed signature line")
    try:
        blob = base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise NoteError("signature is not base64") from exc
    if len(blob) < 5:
        raise NoteError("signature is too short")
    return NoteSignature(name, int.from_bytes(blob[:4], "big"), blob[4:])


def split_note(note: str) -> tuple[str, list[NoteSignature]]:
    """A note's text (with its final newline) and its signatures, checked for form only.

    The text ends at the note's last blank line. The spec forbids control
    characters other than newline anywhere in a note: a note with a carriage
    return could read differently to two verifiers.
    """
    text, sep, block = note.rpartition("\n\n")
    if not sep or not note.endswith("\n"):
        raise NoteError("note has no signature block")
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise NoteError("note holds a control character")
    return text + "\n", [_parse_signature(line) for line in block[:-1].split("\n")]


def verified_by(note: str, verifiers: Iterable[Verifier]) -> tuple[str, list[Verifier]]:
    """A note's text and those of ``verifiers`` (log keys, cosigners: any ``Verifier``) whose signatures hold.

    Signatures by unknown keys are skipped, as the spec asks: a key is known
    by its name and key ID together. A known key whose signature fails is an
    error (the spec: clients SHOULD reject the whole note). No known
    signature at all is not an error here; the caller decides how many it needs.
    """
    text, signatures = split_note(note)
    known = {(v.name, v.hash): v for v in verifiers}
    verified: list[Verifier] = []
    for signature in signatures:
        verifier = known.get((signature.name, signature.key_id))
        if verifier is None:
            continue
        if not verifier.verify(text.encode(), signature.signature):
            raise NoteError(f"signature by {signature.name} does not verify")
        if verifier not in verified:
            verified.append(verifier)
    return text, verified


def open_note(note: str, verifiers: list[Verifier]) -> tuple[str, list[Verifier]]:
    """Split a note into its text and the known verifiers whose signatures hold.

    Signatures by unknown keys are skipped, as the spec asks; a known key with a
    bad signature, or no known signature at all, is an error.
    """
    text, verified = verified_by(note, verifiers)
    if not verified:
        raise NoteError("no signature by a known key")
    return text, verified


def add_signatures(note: str, lines: str) -> str:
    """The signed ``note`` with the signature ``lines`` (e.g. a witness's answer) added.

    A line by a key (name and key ID) that already signed the note is left
    out, so that adding a witness's answer twice changes nothing. Nothing is
    verified here: check the lines with ``verified_by`` first.
    """
    if not lines.endswith("\n"):
        raise NoteError("signature lines must end with a newline")
    present = {(s.name, s.key_id) for s in split_note(note)[1]}
    added = []
    for line in lines[:-1].split("\n"):
        signature = _parse_signature(line)
        if (signature.name, signature.key_id) not in present:
            present.add((signature.name, signature.key_id))
            added.append(line + "\n")
    extended = note + "".join(added)
    split_note(extended)  # the lines may not bring what a note must not hold
    return extended


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    tree_size: int
    root_hash: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.tree_size}\n{base64.b64encode(self.root_hash).decode()}\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("checkpoint needs origin, size and root hash lines")
        origin, size, root = lines[0], lines[1], lines[2]
        if not origin or not size.isdigit() or (size != "0" and size.startswith("0")):
            raise NoteError("malformed checkpoint origin or size")
        try:
            root_hash = base64.b64decode(root, validate=True)
        except binascii.Error as exc:
            raise NoteError("checkpoint root hash is not base64") from exc
        if len(root_hash) != 32:
            raise NoteError("checkpoint root hash is not 32 bytes")
        return cls(origin, int(size), root_hash)


def open_checkpoint(note: str, verifier: Verifier, origin: str | None = None) -> Checkpoint:
    text, _ = open_note(note, [verifier])
    checkpoint = Checkpoint.parse(text)
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"checkpoint origin {checkpoint.origin!r} is not {origin!r}")
    return checkpoint
