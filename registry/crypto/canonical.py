"""RFC 8785 canonical JSON, the bytes every signature and log leaf is made of.

``rfc8785`` is the reference, but it is pure Python and dominated the cost of
signing large verification answers. For the values the registry signs
(objects with ASCII keys, strings, safe integers, booleans and nulls) the
standard library's C encoder with sorted keys, compact separators and no
ASCII escaping writes exactly the RFC 8785 bytes: both escape only ``"``,
``\\``, and the control characters (``\\b \\f \\n \\r \\t``, else ``\\u00xx``
in lower-case hex), and code-point order equals UTF-16 order for ASCII keys.
Anything else (floats, integers beyond 2**53, non-ASCII keys, subclasses,
lone surrogates) goes to ``rfc8785``, so the output is always the reference's.
tests/test_canonical.py holds the two to byte equality with hypothesis.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

_SAFE_INTEGER = 2**53 - 1
_STR_ONLY = {str}
# Types written the same by both without looking at the value; bool is not int here (type() is exact).
_PLAIN = frozenset({str, bool, type(None)})
_ALLOWED = _PLAIN | {int, dict, list, tuple}
_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False,
                            check_circular=False)


def _fast_path_applies(value: Any) -> bool:
    """Whether ``value`` holds only what the standard encoder writes exactly as RFC 8785 does.

    Containers are checked a whole at a time in C (the set of their values'
    types); only the integers and the nested containers are visited one by
    one, which matters for the 5,000 results of a verify batch.
    """
    kind = type(value)
    if kind is not dict and kind is not list and kind is not tuple:
        return _scalar_applies(value)
    stack = [value]
    pop, append = stack.pop, stack.append
    while stack:
        item = pop()
        if type(item) is dict:
            # Keys checked in C rather than one by one: all exactly str, all ASCII.
            if item and (set(map(type, item)) != _STR_ONLY or not "".join(item).isascii()):
                return False
            item = item.values()
        kinds = set(map(type, item))
        if kinds <= _PLAIN:
            continue
        if not kinds <= _ALLOWED:
            return False
        for child in item:
            kind = type(child)
            if kind is int:
                if not -_SAFE_INTEGER <= child <= _SAFE_INTEGER:
                    return False
            elif kind is dict or kind is list or kind is tuple:
                append(child)
    return True


def _scalar_applies(value: Any) -> bool:
    kind = type(value)
    if kind is int:
        return -_SAFE_INTEGER <= value <= _SAFE_INTEGER
    return kind in _PLAIN


def canonical_json(value: Any) -> bytes:
    if _fast_path_applies(value):
        try:
            return _ENCODER.encode(value).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: the reference refuses it with its own error
    return rfc8785.dumps(value)


def canonical_text(value: Any) -> str:
    return canonical_json(value).decode()


def is_canonical(raw: bytes) -> bool:
    try:
        return canonical_json(json.loads(raw)) == raw
    except (ValueError, rfc8785.CanonicalizationError):
        return False
