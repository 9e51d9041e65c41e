"""Chunked top-k search against a brute-force full-matrix reference."""

import importlib.util

import numpy as np
import pytest
import torch

from rsnb.evaluate import search


def _brute(q, g, k):
    s = q.float() @ g.float().T  # (Nq, Ng) full matrix: fine at test sizes
    order = torch.argsort(s, dim=1, descending=True, stable=True)[:, :k]
    return s.gather(1, order), order


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_search_matches_brute_force(chunk):
    torch.manual_seed(0)
    q, g = torch.randn(13, 16), torch.randn(300, 16)
    s, i = search(q, g, k=10, chunk=chunk)
    rs, ri = _brute(q, g, 10)
    assert s.shape == i.shape == (13, 10)
    assert torch.equal(i, ri)  # continuous random scores: no ties, order is unique
    assert torch.allclose(s, rs, atol=1e-5)
    assert bool((s[:, :-1] >= s[:, 1:]).all())  # descending


def test_search_k_larger_than_gallery_and_single_query():
    g = torch.randn(5, 8)
    s, i = search(g[2], g, k=50, chunk=2)
    assert s.shape == (1, 5)
    assert sorted(i[0].tolist()) == list(range(5))


def test_search_float16_gallery_and_numpy_input():
    rng = np.random.default_rng(1)
    g = rng.standard_normal((500, 32)).astype(np.float16)
    q = rng.standard_normal((4, 32)).astype(np.float32)
    s, i = search(q, g, k=5, chunk=97)
    rs, ri = _brute(torch.from_numpy(q), torch.from_numpy(g), 5)
    assert torch.equal(i, ri)
    assert torch.allclose(s, rs, atol=1e-3)


def test_search_finds_planted_neighbours():
    torch.manual_seed(2)
    g = torch.nn.functional.normalize(torch.randn(2000, 64), dim=1)
    targets = torch.tensor([3, 999, 1500, 1999])
    q = g[targets] + 0.01 * torch.randn(4, 64)
    _, i = search(q, g, k=1, chunk=256)
    assert torch.equal(i[:, 0], targets)


@pytest.mark.parametrize("q_shape,g_shape,k,backend,msg", [
    ((3, 8), (10, 9), 5, "torch", "same D"),
    ((3, 8), (0, 8), 5, "torch", "empty"),
    ((3, 8), (10, 8), 0, "torch", "k must be"),
    ((3, 8), (10, 8), 5, "annoy", "backend must be"),
])
def test_search_errors(q_shape, g_shape, k, backend, msg):
    with pytest.raises(ValueError, match=msg):
        search(torch.randn(*q_shape), torch.randn(*g_shape), k=k, backend=backend)


@pytest.mark.skipif(importlib.util.find_spec("faiss") is None, reason="faiss-cpu not installed")
def test_faiss_backend_agrees():
    torch.manual_seed(3)
    q, g = torch.randn(20, 24), torch.randn(1000, 24)
    s, i = search(q, g, k=7, backend="faiss")
    ts, ti = search(q, g, k=7, chunk=128)
    assert torch.equal(i, ti)
    assert torch.allclose(s, ts, atol=1e-4)
