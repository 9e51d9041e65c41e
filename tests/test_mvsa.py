import pytest
import torch
import torch.nn.functional as F

from rsnb.models.mvsa import MVSA


def _inputs(size, seed=0, low_c=192, high_c=768, dim=512):
    g = torch.Generator().manual_seed(seed)
    low = torch.randn(2, low_c, size // 4, size // 4, generator=g)
    high = torch.randn(2, high_c, size // 16, size // 16, generator=g)
    glob = torch.randn(2, dim, generator=g)
    return low, high, glob


@pytest.mark.parametrize("size", [128, 256])
@pytest.mark.parametrize("form", ["paper", "code"])
def test_shapes_and_maps(size, form):
    h = size // 16
    m = MVSA(grid_size=h, form=form)
    assert m.mask_fc.in_features == h * h  # 256 at 256 px, 64 at 128 px
    low, high, glob = _inputs(size)
    fv, maps = m(low, high, glob, return_maps=True)
    assert fv.shape == (2, 512)
    for k in ("lf", "hf"):
        assert maps[k].shape == (2, 3, h, h)
    assert maps["joint"].shape == (2, 6, h, h)
    for k in ("info", "gate", "gated"):
        assert maps[k].shape == (2, 1, h, h)
    assert maps["mask"].shape == (2, 512)
    torch.testing.assert_close(fv, glob * maps["mask"])
    torch.testing.assert_close(maps["gated"], maps["info"] * maps["gate"])
    assert ((maps["gate"] > 0) & (maps["gate"] < 1)).all()
    torch.testing.assert_close(m(low, high, glob), fv)


def test_code_form_by_hand():
    m = MVSA(grid_size=8, form="code")
    low, high, glob = _inputs(128)
    fv, maps = m(low, high, glob, return_maps=True)
    lf = F.conv2d(low, m.lf_conv.weight, m.lf_conv.bias, stride=4)  # official k3 s4 no pad: 32 -> 8
    hf = torch.einsum("oc,bchw->bohw", m.hf_conv.weight[:, :, 0, 0], high) + m.hf_conv.bias[:, None, None]
    joint = torch.cat([lf, hf], 1) + hf.mean(1, keepdim=True)
    info = torch.einsum("c,bchw->bhw", m.info_conv.weight[0, :, 0, 0], joint) + m.info_conv.bias
    gate = torch.sigmoid(torch.einsum("c,bchw->bhw", m.gate_conv.weight[0, :, 0, 0], joint) + m.gate_conv.bias)
    mask = torch.sigmoid((info * gate).flatten(1) @ m.mask_fc.weight.T + m.mask_fc.bias)
    torch.testing.assert_close(maps["joint"], joint)
    torch.testing.assert_close(fv, glob * mask)


def test_paper_form_residual_prelu_and_l2():
    m = MVSA(grid_size=8, form="paper")
    low, high, glob = _inputs(128)
    _, maps = m(low, high, glob, return_maps=True)
    # L2 over channels at every position
    torch.testing.assert_close(maps["joint"].norm(dim=1), torch.ones(2, 8, 8))
    # zero convs: LF = HF = PReLU(0) = 0, so v(lh) is the raw high-level mean in every channel,
    # normalised: sign(mean) / sqrt(2C)
    with torch.no_grad():
        for conv in (m.lf_conv, m.hf_conv):
            conv.weight.zero_()
            conv.bias.zero_()
    _, maps = m(low, high, glob, return_maps=True)
    expected = torch.sign(high.mean(1, keepdim=True)).expand(2, 6, 8, 8) / 6**0.5
    torch.testing.assert_close(maps["joint"], expected)
    # PReLU is active: a negative pre-activation is scaled by its slope
    with torch.no_grad():
        m.hf_conv.bias.fill_(-2.0)
        m.hf_act.weight.fill_(0.1)
    _, maps = m(low, high, glob, return_maps=True)
    torch.testing.assert_close(maps["hf"], torch.full((2, 3, 8, 8), -0.2))


def test_code_form_zero_convs_gives_constant_map():
    m = MVSA(grid_size=4, embed_dim=16, form="code")
    low, high, glob = _inputs(64, dim=16)
    with torch.no_grad():
        for conv in (m.lf_conv, m.hf_conv, m.info_conv, m.gate_conv):
            conv.weight.zero_()
            conv.bias.zero_()
        m.info_conv.bias.fill_(2.0)
    fv, maps = m(low, high, glob, return_maps=True)
    torch.testing.assert_close(maps["gated"], torch.full((2, 1, 4, 4), 1.0))  # 2 * sigmoid(0)
    mask = torch.sigmoid(m.mask_fc.weight.sum(1) + m.mask_fc.bias)
    torch.testing.assert_close(fv, glob * mask)


@pytest.mark.parametrize("form", ["paper", "code"])
def test_gradient_flow(form):
    m = MVSA(grid_size=4, embed_dim=32, form=form)
    low, high, glob = _inputs(64, dim=32)
    glob.requires_grad_(True)
    m(low, high, glob).pow(2).sum().backward()
    for p in m.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert glob.grad.abs().sum() > 0


def test_non_matching_low_grid_is_pooled():
    m = MVSA(grid_size=8)
    g = torch.Generator().manual_seed(1)
    low = torch.randn(1, 192, 30, 30, generator=g)  # conv gives 7x7 -> pooled to 8x8
    high = torch.randn(1, 768, 8, 8, generator=g)
    _, maps = m(low, high, torch.randn(1, 512, generator=g), return_maps=True)
    assert maps["lf"].shape == (1, 3, 8, 8)


def test_errors():
    with pytest.raises(ValueError, match="mvsa form"):
        MVSA(form="other")
    m = MVSA(grid_size=16)
    low, high, glob = _inputs(128)
    with pytest.raises(ValueError, match="16x16 high-level grid"):
        m(low, high, glob)
