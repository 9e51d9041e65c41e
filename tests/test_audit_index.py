"""Multi-index Hamming search against the brute-force distance matrix."""

import numpy as np
import pytest

from rsnb.audit.index import (
    INDEX_BELOW,
    HashIndex,
    brute_force_pairs,
    default_chunks,
    hamming,
    hamming_pairs,
    popcount,
    probe_fraction,
)


def _codes(rng, n):
    return rng.integers(0, 2**63, n, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, n, dtype=np.uint64)


def _near(rng, codes, max_flips):
    out = codes.copy()
    for i in range(out.size):
        for b in rng.choice(64, int(rng.integers(0, max_flips + 1)), replace=False):
            out[i] ^= np.uint64(1) << np.uint64(int(b))
    return out


def test_popcount_and_hamming_match_python():
    rng = np.random.default_rng(0)
    x = _codes(rng, 500)
    assert popcount(x).tolist() == [bin(int(v)).count("1") for v in x]
    y = _codes(rng, 500)
    assert hamming(x, y).tolist() == [bin(int(a) ^ int(b)).count("1") for a, b in zip(x, y)]
    assert popcount(np.array([0, 2**64 - 1], dtype=np.uint64)).tolist() == [0, 64]


@pytest.mark.parametrize("threshold,chunks", [(0, None), (0, 1), (1, 1), (4, None), (4, 3), (9, None), (9, 4),
                                              (9, 8), (16, None), (16, 5), (16, 17)])
def test_index_agrees_with_brute_force(threshold, chunks):
    rng = np.random.default_rng(threshold * 10 + (chunks or 0))
    db = _codes(rng, 300)
    query = np.concatenate([_near(rng, db[:150], 12), _codes(rng, 100), db[:5]])  # close, random, exact
    fast = hamming_pairs(query, db, threshold, chunks=chunks)
    ref = brute_force_pairs(query, db, threshold)
    for a, b in zip(fast, ref):
        np.testing.assert_array_equal(a, b)
    if threshold >= 4:
        assert fast[0].size >= 5  # the exact copies at least


def test_self_search_excludes_the_diagonal_and_finds_planted_pairs():
    rng = np.random.default_rng(1)
    base = _codes(rng, 200)
    codes = np.concatenate([base, _near(rng, base[:40], 3)])  # rows 200+k are near row k
    qi, di, dist = hamming_pairs(codes, codes, 3, exclude_self=True)
    assert not np.any(qi == di)
    found = set(zip(qi.tolist(), di.tolist()))
    assert all((k, 200 + k) in found and (200 + k, k) in found for k in range(40))
    ref = brute_force_pairs(codes, codes, 3, exclude_self=True)
    np.testing.assert_array_equal(qi, ref[0])
    np.testing.assert_array_equal(dist, ref[2])


def test_many_identical_codes_and_empty_inputs():
    codes = np.zeros(50, np.uint64)  # a degenerate dataset: 50 identical hashes
    qi, di, _ = hamming_pairs(codes, codes, 2, exclude_self=True)
    assert qi.size == 50 * 49
    empty = np.zeros(0, np.uint64)
    assert hamming_pairs(empty, codes, 4)[0].size == 0
    assert hamming_pairs(codes, empty, 4)[0].size == 0


def test_index_probes_fewer_candidates_than_all_pairs():
    rng = np.random.default_rng(2)
    db = _codes(rng, 20000)
    index = HashIndex(db, 10)
    assert index.m == default_chunks(10, 20000) and index.radius == 10 // index.m
    qi, _ = index.candidates(_codes(rng, 500))
    assert qi.size < 0.03 * 500 * 20000  # the point of the index: a few % of all pairs are even looked at


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="use more chunks"):
        HashIndex(np.zeros(3, np.uint64), 16, chunks=1)
    with pytest.raises(ValueError, match="threshold must be a Hamming distance"):
        HashIndex(np.zeros(3, np.uint64), 65)
    with pytest.raises(ValueError, match="query: expected a 1-d array"):
        hamming_pairs(np.zeros((2, 2), np.uint64), np.zeros(3, np.uint64), 3)
    with pytest.raises(ValueError, match="integer"):
        hamming_pairs(np.zeros(2, np.float32), np.zeros(3, np.uint64), 3)


def test_auto_method_picks_a_path_and_all_agree():
    rng = np.random.default_rng(3)
    db = _codes(rng, 400)
    q = np.concatenate([_near(rng, db[:100], 8), _codes(rng, 50)])
    ref = brute_force_pairs(q, db, 8)
    for method in ("auto", "index", "matrix"):
        for a, b in zip(hamming_pairs(q, db, 8, method=method), ref):
            np.testing.assert_array_equal(a, b)
    assert probe_fraction(16, 5000) > INDEX_BELOW > probe_fraction(8, 50000)  # wide radius: matrix; narrow: index
    with pytest.raises(ValueError, match="method must be"):
        hamming_pairs(q, db, 8, method="fast")
