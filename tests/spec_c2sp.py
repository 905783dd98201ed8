"""C2SP formats checked as their specs are written, apart from ``registry.crypto``.

Tests check the registry's and the witness's output with these, so that a
mistake shared by a signer and its verifier in ``registry.crypto`` cannot
pass unseen.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def spec_verify(checkpoint_text: str, line: str, name: str, public: bytes) -> int:
    """The cosignature's timestamp if ``line`` is a valid cosignature/v1 by (name, public), else raises."""
    assert line.startswith("\u2014 ") and line.endswith("\n"), "a note signature line"
    line_name, encoded = line[2:-1].split(" ")
    assert line_name == name
    blob = base64.b64decode(encoded, validate=True)
    key_id = hashlib.sha256(name.encode() + b"\n" + b"\x04" + public).digest()[:4]
    assert blob[:4] == key_id, "key ID is SHA-256(name || 0x0A || 0x04 || key)[:4]"
    assert len(blob) == 4 + 8 + 64, "timestamped_signature: u64 timestamp, 64-byte Ed25519 signature"
    timestamp = int.from_bytes(blob[4:12], "big")
    assert timestamp <= 2**63 - 1
    message = b"cosignature/v1\n" + b"time " + str(timestamp).encode() + b"\n" + checkpoint_text.encode()
    Ed25519PublicKey.from_public_bytes(public).verify(blob[12:], message)
    return timestamp


def spec_cosigners(signed_note: str, witnesses: dict[str, bytes]) -> dict[str, int]:
    """The timestamps of the valid cosignatures in a whole note by ``witnesses`` (name: raw public key).

    The note's text ends at its last blank line (c2sp.org/signed-note); each
    of its signature lines by a witness named here must verify.
    """
    text, _, block = signed_note.rpartition("\n\n")
    found = {}
    for line in block.splitlines(keepends=True):
        name = line[2:].split(" ")[0]
        if name in witnesses:
            found[name] = spec_verify(text + "\n", line, name, witnesses[name])
    return found
