"""CSV bulk publishing with a party's hosted key (``registry import``).

Each chunk of rows is one all-or-nothing batch. Rows whose fields equal the
licence's current version publish nothing, so re-running an interrupted
import is safe: what landed is skipped, the rest is published.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from ..errors import InvalidInputError, RegistryError
from ..keyring import Keyring
from . import licences

COLUMNS = (
    "certificate", "operator_id", "operator_name", "aliases", "street", "city", "postcode", "country",
    "type", "status", "suspended_scope", "consent_partners", "consent_public", "valid_from", "valid_until",
    "effective_at", "reason",
)
REQUIRED = ("certificate", "operator_id", "operator_name", "type", "status", "consent_partners",
            "consent_public", "valid_from")
_TRUE, _FALSE = {"true", "yes", "1", "y"}, {"false", "no", "0", "n"}


@dataclass
class Summary:
    published: int = 0
    unchanged: int = 0
    tree_size: int = 0


def _flag(value: str) -> Any:
    lowered = value.strip().lower()
    return True if lowered in _TRUE else False if lowered in _FALSE else value


def row_to_body(row: Mapping[str, str]) -> dict[str, Any]:
    """One CSV row as the plain fields of a publish; blanks are absent values."""
    value = {k: (v or "").strip() or None for k, v in row.items()}
    address = {k: value.get(k) for k in ("street", "city", "postcode", "country")}
    body: dict[str, Any] = {
        "certificate": value.get("certificate"),
        "operator": {
            "id": value.get("operator_id"),
            "name": value.get("operator_name"),
            "aliases": [a for a in re.split(r"[;|]", value.get("aliases") or "") if a.strip()],
            "address": address if any(address.values()) else None,
        },
        "type": value.get("type"),
        "status": value.get("status"),
        "suspended_scope": value.get("suspended_scope"),
        "consent": {"partners": _flag(value.get("consent_partners") or ""),
                    "public": _flag(value.get("consent_public") or "")},
        "valid_from": value.get("valid_from"),
        "valid_until": value.get("valid_until"),
        "reason": value.get("reason"),
    }
    if value.get("effective_at"):
        body["effective_at"] = value["effective_at"]
    return body


def _check_columns(fieldnames: Iterable[str] | None) -> None:
    names = list(fieldnames or [])
    unknown = [n for n in names if n not in COLUMNS]
    missing = [n for n in REQUIRED if n not in names]
    if unknown or missing:
        errors = {**{f"columns.{n}": ["unknown column"] for n in unknown},
                  **{f"columns.{n}": ["required column is missing"] for n in missing}}
        raise InvalidInputError("the CSV header does not match the import columns", errors)


def import_csv(session: Session, keyring: Keyring, party: str, reader, now: Callable[[], datetime],
               *, chunk: int, committed: Callable[[int, int, Summary], None] | None = None) -> Summary:
    """Publish the rows chunk by chunk; ``committed(first_line, last_line, summary)`` after each commit."""
    _check_columns(reader.fieldnames)
    summary = Summary()
    batch: list[tuple[str, dict[str, Any]]] = []
    first_line = 2  # line 1 is the header

    def flush() -> None:
        nonlocal first_line
        if not batch:
            return
        try:
            results, summary.tree_size = licences.publish(session, keyring, party, batch, now(), batch=True)
        except RegistryError as exc:
            exc.errors = _by_line(exc.errors or {}, first_line)
            exc.detail = f"{exc.detail} (lines {first_line} to {first_line + len(batch) - 1}; " \
                         f"{summary.published} versions from earlier lines were published)"
            raise
        fresh = sum(1 for r in results if r.appended)
        summary.published += fresh
        summary.unchanged += len(results) - fresh
        if committed is not None:
            committed(first_line, first_line + len(batch) - 1, summary)
        first_line += len(batch)
        batch.clear()

    for row in reader:
        if None in row:
            raise InvalidInputError(f"line {first_line + len(batch)} has more fields than the header")
        batch.append(licences.split_certificate(row_to_body(row)))
        if len(batch) >= chunk:
            flush()
    flush()
    return summary


def _by_line(errors: Mapping[str, list[str]], first_line: int) -> dict[str, list[str]]:
    renamed = {}
    for path, messages in errors.items():
        parts = path.split(".")
        if len(parts) >= 2 and parts[0] == "licences" and parts[1].isdigit():
            line = f"line {first_line + int(parts[1])}"
            path = f"{line}: {'.'.join(parts[2:])}" if parts[2:] else line
        renamed[path] = messages
    return renamed
