"""Finding private key material in text: PEM private keys, private JWKs, raw key bytes.

Used by the suite-wide guard in conftest.py (every response body and log
record of every test) and by the subprocess tests on what servers print.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives import serialization

PEM_PRIVATE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
# The "d" member of an Ed25519 JWK: 32 bytes, 43 base64url characters.
JWK_PRIVATE = re.compile(r"""["']d["']\s*:\s*["'][A-Za-z0-9_-]{43}["']""")


def raw_private_bytes(key) -> bytes:
    """The 32 secret bytes of an Ed25519 key (joserfc OKPKey or cryptography key)."""
    private = getattr(key, "private_key", key)
    return private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())


def key_files_bytes(keys_dir: Path) -> list[bytes]:
    found = []
    for path in sorted(keys_dir.glob("*.pem")):
        try:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except ValueError:
            continue  # a file a test broke on purpose holds no usable key
        found.append(raw_private_bytes(private))
    return found


def encodings(secret: bytes) -> list[str]:
    """The ways raw bytes would show up in text."""
    return [
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
        base64.b64encode(secret).decode().rstrip("="),
        secret.hex(),
        secret.hex().upper(),
        secret.decode("latin-1"),  # as a binary body reads (conftest decodes those byte for byte)
    ]


def find_leaks(text: str, secrets: Iterable[bytes] = ()) -> list[str]:
    """What in ``text`` looks like private key material; empty when nothing does."""
    leaks = []
    if PEM_PRIVATE.search(text):
        leaks.append("a PEM private key")
    if JWK_PRIVATE.search(text):
        leaks.append('a JWK "d" member')
    for secret in secrets:
        if any(encoded in text for encoded in encodings(secret)):
            leaks.append(f"the raw bytes of a private key ({encodings(secret)[0][:6]}…)")
    return leaks
