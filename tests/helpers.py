"""Test helpers: a registry with parties, tokens and keys, and licence bodies."""

from __future__ import annotations

import copy
import csv
from pathlib import Path
from typing import Any

from sqlalchemy import text

from registry.crypto import jws, keys, merkle
from registry.crypto.canonical import canonical_json
from registry.runtime import Runtime
from registry.services import demo, importer, parties, tokens
from registry.store.reads import Reader


def operator_id(party: str, serial: int = 1) -> str:
    return f"{party}{demo.national_number(party, serial)}"


# The parties, agreements and licences that verification tests work on (the ``world`` fixture).
MK_OP = f"MK{demo.national_number('MK', 1)}"
MK_ALIAS = f"MK{demo.national_number('MK', 77)}"
AL_OP = f"AL{demo.national_number('AL', 1)}"
AP5 = {"id": "CEFTA-AP5", "title": "CEFTA AP5", "status": "in_force", "in_force_from": "2021-01-01",
       "mutual": {"parties": ["AL", "MK", "RS"], "types": ["AEOS", "AEOF"]}, "benefits": ["priority"]}
RS_MK = {"id": "RS-MK", "title": "RS-MK protocol", "status": "in_force", "in_force_from": "2023-07-01",
         "mutual": {"parties": ["MK", "RS"], "types": ["AEOC", "AEOS", "AEOF"]},
         "benefits": ["priority", "green_lane"]}



def licence_fields(party: str = "MK", serial: int = 1, **changes: Any) -> dict[str, Any]:
    body = {
        "operator": {"id": operator_id(party, serial), "name": f"Operator {serial} of {party}", "aliases": [],
                     "address": {"street": "Partizanska 1", "city": "Skopje", "postcode": "1000", "country": party}},
        "type": "AEOF",
        "status": "active",
        "suspended_scope": None,
        "consent": {"partners": True, "public": True},
        "valid_from": "2024-03-01",
        "valid_until": "2027-02-28",
        "reason": None,
    }
    body.update(copy.deepcopy(changes))
    return body


def licence_payload(certificate: str, version: int, party: str = "MK", serial: int = 1, **changes) -> dict[str, Any]:
    return {"certificate": certificate, "party": party, "version": version,
            "effective_at": "2026-11-27T09:00:00Z", **licence_fields(party, serial, **changes)}


def import_row(n: int, party: str = "MK", **changes: Any) -> dict[str, str]:
    """One row of a `registry import` CSV: licence {party}AEOS{n:06d} of operator n."""
    return {"certificate": f"{party}AEOS{n:06d}", "operator_id": operator_id(party, n), "operator_name": f"Firm {n}",
            "aliases": "", "street": "", "city": "Skopje", "postcode": "", "country": party, "type": "AEOS",
            "status": "active", "suspended_scope": "", "consent_partners": "yes", "consent_public": "no",
            "valid_from": "2025-01-01", "valid_until": "2029-12-31", "effective_at": "", "reason": "", **changes}


def write_import_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=importer.COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


class Registry:
    """Drives a test app: parties, tokens, keys and requests."""

    def __init__(self, app, client, now):
        self.app = app
        self.client = client
        self.now = now
        self._tokens: dict[tuple[str, str], str] = {}
        self.own_keys: dict[str, Any] = {}

    @property
    def keyring(self):
        return Runtime.of(self.app).keyring

    def session(self):
        return Runtime.of(self.app).database.session()

    def add_party(self, code: str, hosted: bool = True, name: str | None = None):
        with self.session() as session:
            parties.add_party(session, self.keyring, code, name or f"Party {code}", f"Customs of {code}",
                              hosted_key=hosted, now=self.now())
        return self

    def own_key(self, code: str):
        """A key the party holds itself, enrolled by the administrator."""
        key = keys.generate()
        with self.session() as session:
            parties.enrol_key(session, self.keyring, code, keys.public_only(key), now=self.now())
        self.own_keys[code] = key
        return key

    def token(self, code: str, role: str = "authority") -> str:
        if (code, role) not in self._tokens:
            with self.session() as session:
                self._tokens[(code, role)] = tokens.issue(session, code, role, self.now())
        return self._tokens[(code, role)]

    def headers(self, code: str, role: str = "authority") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(code, role)}"}

    def put(self, certificate: str, body: dict[str, Any], code: str = "MK", role: str = "authority"):
        return self.client.put(f"/api/v1/licences/{certificate}", json=body, headers=self.headers(code, role))

    def batch(self, items: list[dict[str, Any]], code: str = "MK", role: str = "authority"):
        return self.client.post("/api/v1/licences:batch", json={"licences": items}, headers=self.headers(code, role))

    def log_size(self) -> int:
        from registry.services import log

        with self.session() as session:
            return log.tree_size(Reader.of(session))


def sign_licence(key, payload: dict[str, Any]) -> str:
    return jws.sign_bytes(canonical_json(payload), key, jws.TYP_LICENCE)


__all__ = ["AL_OP", "AP5", "MK_ALIAS", "MK_OP", "RS_MK", "Registry", "import_row", "licence_fields",
           "licence_payload", "operator_id", "rewrite_last_leaf", "sign_licence", "write_import_csv"]


def rewrite_last_leaf(app) -> bytes:
    """As a compromised operator could: change the last leaf, recompute every stored hash and the
    checkpoint table's root column (the signed note stays). Returns the new root."""
    engine = Runtime.of(app).database.engine
    with engine.begin() as connection:
        rows = connection.execute(text("SELECT idx, leaf FROM log_entry ORDER BY idx")).all()
        leaves = [leaf for _, leaf in rows]
        leaves[-1] = leaves[-1].replace('"version":1', '"version":7')
        connection.execute(text("UPDATE log_entry SET leaf = :leaf WHERE idx = :idx"),
                           {"leaf": leaves[-1], "idx": rows[-1][0]})
        frontier = merkle.Frontier(0, [])
        for leaf in leaves:
            for level, index, digest in frontier.append(merkle.leaf_hash(leaf.encode())):
                connection.execute(text("UPDATE log_node SET hash = :h WHERE level = :l AND idx = :i"),
                                   {"h": digest, "l": level, "i": index})
        connection.execute(text("UPDATE checkpoint SET root_hash = :r WHERE tree_size = :s"),
                           {"r": frontier.root(), "s": len(leaves)})
    return frontier.root()
