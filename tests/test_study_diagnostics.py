"""rsnb.study_diagnostics: gate statistics against constructed cases, step diagnostics on a tiny config."""

import pytest
import torch

from rsnb import study
from rsnb.models.amfmn import AMFMN, AMFMNConfig
from rsnb.study_diagnostics import format_rows, gate_statistics, step_diagnostics


def _batch(B=4, size=64, vocab=30):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(B, 3, size, size, generator=g), torch.randint(1, vocab, (B, 7), generator=g),
            torch.full((B,), 7))


def test_gate_statistics_constant_gate_when_the_image_side_is_zero():
    torch.manual_seed(0)
    model = AMFMN(AMFMNConfig.paper(vocab_size=30, image_size=64, pretrained=False, embed_dim=32))
    with torch.no_grad():
        model.vga_sentence.img_proj.weight.zero_()
        model.vga_sentence.img_proj.bias.zero_()
    st = gate_statistics(model, *_batch())
    assert st["gate_mean"] == pytest.approx(0.5) and st["gate_image_std"] == pytest.approx(0.0)
    assert st["gate_saturated"] == 0.0 and st["ab_abs"] == 0.0
    assert 0 < st["mask_mean"] < 1 and 0 < st["fv_over_vg"] < 1  # Fv = v(g) * mask with mask in (0, 1)
    assert model.training  # mode restored


def test_gate_statistics_saturated_gate():
    torch.manual_seed(0)
    model = AMFMN(AMFMNConfig.paper(vocab_size=30, image_size=64, pretrained=False, embed_dim=32))
    with torch.no_grad():  # a = b = 100 * (1, ..., 1) for every input: every gate value is sigmoid(1e4) = 1
        for lin in (model.vga_sentence.img_proj, model.vga_sentence.txt_proj):
            lin.weight.zero_()
            lin.bias.fill_(100.0)
    st = gate_statistics(model.eval(), *_batch())
    assert st["gate_saturated"] == 1.0 and st["gate_mean"] == pytest.approx(1.0) and st["ab_abs"] == pytest.approx(1e4)
    assert not model.training


def test_gate_statistics_baseline_has_no_heads():
    model = AMFMN(AMFMNConfig.ablation("m1", vocab_size=30, image_size=64, pretrained=False, embed_dim=32))
    assert gate_statistics(model, *_batch()) == {}


def test_step_diagnostics_tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("RSNB_CACHE", str(tmp_path))
    st = step_diagnostics(study.run_config("m6", 0, "tiny"), n_batches=2)
    shares = [v for k, v in st.items() if k.startswith("grad_share_")]
    assert sum(shares) == pytest.approx(1.0)
    assert {"grad_share_backbone", "grad_share_mvsa", "grad_share_vga_sentence"} <= set(st)
    assert 0 < st["clip_factor"] <= 1 and 0 <= st["active"] <= 1 and st["loss"] > 0
    # the loss is a sum over negative pairs: loss_per_pair * pairs gives it back, and pairs <= 2 B (B - 1)
    assert st["loss"] / st["loss_per_pair"] <= 2 * 8 * 7 + 1e-6
    m1 = step_diagnostics(study.run_config("m1", 0, "tiny"), n_batches=1)
    assert "grad_share_mvsa" not in m1 and "gate_mean" not in m1
    md = format_rows({"m6": st, "m1": m1}, keys=["loss", "gate_mean"])
    assert md.splitlines()[3].startswith("| m1 | ") and md.splitlines()[3].endswith(" | – |")
