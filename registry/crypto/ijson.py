"""Untrusted JSON, read as I-JSON (RFC 7493) with a bounded nesting depth.

Everything the registry reads from outside goes through ``loads``: request
bodies, the evidence page's documents, and the payloads of statements it is
asked to sign into the log for ever. A statement must be readable the same
way by every partner's parser (Node's ``JSON.parse``, Java's, Go's), so what
parsers disagree on is refused rather than guessed at:

- bytes that are not strict UTF-8, or that begin with a byte order mark
  (Python's ``json.loads`` on bytes would guess UTF-16 or UTF-32);
- duplicate member names at any depth (some parsers keep the first, most
  the last: ``"status":"revoked","status":"active"`` reads both ways);
- lone surrogates, also as ``\\ud800`` escapes (not Unicode; RFC 8785 and
  most encoders refuse them later, when it is too late to say why);
- NaN and Infinity (not JSON), integers beyond ±(2**53 - 1) and numbers a
  double cannot hold (silently rounded elsewhere);
- nesting deeper than ``max_depth`` (a 200,000-deep array would otherwise
  exhaust the recursion limit of whoever parses or encodes it next).

``open_envelope`` and ``open_statement`` open a JWS received from outside
the same way: its protected header and its payload are read with ``loads``. Pure Python, no
imports from outside ``registry.crypto``: it stays importable alone.
"""

from __future__ import annotations

import base64
import json
import math
import re
from typing import Any

from . import jws

__all__ = ["MAX_DEPTH", "MAX_SAFE_INTEGER", "IJSONError", "loads", "open_envelope", "open_statement"]

# The registry's own documents nest at most 7 deep (a snapshot's licence
# statements); 64 leaves room for any honest client and stays far below the
# interpreter's recursion limit for whatever walks the result next.
MAX_DEPTH = 64
MAX_SAFE_INTEGER = 2**53 - 1
_MAX_INTEGER_DIGITS = len(str(MAX_SAFE_INTEGER))
_BOM = "\ufeff"
# A surrogate can only come from an escape (the text is valid UTF-8); only
# when one is present must every string be looked at.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class IJSONError(ValueError):
    """The text is not I-JSON within the registry's limits; the message says where and why."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        duplicate = next(name for name, _ in pairs if name in seen or seen.add(name))
        raise IJSONError(f"duplicate member name {duplicate!r}")
    return value


def _integer(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > _MAX_INTEGER_DIGITS or int(digits) > MAX_SAFE_INTEGER:
        raise IJSONError(f"integer {text[:24]}{'…' if len(text) > 24 else ''} is beyond ±(2**53 - 1)")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise IJSONError(f"number {text[:24]} is too large for a double")
    return value


def _constant(name: str) -> Any:
    raise IJSONError(f"{name} is not a JSON number")


def _path(parts: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in parts) or "the document"


def _surrogate(node: Any) -> str | None:
    """Where a string or an object's member names hold a lone surrogate (not the children)."""
    if isinstance(node, str):
        return "holds a lone surrogate" if _SURROGATE.search(node) else None
    if isinstance(node, dict) and any(_SURROGATE.search(name) for name in node):
        return "has a member name with a lone surrogate"
    return None


def _check_tree(value: Any, max_depth: int, strings: bool) -> None:
    """Depth, and (if ``strings``) lone surrogates in names and strings; iterative, so any depth is safe.

    The common case (nothing wrong) walks containers only, without paths;
    only a fault is looked for again with its path, to name where it is.
    """
    level = [value]
    for depth in range(1, max_depth + 1):
        children: list[Any] = []
        for node in level:
            if strings and _surrogate(node):
                _raise_with_path(value, max_depth, strings)
            if isinstance(node, dict):
                children.extend(node.values())
            elif isinstance(node, list):
                children.extend(node)
        containers = [child for child in children if isinstance(child, dict | list)]
        if depth == max_depth and containers:
            _raise_with_path(value, max_depth, strings)
        level = containers + [child for child in children if isinstance(child, str)] if strings else containers
        if not level:
            return
    for node in level:  # strings below the deepest containers
        if _surrogate(node):
            _raise_with_path(value, max_depth, strings)


def _raise_with_path(value: Any, max_depth: int, strings: bool) -> None:
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(value, 1, ())]
    while stack:
        node, depth, path = stack.pop()
        fault = _surrogate(node) if strings else None
        if fault:
            raise IJSONError(f"the value at {_path(path)} {fault}")
        if isinstance(node, dict | list):
            if depth > max_depth:
                raise IJSONError(f"nested more than {max_depth} levels deep at {_path(path)}")
            items = node.items() if isinstance(node, dict) else enumerate(node)
            stack.extend((item, depth + 1, (*path, key)) for key, item in items)


def loads(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """The value of an I-JSON text; IJSONError says why it is not one.

    ``raw`` is bytes as received (strict UTF-8), or text some other layer
    already decoded (a form field), which must still not begin with a BOM.
    """
    if isinstance(raw, bytes | bytearray | memoryview):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise IJSONError(f"not UTF-8: byte {exc.start} cannot be decoded") from None
    else:
        text = raw
    if text.startswith(_BOM):
        raise IJSONError("begins with a byte order mark; send UTF-8 without one")
    try:
        value = json.loads(text, object_pairs_hook=_object, parse_int=_integer, parse_float=_float,
                           parse_constant=_constant)
    except RecursionError:
        # The C scanner guards its own recursion; deeper than that is deeper than max_depth.
        raise IJSONError(f"nested more than {max_depth} levels deep") from None
    except json.JSONDecodeError as exc:
        raise IJSONError(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    _check_tree(value, max_depth, strings=_SURROGATE_ESCAPE.search(text) is not None)
    return value


def open_envelope(text: str, typ: str) -> jws.Envelope:
    """``jws.open_envelope`` for a JWS received from outside: its protected header read as I-JSON too.

    Not verified; the payload is not read (see ``open_statement``). JWSError says why.
    """
    try:
        envelope = jws.open_envelope(text, typ)
    except RecursionError:
        raise jws.JWSError(f"protected header is nested more than {MAX_DEPTH} levels deep") from None
    header_part = text.split(".", 1)[0]
    try:
        loads(base64.urlsafe_b64decode(header_part + "=" * (-len(header_part) % 4)))
    except IJSONError as exc:
        raise jws.JWSError(f"protected header is not I-JSON: {exc}") from None
    return envelope


def open_statement(text: str, typ: str) -> tuple[jws.Envelope, dict[str, Any]]:
    """A statement received from outside, opened but not verified, and its payload object read as I-JSON."""
    envelope = open_envelope(text, typ)
    try:
        payload = loads(envelope.payload_bytes)
    except IJSONError as exc:
        raise jws.JWSError(f"payload is not I-JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise jws.JWSError("payload is not a JSON object")
    return envelope, payload
