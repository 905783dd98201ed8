"""C2SP signed notes (Ed25519) and tlog checkpoints.

No maintained Python library implements these formats, so they are written
here and held to the Go reference's test vector (tests/test_note.py).
Specs: https://c2sp.org/signed-note and https://c2sp.org/tlog-checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALG_ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "  # em dash and a space


class NoteError(ValueError):
    """A note or key string that is malformed or whose signature does not verify."""


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def key_hash(name: str, public: bytes) -> int:
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True)
class Verifier:
    name: str
    key: Ed25519PublicKey

    @property
    def hash(self) -> int:
        return key_hash(self.name, _raw_public(self.key))

    def vkey(self) -> str:
        """The verifier key string that partners configure, e.g. ``name+1a2b3c4d+AQ...``."""
        encoded = base64.b64encode(bytes([ALG_ED25519]) + _raw_public(self.key)).decode()
        return f"{self.name}+{self.hash:08x}+{encoded}"

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        name, _, rest = vkey.partition("+")
        hash_hex, _, encoded = rest.partition("+")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise NoteError("verifier key is not base64") from exc
        if not _valid_name(name) or len(hash_hex) != 8 or len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("malformed Ed25519 verifier key")
        verifier = cls(name, Ed25519PublicKey.from_public_bytes(raw[1:]))
        if f"{verifier.hash:08x}" != hash_hex.lower():
            raise NoteError("verifier key hash does not match its name and key")
        return verifier


@dataclass(frozen=True)
class Signer:
    name: str
    key: Ed25519PrivateKey

    def __post_init__(self):
        if not _valid_name(self.name):
            raise NoteError(f"invalid signer name {self.name!r}")

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.key.public_key())

    @classmethod
    def from_skey(cls, skey: str) -> Signer:
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
        if f"{signer.verifier.hash:08x}" != parts[3].lower():
            raise NoteError("signer key hash does not match its name and key")
        return signer


def sign(text: str, signer: Signer) -> str:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    signature = signer.key.sign(text.encode())
    blob = signer.verifier.hash.to_bytes(4, "big") + signature
    return f"{text}\n{SIGNATURE_PREFIX}{signer.name} {base64.b64encode(blob).decode()}\n"


def open_note(note: str, verifiers: list[Verifier]) -> tuple[str, list[Verifier]]:
    """Split a note into its text and the known verifiers whose signatures hold.

    Signatures by unknown keys are skipped, as the spec asks; a known key with a
    bad signature, or no known signature at all, is an error.
    """
    text, sep, block = note.rpartition("\n\n")
    if not sep or not note.endswith("\n"):
        raise NoteError("note has no signature block")
    text += "\n"
    known = {(v.name, v.hash): v for v in verifiers}
    verified = []
    for line in block[:-1].split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError("malformed signature line")
        name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise NoteError("signature is not base64") from exc
        if len(blob) < 5:
            raise NoteError("signature is too short")
        verifier = known.get((name, int.from_bytes(blob[:4], "big")))
        if verifier is None:
            continue
        try:
            verifier.key.verify(blob[4:], text.encode())
        except InvalidSignature as exc:
            raise NoteError(f"signature by {name} does not verify") from exc
        verified.append(verifier)
    if not verified:
        raise NoteError("no signature by a known key")
    return text, verified


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
