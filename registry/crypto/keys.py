"""Ed25519 key files and public JWKs.

Private keys live only in PEM files of mode 0600 under the keys folder; a
file readable by group or others is refused rather than used.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


class KeyFileError(ValueError):
    """A key file or key text that cannot be used."""


def _with_kid(key: OKPKey) -> OKPKey:
    # The kid is always the thumbprint, whatever a supplied JWK claimed.
    key.ensure_kid()
    return key


def generate() -> OKPKey:
    return _with_kid(OKPKey.generate_key("Ed25519", private=True))


def from_private(private: Ed25519PrivateKey) -> OKPKey:
    return _with_kid(OKPKey.import_key(private))


def from_public(public: Ed25519PublicKey) -> OKPKey:
    return _with_kid(OKPKey.import_key(public))


def public_jwk(key: OKPKey) -> dict[str, Any]:
    """The public JWK members that define the key (kty, crv, x) plus its kid."""
    members = key.as_dict(private=False)
    return {"kty": "OKP", "crv": "Ed25519", "x": members["x"], "kid": key.thumbprint()}


def public_from_jwk(jwk: Any) -> OKPKey:
    """An Ed25519 public key from a JWK object; private members are refused."""
    if not isinstance(jwk, dict):
        raise KeyFileError("a JWK must be a JSON object")
    if "d" in jwk:
        raise KeyFileError("this JWK holds a private key; give the public key only")
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or not isinstance(jwk.get("x"), str):
        raise KeyFileError("only Ed25519 keys (kty OKP, crv Ed25519) are accepted")
    try:
        return _with_kid(OKPKey.import_key({"kty": "OKP", "crv": "Ed25519", "x": jwk["x"]}))
    except (JoseError, ValueError, TypeError) as exc:
        raise KeyFileError("the JWK's x is not an Ed25519 public key") from exc


def public_from_text(text: str) -> OKPKey:
    """An Ed25519 public key from JWK JSON or a PEM SubjectPublicKeyInfo."""
    text = text.strip()
    if text.startswith("{"):
        try:
            return public_from_jwk(json.loads(text))
        except ValueError as exc:
            if isinstance(exc, KeyFileError):
                raise
            raise KeyFileError("not valid JSON") from exc
    if "PRIVATE KEY" in text:
        raise KeyFileError("this PEM holds a private key; give the public key only")
    try:
        public = serialization.load_pem_public_key(text.encode())
    except ValueError as exc:
        raise KeyFileError("neither a JWK nor a PEM public key") from exc
    if not isinstance(public, Ed25519PublicKey):
        raise KeyFileError("only Ed25519 keys are accepted")
    return from_public(public)


def public_only(key: OKPKey) -> OKPKey:
    return public_from_jwk(public_jwk(key))


def write_private(path: Path, key: OKPKey) -> None:
    """Write a new private key file, mode 0600; never overwrites."""
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # A folder made for it is private too; an existing one is the caller's to judge (keyring.Keyring).
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def private_folder(path: Path) -> None:
    """Make ``path`` a folder that only its owner can list or enter (0700), creating it if need be."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(PRIVATE_DIR_MODE)


def _check_private(path: Path, what: str, fix: str) -> None:
    """KeyFileError unless ``path`` exists and is closed to group and others."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise KeyFileError(f"{what} {path} is missing") from exc
    if stat.S_IMODE(mode) & 0o077:
        raise KeyFileError(f"{what} {path} is open to others; {fix} it")


def check_private_folder(path: Path) -> None:
    _check_private(path, "keys folder", "chmod 700")


def read_private(path: Path) -> OKPKey:
    _check_private(path, "key file", "chmod 600")
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as exc:
        raise KeyFileError(f"key file {path} is not a PEM private key") from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyFileError(f"key file {path} is not an Ed25519 key")
    return from_private(private)
