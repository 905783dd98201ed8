"""The keys folder: the registry's own keys and the parties' hosted keys.

Layout (a folder of mode 0700; all files PEM, mode 0600, never committed):

    registry-answer.pem       signs verification answers, snapshots, agreements
    registry-log.pem          signs log checkpoints (C2SP signed notes)
    party-<CODE>-<KID>.pem    a party's hosted signing key
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from joserfc.jwk import OKPKey

from .crypto import keys, note
from .crypto.keys import KeyFileError

__all__ = ["KeyFileError", "Keyring"]

ANSWER_FILE = "registry-answer.pem"
LOG_FILE = "registry-log.pem"


class Keyring:
    def __init__(self, keys_dir: Path, log_origin: str):
        self.keys_dir = keys_dir
        self.log_origin = log_origin
        self._cache: dict[str, OKPKey] = {}
        self._lock = threading.Lock()

    def _load(self, filename: str) -> OKPKey:
        with self._lock:
            key = self._cache.get(filename)
            if key is None:
                key = keys.read_private(self.keys_dir / filename)
                self._cache[filename] = key
            return key

    def forget(self) -> None:
        """Read every key file again on next use (after an operator replaced one)."""
        with self._lock:
            self._cache.clear()

    def ensure_registry_keys(self) -> list[str]:
        """Create the answer and log keys if missing, in a private folder; returns the files made.

        The folder is made 0700 even if it exists (a checkout makes it 0755):
        its file names alone say which parties' keys the registry holds.
        """
        keys.private_folder(self.keys_dir)
        created = []
        for filename in (ANSWER_FILE, LOG_FILE):
            path = self.keys_dir / filename
            if not path.exists():
                keys.write_private(path, keys.generate())
                created.append(filename)
        return created

    def check(self) -> None:
        """Raise KeyFileError unless the folder is private and both registry keys load."""
        keys.check_private_folder(self.keys_dir)
        self._load(ANSWER_FILE)
        self._load(LOG_FILE)

    @property
    def answer_key(self) -> OKPKey:
        return self._load(ANSWER_FILE)

    @property
    def log_key(self) -> OKPKey:
        return self._load(LOG_FILE)

    @property
    def log_signer(self) -> note.Signer:
        return note.Signer(self.log_origin, self.log_key.private_key)

    @property
    def log_verifier(self) -> note.Verifier:
        return self.log_signer.verifier

    def registry_jwks(self) -> dict[str, Any]:
        """The registry's public keys; ``aeo_use`` tells answers from log checkpoints."""
        return {
            "keys": [
                {**keys.public_jwk(self.answer_key), "use": "sig", "alg": "Ed25519", "aeo_use": "answers"},
                {**keys.public_jwk(self.log_key), "use": "sig", "alg": "Ed25519", "aeo_use": "log"},
            ]
        }

    def hosted_file(self, party: str, kid: str) -> str:
        return f"party-{party}-{kid}.pem"

    def create_hosted(self, party: str) -> OKPKey:
        keys.private_folder(self.keys_dir)
        key = keys.generate()
        keys.write_private(self.keys_dir / self.hosted_file(party, key.kid), key)
        return key

    def hosted_key(self, party: str, kid: str) -> OKPKey:
        return self._load(self.hosted_file(party, kid))
