"""Answer memory internals: `HashIndex` against a dict (collisions: tests/test_sql_memory.py)."""

from __future__ import annotations

import numpy as np

from sutro_sql.sql_layer.cache import HashIndex


def test_hash_index_agrees_with_a_dict_through_growth_replacements_and_collisions():
    rng = np.random.default_rng(7)
    index, truth = HashIndex(capacity=16), {}
    for _ in range(20):
        keys = rng.integers(0, 2**64 - 1, 400, dtype=np.uint64, endpoint=True).tolist()
        keys[:40] = rng.choice(list(truth), 40).tolist() if truth else keys[:40]  # replace known keys
        keys[:4] = [n << 60 for n in range(4)]  # same low bits, and 0 itself
        for key in keys:
            truth[key] = int(rng.integers(0, 10**6))
            index.set(key, truth[key])
        assert all(index.get(key) == truth[key] for key in list(truth)[-50:])  # before the merge
        unknown = rng.integers(0, 2**64 - 1, 300, dtype=np.uint64, endpoint=True)
        probes = np.concatenate([np.fromiter(truth, np.uint64), unknown])
        expected = np.array([truth.get(key, -1) for key in probes.tolist()])
        assert (index.lookup(probes) == expected).all()
        missing = next(key for key in unknown.tolist() if key not in truth)
        assert index.get(missing) is None
