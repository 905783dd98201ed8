"""C2SP tlog-cosignature, ``cosignature/v1``: a witness's timestamped Ed25519 signature on a checkpoint.

A cosignature is a signed-note signature line. Its key ID is
SHA-256(name || 0x0A || 0x04 || public key)[:4] (signature type 0x04, so a
witness key never passes for a log key of the same name), and its signature
is the 8-byte big-endian POSIX timestamp followed by the Ed25519 signature of

    cosignature/v1
    time <timestamp>
    <the whole checkpoint text, extension lines included>

The message does not name the cosigner, so one key must serve one cosigner
only. Spec: https://c2sp.org/tlog-cosignature; the ML-DSA-44 type it also
defines is not implemented (Ed25519 is what the witness network uses).
"""

from __future__ import annotations

from . import note

ALG_COSIGNATURE_V1 = 0x04
HEADER = "cosignature/v1"
MAX_TIMESTAMP = (1 << 63) - 1
_TIMESTAMP_SIZE = 8
_SIGNATURE_SIZE = 64


def signed_message(text: str, timestamp: int) -> bytes:
    """What the cosigner's key signs: the header line, the time line, then the checkpoint text."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise note.NoteError(f"cosignature timestamp {timestamp} is out of range")
    if not text.endswith("\n"):
        raise note.NoteError("note text must end with a newline")
    return f"{HEADER}\ntime {timestamp}\n{text}".encode()


def timestamp_of(signature: bytes) -> int:
    """The time a cosignature (the bytes after the key ID) says it was made, in POSIX seconds."""
    if len(signature) != _TIMESTAMP_SIZE + _SIGNATURE_SIZE:
        raise note.NoteError("not a cosignature/v1 signature: wrong length")
    return int.from_bytes(signature[:_TIMESTAMP_SIZE], "big")


class CosignatureVerifier(note.Verifier):
    """A witness's public key, as a note verifier of cosignature/v1 lines.

    Its verifier key is of type 0x04 (``name+hash+BA...``); ``from_vkey``
    also takes a plain Ed25519 (0x01) one of the same key, as Go's
    transparency-dev note package does, and the key ID is the 0x04 one either way.
    """

    ALG = ALG_COSIGNATURE_V1
    VKEY_ALGS = (ALG_COSIGNATURE_V1, note.ALG_ED25519)

    def verify(self, text: bytes, signature: bytes) -> bool:
        try:
            timestamp = timestamp_of(signature)
            message = signed_message(text.decode(), timestamp)
        except (note.NoteError, UnicodeDecodeError):
            return False
        return note.ed25519_verifies(self.key, signature[_TIMESTAMP_SIZE:], message)


class Cosigner(note.Signer):
    """A witness's private key; it never leaves the witness's key file.

    A log signer's name rules and key, with the cosignature's key ID and
    message; ``from_skey`` takes a plain Ed25519 signer key, as Go's
    transparency-dev note package does for a witness.
    """

    VERIFIER = CosignatureVerifier

    def sign(self, text: str, timestamp: int) -> str:
        """The cosignature line for a checkpoint's text at ``timestamp`` (POSIX seconds)."""
        signature = self.key.sign(signed_message(text, timestamp))
        return note.signature_line(self.name, self.verifier.hash, timestamp.to_bytes(8, "big") + signature)


def cosign(signed_note: str, cosigner: Cosigner, timestamp: int) -> str:
    """The note with ``cosigner``'s cosignature added (for tests and tools; a witness answers the line alone)."""
    text, _ = note.split_note(signed_note)
    return note.add_signatures(signed_note, cosigner.sign(text, timestamp))
