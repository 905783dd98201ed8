"""Where a stored Merkle node sits in the log_node table: keys that put one proof's nodes close together."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.crypto import merkle
from registry.store import nodes as layout

any_node = st.integers(0, 40).flatmap(lambda level: st.tuples(st.just(level), st.integers(0, (1 << (44 - level)) - 1)))


@given(st.lists(any_node, min_size=2, max_size=20, unique=True))
def test_node_keys_are_distinct_and_ordered_by_band_first_leaf_and_level(some):
    keys = {layout.node_key(node): node for node in some}
    assert len(keys) == len(some)
    order = [keys[key] for key in sorted(keys)]
    assert order == sorted(some, key=lambda n: (n[0] // 6, n[1] << n[0], n[0]))
    assert all(0 <= key < 2**63 for key in keys)


@given(st.integers(1, 40), st.data())
def test_the_nodes_of_a_proof_lie_close_together_in_key_order(height, data):
    # Within each band of six levels, the keys of one proof's nodes span fewer
    # than 2 * 64**(band + 1) leaves. (A tree whose size is not a power of two
    # adds the nodes of its right edge: one more such group, at the log's end,
    # which every proof at that size shares.)
    size = 1 << height
    index = data.draw(st.integers(0, size - 1))
    needed = merkle.nodes_for(merkle.inclusion_ranges(index, size)) | {(0, index)}
    for low, high in layout.key_ranges(needed):
        band = low >> 50
        assert (high - low) >> 6 < 2 * 64 ** (band + 1)
        inside = [n for n in needed if low <= layout.node_key(n) <= high]
        assert inside and all(n[0] // 6 == band for n in inside)


def test_node_keys_refuse_what_they_cannot_hold():
    with pytest.raises(ValueError):
        layout.node_key((0, layout.MAX_LEAVES))
    with pytest.raises(ValueError):
        layout.node_key((64, 0))
    with pytest.raises(ValueError):
        layout.node_key((3, -1))
