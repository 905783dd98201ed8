"""The vendored vectors are the published ones, unchanged."""

import filecmp
from pathlib import Path

import pytest

OURS = Path(__file__).parent / "testdata"
PUBLISHED = Path(__file__).parents[2] / "shared" / "testdata"


@pytest.mark.skipif(not PUBLISHED.is_dir(), reason="the shared test data folder is not beside this clone")
def test_vendored_vectors_equal_published():
    ours = sorted(p.relative_to(OURS) for p in OURS.rglob("*") if p.is_file())
    theirs = sorted(p.relative_to(PUBLISHED) for p in PUBLISHED.rglob("*") if p.is_file())
    assert ours == theirs
    for rel in ours:
        assert filecmp.cmp(OURS / rel, PUBLISHED / rel, shallow=False), rel
