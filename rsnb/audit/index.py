"""Hamming-radius search over 64-bit perceptual hashes without comparing every pair.

:func:`hamming_pairs` finds every (query, database) pair of 64-bit codes whose Hamming distance
is at most ``threshold`` with multi-index hashing (Norouzi et al., "Fast Search in Hamming Space
with Multi-Index Hashing", CVPR 2012): the 64 bits are cut into ``m`` chunks; by the pigeonhole
principle two codes within distance ``t`` agree to within ``t // m`` bits on at least one chunk.
Each chunk of the database is sorted once; a query probes, per chunk, every value within
``t // m`` flipped bits of its own chunk with a binary search, so the work grows with the number
of candidates rather than with ``N_query x N_database``. Candidates are then checked on all 64
bits. :func:`brute_force_pairs` is the reference: the full distance matrix, in blocks.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
from tqdm import tqdm

_DIRECT_BITS = 20  # chunks up to this width use an offset table instead of binary search
_BYTE_POP = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def popcount(x: np.ndarray) -> np.ndarray:
    """Number of set bits of each element of a uint64 array (same shape, uint8)."""
    x = np.ascontiguousarray(x, dtype=np.uint64)
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x)
    return _BYTE_POP[x.view(np.uint8).reshape(*x.shape, 8)].sum(-1, dtype=np.uint8)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise (broadcast) Hamming distance between uint64 codes (uint8)."""
    return popcount(np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)))


def _check(codes, name: str) -> np.ndarray:
    a = np.asarray(codes)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array of 64-bit codes, got shape {a.shape}")
    if a.size and a.dtype.kind not in "ui":
        raise ValueError(f"{name}: expected integer (uint64) codes, got dtype {a.dtype}")
    return a.astype(np.uint64, copy=False)


def _finish(qi, di, dist, exclude_self: bool):
    keep = qi != di if exclude_self else np.ones(qi.shape, bool)
    qi, di, dist = qi[keep], di[keep], dist[keep]
    order = np.lexsort((di, qi))
    return qi[order], di[order], dist[order]


def brute_force_pairs(query, database, threshold: int, block: int = 2048, exclude_self: bool = False):
    """Reference search: every pair within ``threshold`` from the full distance matrix (in blocks).

    Args:
        query: (Nq,) uint64 codes.
        database: (Nd,) uint64 codes.
        threshold: largest Hamming distance kept (0..64).
        block: query rows per distance block ((block, Nd) int64 at a time).
        exclude_self: drop pairs with ``query index == database index`` (query is database).

    Returns:
        ``(qi, di, dist)``: int64 arrays of the pairs, sorted by (qi, di).
    """
    q, d = _check(query, "query"), _check(database, "database")
    out = [[], [], []]
    for s in range(0, q.size, block):
        dist = hamming(q[s:s + block, None], d[None, :])  # (b, Nd) uint8
        r, c = np.nonzero(dist <= threshold)
        out[0].append(r + s)
        out[1].append(c)
        out[2].append(dist[r, c])
    if not out[0]:
        return tuple(np.zeros(0, np.int64) for _ in range(3))
    return _finish(*(np.concatenate(x).astype(np.int64) for x in out), exclude_self)


MAX_PROBES = 50_000  # flipped-bit probes per chunk and query allowed


def _probe_count(threshold: int, m: int) -> int:
    width, r = math.ceil(64 / m), threshold // m
    return sum(math.comb(width, k) for k in range(min(r, width) + 1))


def _cost(threshold: int, m: int, n_database: int) -> float:
    """Work per query of an m-chunk index: probes, plus the candidates they hit (uniform codes)."""
    return m * _probe_count(threshold, m) * (1.0 + 2.0 * n_database / 2.0 ** (64 / m))


def default_chunks(threshold: int, n_database: int) -> int:
    """Chunk count for :func:`hamming_pairs`: the m in 1..t+1 with the least expected work per query
    (probes within ``t // m`` flipped bits, plus the database codes they hit), among those needing at
    most :data:`MAX_PROBES` probes per chunk."""
    options = [m for m in range(1, min(threshold + 1, 64) + 1) if _probe_count(threshold, m) <= MAX_PROBES] or [64]
    return min(options, key=lambda m: (_cost(threshold, m, n_database), m))


class HashIndex:
    """Multi-index over 64-bit codes: one sorted table per chunk of bits.

    Args:
        database: (Nd,) uint64 codes (e.g. the pHash of every image).
        threshold: the search radius the index is built for.
        chunks: number of bit chunks ``m``; default :func:`default_chunks`.
    """

    def __init__(self, database, threshold: int, chunks: int | None = None):
        if not 0 <= int(threshold) <= 64:
            raise ValueError(f"threshold must be a Hamming distance in 0..64, got {threshold}")
        self.codes = _check(database, "database")
        self.threshold = int(threshold)
        self.m = int(chunks or default_chunks(self.threshold, self.codes.size))
        if not 1 <= self.m <= 64:
            raise ValueError(f"chunks must be in 1..64, got {chunks}")
        if _probe_count(self.threshold, self.m) > MAX_PROBES:
            raise ValueError(f"chunks={self.m} for threshold {self.threshold} needs "
                             f"{_probe_count(self.threshold, self.m):,} probes per chunk; use more chunks")
        self.radius = self.threshold // self.m  # some chunk lies within this many bits
        edges = np.linspace(0, 64, self.m + 1).round().astype(int)
        self.spans = [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
        self.tables = []
        for lo, hi in self.spans:
            vals = self._chunk(self.codes, lo, hi)  # (Nd,)
            order = np.argsort(vals, kind="stable")
            if hi - lo <= _DIRECT_BITS:  # direct addressing: offsets[v] .. offsets[v + 1]
                offsets = np.zeros((1 << (hi - lo)) + 1, np.int64)
                np.cumsum(np.bincount(vals.astype(np.int64), minlength=1 << (hi - lo)), out=offsets[1:])
                self.tables.append((offsets, order))
            else:
                self.tables.append((vals[order], order))
        self.probes = [self._masks(hi - lo) for lo, hi in self.spans]

    @staticmethod
    def _chunk(codes: np.ndarray, lo: int, hi: int) -> np.ndarray:
        mask = np.uint64((1 << (hi - lo)) - 1)
        return (codes >> np.uint64(lo)) & mask

    def _masks(self, width: int) -> np.ndarray:
        masks = [0]
        for r in range(1, min(self.radius, width) + 1):
            masks += [sum(1 << b for b in bits) for bits in combinations(range(width), r)]
        return np.array(masks, dtype=np.uint64)

    def candidates(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query index, database index) pairs sharing a chunk within the probe radius.

        A pair can appear once per chunk it matches on (duplicates are removed by :meth:`search`
        after the full-distance check, when few pairs are left).
        """
        q = _check(query, "query")
        qis, dis = [], []
        for (lo, hi), (table, order), masks in zip(self.spans, self.tables, self.probes):
            qc = self._chunk(q, lo, hi)  # (Nq,)
            keys = (qc[:, None] ^ masks[None, :]).reshape(-1)  # (Nq * P,)
            if hi - lo <= _DIRECT_BITS:
                k = keys.astype(np.int64)
                start, count = table[k], table[k + 1] - table[k]  # (Nq * P,)
            else:
                start = np.searchsorted(table, keys, "left")
                count = np.searchsorted(table, keys, "right") - start  # (Nq * P,)
            total = int(count.sum())
            if not total:
                continue
            qis.append(np.repeat(np.arange(keys.size) // masks.size, count))  # (total,)
            first = np.repeat(start - (np.cumsum(count) - count), count)
            dis.append(order[first + np.arange(total)])  # (total,)
        if not qis:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(qis), np.concatenate(dis)

    def search(self, query, block: int = 4096, exclude_self: bool = False, progress: bool = False):
        """All pairs within the index's threshold; same output as :func:`brute_force_pairs`."""
        q = _check(query, "query")
        out = [[], [], []]
        starts = range(0, q.size, block)
        for s in tqdm(starts, disable=not progress or len(starts) < 2, desc="hash search", leave=False):
            qi, di = self.candidates(q[s:s + block])
            dist = hamming(q[s + qi], self.codes[di])
            keep = dist <= self.threshold
            key = np.sort((qi[keep] + s) * self.codes.size + di[keep])  # few left: sort, drop repeats
            key = key[np.r_[True, key[1:] != key[:-1]]] if key.size else key
            out[0].append(key // self.codes.size)
            out[1].append(key % self.codes.size)
            out[2].append(hamming(q[out[0][-1]], self.codes[out[1][-1]]))
        if not out[0] or self.codes.size == 0:
            return tuple(np.zeros(0, np.int64) for _ in range(3))
        return _finish(*(np.concatenate(x).astype(np.int64) for x in out), exclude_self)


def probe_fraction(threshold: int, n_database: int, chunks: int | None = None) -> float:
    """Expected work of the index as a share of all (query, database) pairs, for uniformly spread codes."""
    m = int(chunks or default_chunks(threshold, n_database))
    return min(1.0, _cost(threshold, m, n_database) / max(1, n_database))


#: the index is used when its expected work is below this share of all pairs; its cost per unit of work is
#: about 3 times the blocked matrix's cost per pair (measured by bench/bench_audit.py)
INDEX_BELOW = 0.2


def hamming_pairs(query, database, threshold: int, chunks: int | None = None, exclude_self: bool = False,
                  progress: bool = False, method: str = "auto"):
    """Every (query, database) pair of 64-bit codes within ``threshold`` bits, by multi-index hashing.

    Args:
        query: (Nq,) uint64 codes.
        database: (Nd,) uint64 codes.
        threshold: largest Hamming distance kept (0..64).
        chunks: bit chunks of the index (default about 64 / log2(Nd)).
        exclude_self: drop pairs with equal indices (when query and database are one array).
        progress: tqdm bar over query blocks.
        method: ``"index"`` (multi-index), ``"matrix"`` (:func:`brute_force_pairs`) or ``"auto"``: the
            index when :func:`probe_fraction` is below :data:`INDEX_BELOW` (small radii, large N),
            else the blocked matrix. Both return the same pairs.

    Returns:
        ``(qi, di, dist)``: int64 arrays sorted by (qi, di); identical to :func:`brute_force_pairs`.
    """
    if method not in ("auto", "index", "matrix"):
        raise ValueError(f"method must be 'auto', 'index' or 'matrix', got {method!r}")
    n = int(np.asarray(database).size)
    if method == "matrix" or (method == "auto" and probe_fraction(threshold, n, chunks) >= INDEX_BELOW):
        return brute_force_pairs(query, database, threshold, exclude_self=exclude_self)
    index = HashIndex(database, threshold, chunks)
    return index.search(query, exclude_self=exclude_self, progress=progress)
