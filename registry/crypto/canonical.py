"""RFC 8785 canonical JSON, the bytes every signature and log leaf is made of."""

from __future__ import annotations

import json
from typing import Any

import rfc8785


def canonical_json(value: Any) -> bytes:
    return rfc8785.dumps(value)


def canonical_text(value: Any) -> str:
    return canonical_json(value).decode()


def is_canonical(raw: bytes) -> bool:
    try:
        return canonical_json(json.loads(raw)) == raw
    except (ValueError, rfc8785.CanonicalizationError):
        return False
