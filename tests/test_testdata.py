"""The vendored vectors are the published ones, unchanged: each file against the digest noted when it was copied.

tests/testdata/README.md says where each set comes from and under what licence;
SHA256SUMS (``sha256sum`` format) pins the bytes, so that a vector edited to
make a test pass fails here instead.
"""

import hashlib
from pathlib import Path

TESTDATA = Path(__file__).parent / "testdata"
MANIFEST = TESTDATA / "SHA256SUMS"
NOT_VECTORS = {"README.md", "SHA256SUMS"}


def _pinned() -> dict[str, str]:
    return {name.removeprefix("./"): digest for digest, name in
            (line.split(maxsplit=1) for line in MANIFEST.read_text().splitlines())}


def test_every_vector_is_pinned_and_unchanged():
    present = {str(p.relative_to(TESTDATA)) for p in TESTDATA.rglob("*") if p.is_file() and p.name not in NOT_VECTORS}
    pinned = _pinned()
    assert present == set(pinned), "vectors added or removed without updating SHA256SUMS"
    changed = [name for name, digest in pinned.items()
               if hashlib.sha256((TESTDATA / name).read_bytes()).hexdigest() != digest]
    assert not changed, f"vectors differ from the published ones: {changed}"


def test_the_vectors_are_there_to_be_run():
    pinned = _pinned()
    assert sum(name.startswith("merkle/inclusion/") for name in pinned) > 50
    assert sum(name.startswith("merkle/consistency/") for name in pinned) > 50
    assert "signed-note.json" in pinned
