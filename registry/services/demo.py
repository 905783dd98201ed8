"""Demo data: the seven CEFTA parties, two agreements, sample licences, tokens.

The licences cover what a walk-through needs to show: active ones of each
type, a suspension, an AEOF licence suspended in one part, one suspended and
reinstated, a revocation, a surrender, an annulment, an expired one, one not
yet valid, one without partner consent, and operators with former ids.
Dates are relative to today so the demo stays meaningful. Tax numbers carry
valid check digits.
"""

from __future__ import annotations

import json
import os
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from stdnum.iso7064 import mod_11_10
from stdnum.md import idno
from stdnum.me import pib as me_pib
from stdnum.mk import edb

from ..domain.timefmt import format_time
from ..keyring import Keyring
from ..store.models import Party
from . import agreements, licences, parties, tokens

PARTIES = (
    ("AL", "Albania", "General Directorate of Customs"),
    ("BA", "Bosnia and Herzegovina", "Indirect Taxation Authority"),
    ("MD", "Moldova", "Customs Service of the Republic of Moldova"),
    ("ME", "Montenegro", "Revenue and Customs Administration"),
    ("MK", "North Macedonia", "Customs Administration of the Republic of North Macedonia"),
    ("RS", "Serbia", "Customs Administration of Serbia"),
    ("XK", "Kosovo", "Kosovo Customs"),
)

AGREEMENTS = (
    {
        "id": "CEFTA-AP5",
        "title": "CEFTA Additional Protocol 5, Annex on mutual recognition of AEO programmes",
        "status": "in_force",
        "in_force_from": "2021-01-01",
        "in_force_until": None,
        "mutual": {"parties": [code for code, _, _ in PARTIES], "types": ["AEOS", "AEOF"]},
        "benefits": ["fewer_controls", "priority", "green_lane"],
    },
    {
        "id": "RS-MK-AEO-2023",
        "title": "Protocol between Serbia and North Macedonia on mutual recognition of AEO, all types",
        "status": "in_force",
        "in_force_from": "2023-07-01",
        "in_force_until": None,
        "mutual": {"parties": ["MK", "RS"], "types": ["AEOC", "AEOS", "AEOF"]},
        "benefits": ["fewer_controls", "priority", "green_lane", "simplified_guarantee", "joint_inspections"],
    },
)


def national_number(party: str, serial: int) -> str:
    """A tax number with a valid check digit where the party has a validator."""
    if party == "MK":
        body = f"40{serial:010d}"
        return body + edb.calc_check_digit(body)
    if party == "RS":
        body = f"1{serial:07d}"
        return body + mod_11_10.calc_check_digit(body)
    if party == "ME":
        body = f"02{serial:05d}"
        return body + me_pib.calc_check_digit(body)
    if party == "MD":
        body = f"10036{serial:07d}"
        return body + idno.calc_check_digit(body)
    if party == "AL":
        return f"L{serial:08d}{'ABCDEFGHJKLMNPRSTUVW'[serial % 20]}"
    if party == "BA":
        return f"42{serial:011d}"
    return f"81{serial:07d}"  # Kosovo fiscal number


OPERATORS = {
    "AL": [("Adriatik Freight Sh.p.k.", "Durrës"), ("Tirana Logistics Sh.p.k.", "Tirana"),
           ("Shkodra Transit Sh.a.", "Shkodër"), ("Vlora Port Services Sh.p.k.", "Vlorë")],
    "BA": [("Sarajevo Cargo d.o.o.", "Sarajevo"), ("Una Trans d.o.o.", "Bihać"),
           ("Neretva Logistika d.o.o.", "Mostar"), ("Drina Spedicija d.o.o.", "Zvornik")],
    "MD": [("Nistru Logistic SRL", "Chișinău"), ("Prut Transport SA", "Ungheni"),
           ("Codru Cargo SRL", "Bălți"), ("Bugeac Expres SRL", "Comrat")],
    "ME": [("Luka Bar Logistika d.o.o.", "Bar"), ("Lovćen Transport d.o.o.", "Cetinje"),
           ("Tara Cargo d.o.o.", "Podgorica"), ("Boka Shipping d.o.o.", "Kotor")],
    "MK": [("Vardar Logistics DOOEL", "Skopje"), ("Ohrid Trade DOO", "Ohrid"),
           ("Pelagonija Transport DOOEL", "Bitola"), ("Struma Spedicija DOO", "Strumica"),
           ("Kumanovo Freight DOOEL", "Kumanovo")],
    "RS": [("Dunav Logistika d.o.o.", "Novi Sad"), ("Morava Transport d.o.o.", "Kragujevac"),
           ("Beograd Cargo a.d.", "Beograd"), ("Nišava Spedicija d.o.o.", "Niš"),
           ("Sava Freight d.o.o.", "Šabac")],
    "XK": [("Dardania Transport L.L.C.", "Prishtinë"), ("Ibër Cargo Sh.p.k.", "Mitrovicë"),
           ("Sharr Logistics Sh.p.k.", "Prizren"), ("Drini Freight L.L.C.", "Pejë")],
}

# Every party's first operator holds a plain active AEOF licence; the others
# take the remaining stories in turn, so that every story appears somewhere.
STORIES = ("active-AEOF", "active-AEOS", "active-AEOC", "suspended", "reinstated",
           "aeof-part-suspended", "revoked", "no-consent", "expired", "not-yet-valid",
           "surrendered", "annulled", "alias")


def stories() -> dict[str, list[str]]:
    assigned, turn = {}, 0
    for code, _, _ in PARTIES:
        assigned[code] = [STORIES[0]]
        for _ in OPERATORS[code][1:]:
            assigned[code].append(STORIES[1 + turn % (len(STORIES) - 1)])
            turn += 1
    return assigned


def licence_versions(party: str, slot: int, story: str, today: date, now: datetime) -> list[dict[str, Any]]:
    """The versions of one demo licence, oldest first, as plain publish fields."""
    name, city = OPERATORS[party][slot]
    operator_id = f"{party}{national_number(party, 100 + slot)}"
    aliases = [f"{party}{national_number(party, 900 + slot)}"] if story == "alias" else []
    licence_type = {"active-AEOS": "AEOS", "active-AEOC": "AEOC", "expired": "AEOC"}.get(story, "AEOF")
    valid_from = today - timedelta(days=400 + slot * 30)
    base = {
        "operator": {"id": operator_id, "name": name, "aliases": aliases,
                     "address": {"street": f"Ulica {slot + 1}", "city": city, "postcode": None, "country": party}},
        "type": licence_type,
        "status": "active",
        "consent": {"partners": story != "no-consent", "public": slot % 2 == 0},
        "valid_from": valid_from.isoformat(),
        "valid_until": (valid_from + timedelta(days=5 * 365)).isoformat(),
        "reason": None,
        "effective_at": format_time(now - timedelta(days=300)),
    }
    if story == "expired":
        base["valid_until"] = (today - timedelta(days=20)).isoformat()
    if story == "not-yet-valid":
        base["valid_from"] = (today + timedelta(days=30)).isoformat()
    versions = [base]

    def then(days_ago: int, **changes) -> None:
        versions.append({**versions[-1], **changes, "effective_at": format_time(now - timedelta(days=days_ago))})

    if story == "suspended":
        then(10, status="suspended", reason="audit findings under review")
    elif story == "reinstated":
        then(120, status="suspended", reason="change of premises not notified")
        then(60, status="active", reason="premises re-inspected")
    elif story == "aeof-part-suspended":
        then(15, status="suspended", suspended_scope="AEOC", reason="customs simplification conditions unmet")
    elif story == "revoked":
        then(40, status="revoked", reason="serious infringement of customs rules")
    elif story == "surrendered":
        then(25, status="revoked", reason="surrendered")
    elif story == "annulled":
        then(5, status="annulled", reason="granted on incorrect information")
    return versions


def certificate_number(party: str, licence_type: str, slot: int) -> str:
    return f"{party}{licence_type}{1000 + slot:06d}"


def load(session: Session, keyring: Keyring, now: datetime, tokens_file: Path) -> str:
    if session.execute(select(Party.code).limit(1)).first() is not None:
        where = f"; tokens are in {tokens_file}" if tokens_file.exists() else ""
        return f"the registry has parties already: demo data not loaded again{where}"
    for code, name, authority in PARTIES:
        parties.add_party(session, keyring, code, name, authority, hosted_key=True, now=now)
    for agreement in AGREEMENTS:
        agreements.put(session, keyring, agreement, now)
    today = now.date()
    count = 0
    for code, story_list in stories().items():
        items = []
        for slot, story in enumerate(story_list):
            certificate = None
            for body in licence_versions(code, slot, story, today, now):
                certificate = certificate or certificate_number(code, body["type"], slot)
                items.append((certificate, body))
        # One batch per party; later versions of a licence follow its earlier ones in the batch.
        results, _ = licences.publish(session, keyring, code, items, now, batch=True)
        count += len(results)
    issued = {code: {role: tokens.issue(session, code, role, now, "demo") for role in tokens.ROLES}
              for code, _, _ in PARTIES}
    tokens_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(tokens_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(issued, handle, indent=2)
    lines = [f"demo loaded: {len(PARTIES)} parties, {len(AGREEMENTS)} agreements, {count} licence versions",
             f"tokens written to {tokens_file}:"]
    lines += [f"  {code} {role:<9} {token}" for code, roles in issued.items() for role, token in roles.items()]
    return "\n".join(lines)
