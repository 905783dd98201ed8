"""registry.crypto.ijson: what every partner's parser reads alike, within bounded depth (RFC 7493)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.crypto import ijson


@pytest.mark.parametrize(("raw", "why"), [
    ('{"a": 1}'.encode("utf-16"), "not UTF-8"),
    ('{"a": 1}'.encode("utf-16-le"), "not JSON"),
    ('{"a": 1}'.encode("utf-32"), "not UTF-8"),
    (b'\xef\xbb\xbf{"a": 1}', "byte order mark"),
    ("\ufeff{}", "byte order mark"),
    (b'{"a": "\xed\xa0\x80"}', "not UTF-8"),  # a surrogate encoded as if it were a character
    (b'{"a": "\xff"}', "not UTF-8"),
    (b'{"status": "revoked", "status": "active"}', "duplicate member name 'status'"),
    (b'{"x": [{"b": 1, "b": 1}]}', "duplicate member name 'b'"),
    (b'{"name": "\\ud800"}', "at name holds a lone surrogate"),
    (b'{"a": ["ok", "\\udfff x"]}', "at a.1 holds a lone surrogate"),
    (b'{"\\ud800": 1}', "member name with a lone surrogate"),
    (b'[NaN]', "NaN"),
    (b'[-Infinity]', "Infinity"),
    (b'[1e400]', "too large for a double"),
    (b'[9007199254740992]', "beyond"),
    (b'[-9007199254740992]', "beyond"),
    (b'[' + b'1' * 5000 + b']', "beyond"),
    (b'{"a": ', "not JSON"),
    (b'', "not JSON"),
])
def test_what_partners_would_read_differently_is_refused(raw, why):
    with pytest.raises(ijson.IJSONError, match=why):
        ijson.loads(raw)


def test_what_i_json_allows_is_read_as_json_reads_it():
    text = '{"a": ["\\ud83d\\ude00", "é", -9007199254740991, 9007199254740991, 1.5, 1e300, null, true], "b": {}}'
    assert ijson.loads(text.encode()) == json.loads(text)
    assert ijson.loads(text) == json.loads(text)


@pytest.mark.parametrize("depth", [ijson.MAX_DEPTH + 1, 1000, 200_000])
def test_nesting_beyond_the_limit_is_refused_at_any_depth(depth):
    for opener, closer in (("[", "]"), ('{"a":', "}")):
        with pytest.raises(ijson.IJSONError, match="nested more than 64 levels deep"):
            ijson.loads((opener * depth + "1" + closer * depth).encode())


def test_nesting_up_to_the_limit_is_read():
    text = "[" * ijson.MAX_DEPTH + '"\\ud800"' + "]" * ijson.MAX_DEPTH
    with pytest.raises(ijson.IJSONError, match="lone surrogate"):  # found below the deepest container too
        ijson.loads(text)
    assert ijson.loads("[" * ijson.MAX_DEPTH + "]" * ijson.MAX_DEPTH) is not None


def test_the_depth_error_names_where():
    with pytest.raises(ijson.IJSONError, match=r"at a\.0\.b"):
        ijson.loads(json.dumps({"a": [{"b": [[1]]}]}), max_depth=4)


@given(st.recursive(st.none() | st.booleans() | st.integers(-ijson.MAX_SAFE_INTEGER, ijson.MAX_SAFE_INTEGER)
                    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                    max_leaves=20))
def test_any_i_json_value_round_trips(value):
    assert ijson.loads(json.dumps(value).encode()) == value


def test_the_module_needs_nothing_but_the_standard_library():
    code = "import sys, registry.crypto.ijson; print(sorted(m for m in sys.modules if m.split('.')[0] in " \
           "{'flask', 'sqlalchemy', 'marshmallow', 'werkzeug'}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
