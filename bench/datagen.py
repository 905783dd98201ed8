"""Realistic licences for the bulk-publishing benchmark, as CSV files for ``registry import``.

Licences are spread over the seven CEFTA parties by rough register size. Tax
numbers carry valid check digits (the registry rejects others). Some licences
are suspended (a third of those in one part only), some revoked, some expired,
some without partner consent, and some operators have a former id as alias.
Serials start above the demo's, so the demo's sample licences stay apart.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from registry.services.demo import national_number
from registry.services.importer import COLUMNS

# Share of the register per party. Montenegro's PIB has five digits of
# serial, so its share keeps 1,000,000 licences (and their aliases) in range.
WEIGHTS = {"RS": 0.31, "MK": 0.20, "BA": 0.15, "AL": 0.12, "MD": 0.10, "XK": 0.08, "ME": 0.04}
FIRST_SERIAL = 10_000
CITIES = {"AL": "Tirana", "BA": "Sarajevo", "MD": "Chișinău", "ME": "Podgorica", "MK": "Skopje",
          "RS": "Beograd", "XK": "Prishtinë"}


@dataclass
class Register:
    """What was generated: the CSV per party and ids to ask about."""

    files: dict[str, Path] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    known_ids: list[str] = field(default_factory=list)  # operator ids and aliases
    unknown_ids: list[str] = field(default_factory=list)  # well-formed, valid check digits, never published

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def split(n: int) -> dict[str, int]:
    counts = {party: int(n * weight) for party, weight in WEIGHTS.items()}
    counts["RS"] += n - sum(counts.values())
    return counts


def _row(rng: random.Random, party: str, i: int, count: int, today: date) -> dict[str, str]:
    operator_id = party + national_number(party, FIRST_SERIAL + i)
    aliases = party + national_number(party, FIRST_SERIAL + count + i) if rng.random() < 0.10 else ""
    licence_type = rng.choices(("AEOF", "AEOS", "AEOC"), (5, 3, 2))[0]
    roll = rng.random()
    status, scope, reason = "active", "", ""
    if roll < 0.08:
        status, reason = "suspended", "audit findings under review"
        if licence_type == "AEOF" and rng.random() < 0.33:
            scope = rng.choice(("AEOC", "AEOS"))
    elif roll < 0.12:
        status, reason = "revoked", rng.choice(("serious infringement of customs rules", "surrendered"))
    valid_from = today - timedelta(days=rng.randint(30, 2500))
    until = valid_from + timedelta(days=5 * 365) if rng.random() < 0.9 else None
    return {
        "certificate": f"{party}{licence_type}{i:08d}",
        "operator_id": operator_id,
        "operator_name": f"Operator {i} {party} d.o.o.",
        "aliases": aliases,
        "street": f"Ulica {rng.randint(1, 300)}",
        "city": CITIES[party],
        "postcode": f"{rng.randint(1000, 99999)}",
        "country": party,
        "type": licence_type,
        "status": status,
        "suspended_scope": scope,
        "consent_partners": "false" if rng.random() < 0.03 else "true",
        "consent_public": "true" if rng.random() < 0.5 else "false",
        "valid_from": valid_from.isoformat(),
        "valid_until": until.isoformat() if until else "",
        "effective_at": "",
        "reason": reason,
    }


def generate(n: int, folder: Path, today: date, seed: int = 9162) -> Register:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    register = Register()
    for party, count in split(n).items():
        path = folder / f"licences-{party}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            for i in range(count):
                row = _row(rng, party, i, count, today)
                writer.writerow(row)
                if i % 10 == 0:  # a sample is enough to ask about, and keeps memory flat at 1,000,000
                    register.known_ids.append(row["operator_id"])
                    if row["aliases"]:
                        register.known_ids.append(row["aliases"])
        register.files[party] = path
        register.counts[party] = count
        if party != "ME":  # its serials run out; other parties give plenty of unknown ids
            register.unknown_ids += [party + national_number(party, FIRST_SERIAL + 2 * count + j)
                                     for j in range(200)]
    return register


def sample(register: Register, size: int, unknown_share: float, rng: random.Random) -> list[str]:
    """``size`` ids, ``unknown_share`` of them unknown, in random order."""
    unknown = round(size * unknown_share)
    ids = rng.choices(register.known_ids, k=size - unknown) + rng.choices(register.unknown_ids, k=unknown)
    rng.shuffle(ids)
    return ids
