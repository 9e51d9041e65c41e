import pytest
import torch
import torch.nn.functional as F

from rsnb.models.vga import VGMF, FusionAttention, SimilarityAttention, SoftAttention, build_vga

D = 8


def _vt(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, D, generator=g), torch.randn(n, D, generator=g)


def _lin(layer, x):
    return x @ layer.weight.T + layer.bias


def test_soft_by_hand():
    m = SoftAttention(D)
    v, t = _vt()
    torch.testing.assert_close(m(v, t), torch.sigmoid(_lin(m.gate, v)) * t)


def test_fusion_by_hand():
    m = FusionAttention(D)
    v, t = _vt()
    f = torch.cat([v, t], 1)
    torch.testing.assert_close(m(v, t), torch.sigmoid(_lin(m.gate, f)) * _lin(m.value, f))
    assert sum(p.numel() for p in m.parameters()) == 2 * (2 * D * D + D)


def test_sim_by_hand():
    v, t = _vt()
    vec = SimilarityAttention(D, gate="vector")
    a, b = _lin(vec.img_proj, v), _lin(vec.txt_proj, t)
    torch.testing.assert_close(vec(v, t), torch.sigmoid(a * b) * b)
    cos = SimilarityAttention(D, gate="cosine")
    a, b = _lin(cos.img_proj, v), _lin(cos.txt_proj, t)
    s = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
    torch.testing.assert_close(cos(v, t), torch.sigmoid(s)[:, None] * b)
    # a positive scalar gate cannot change a cosine: cos(v, Ft) = cos(v, b)
    torch.testing.assert_close(F.cosine_similarity(v, cos(v, t)), F.cosine_similarity(v, b))


def test_sim_gate_scale_by_hand():
    v, t = _vt()
    for gate in ("vector", "cosine"):
        m = SimilarityAttention(D, gate=gate, scale=3.0)
        a, b = _lin(m.img_proj, v), _lin(m.txt_proj, t)
        s = a * b if gate == "vector" else ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)))[:, None]
        torch.testing.assert_close(m(v, t), torch.sigmoid(3.0 * s) * b)
    # at default init the entries of a and b are small, so the vector gate is ~0.5 everywhere; scale spreads it
    torch.manual_seed(0)
    v, t = 0.05 * torch.randn(16, 512), 0.05 * torch.randn(16, 512)
    spread = {}
    for scale in (1.0, 512 ** 0.5):
        m = SimilarityAttention(512, "vector", scale)
        with torch.no_grad():
            a, b = m.img_proj(v), m.txt_proj(t)
            spread[scale] = float(torch.sigmoid(scale * a * b).std())
    assert spread[1.0] < 1e-3 < spread[512 ** 0.5]
    with pytest.raises(ValueError, match="sim_gate_scale"):
        SimilarityAttention(D, scale=0.0)


@pytest.mark.parametrize("kind,gate,scale", [("soft", "vector", 1.0), ("fusion", "vector", 1.0),
                                             ("sim", "vector", 1.0), ("sim", "cosine", 1.0), ("sim", "vector", 20.0),
                                             ("sim", "cosine", 20.0)])
def test_pair_equals_forward_on_every_pair(kind, gate, scale):
    torch.manual_seed(0)
    m = build_vga(kind, D, gate, scale)
    v, _ = _vt(3, seed=1)
    _, t = _vt(5, seed=2)
    ft = m.pair(m.image_side(v), m.text_side(t))
    assert ft.shape == (3, 5, D)
    for i in range(3):
        for j in range(5):
            torch.testing.assert_close(ft[i, j], m(v[i : i + 1], t[j : j + 1])[0])


@pytest.mark.parametrize("kind,gate", [("soft", "vector"), ("fusion", "vector"), ("sim", "vector"),
                                       ("sim", "cosine")])
def test_gradient_flow(kind, gate):
    m = build_vga(kind, D, gate)
    v, t = _vt()
    v.requires_grad_(True)
    t.requires_grad_(True)
    m(v, t).pow(2).sum().backward()
    for p in m.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert v.grad.abs().sum() > 0 and t.grad.abs().sum() > 0


def test_build_errors():
    with pytest.raises(ValueError, match="vga must be one of"):
        build_vga("hard", D)
    with pytest.raises(ValueError, match="sim_gate"):
        build_vga("sim", D, "dot")
    with pytest.raises(ValueError, match="vgmf_form"):
        VGMF(D, "other")


def test_vgmf_paper_and_code_by_hand():
    g = torch.Generator().manual_seed(3)
    s, k = torch.randn(2, 3, D, generator=g), torch.randn(2, 3, D, generator=g)
    paper, code = VGMF(D, "paper"), VGMF(D, "code")
    code.load_state_dict(paper.state_dict())
    s_n, k_n = F.normalize(s, dim=-1), F.normalize(k, dim=-1)
    w = torch.sigmoid(_lin(paper.gate, torch.cat([s_n, k_n], -1)))
    torch.testing.assert_close(paper(s, k), s * w + k * (1 - w))
    torch.testing.assert_close(code(s, k), s_n * w + k_n * (1 - w))
    with torch.no_grad():
        paper.gate.weight.zero_()
        paper.gate.bias.zero_()
    torch.testing.assert_close(paper(s, k), (s + k) / 2)  # w = 1/2
    assert sum(p.numel() for p in paper.parameters()) == 2 * D * D + D


def test_vgmf_gradient_flow():
    m = VGMF(D)
    s, k = _vt()
    s.requires_grad_(True)
    k.requires_grad_(True)
    m(s, k).sum().backward()
    assert m.gate.weight.grad.abs().sum() > 0 and s.grad.abs().sum() > 0 and k.grad.abs().sum() > 0
