"""DDP on CPU (gloo): 2 ranks × batch 4 must train exactly like 1 process × batch 8."""

import json
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _toy import ToyCaptionDataset, ToyRetrievalModel, ddp_worker, make_toy_samples, prior_hook, toy_collate
from safetensors.torch import load_file

from rsnb import train as tr

N_IMAGES = 12  # 24 captions: 3 global batches of 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="gloo backend unavailable")
def test_two_rank_ddp_matches_single_process(tmp_path):
    # weight decay breaks Adam's invariance to a constant gradient scale, so a wrong DDP scaling shows up
    cfg = dict(epochs=2, lr=1e-2, weight_decay=0.05, batch_size=4, lr_schedule="none", grad_clip=0.5,
               quiet=True, seed=5, amp="off")
    mp.spawn(ddp_worker, args=(2, _free_port(), str(tmp_path), cfg, N_IMAGES), nprocs=2, join=True)

    torch.manual_seed(0)
    single = ToyRetrievalModel()
    ds = ToyCaptionDataset(make_toy_samples(n_images=N_IMAGES, caps_per_image=(2, 2), seed=4))
    h = tr.train(tr.TrainConfig(**{**cfg, "batch_size": 8}), single, ds, device="cpu", collate_fn=toy_collate,
                 batch_hook=prior_hook)

    torch.manual_seed(0)
    init = ToyRetrievalModel().state_dict()
    ranks = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1)]
    bad = [f"rank {r}: {k} (max diff {float((ranks[r][k] - v).abs().max()):.2e})"
           for k, v in single.state_dict().items() for r in (0, 1)
           if not torch.allclose(ranks[r][k], v, atol=1e-5, rtol=1e-5)]
    assert not bad, "DDP weights differ from the single-process run: " + "; ".join(bad)
    # training did move the weights, including the parameter that only the loss uses
    assert not torch.allclose(single.scale, init["scale"])
    assert not torch.allclose(single.conv.weight, init["conv.weight"])
    # only rank 0 wrote the run folder; its history matches the single-process losses
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [r["loss"] for r in hist] == pytest.approx([r["loss"] for r in h], rel=1e-5)
    sid = json.loads((tmp_path / "run" / "last.json").read_text())["save_id"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted([
        "history.csv", "history.json", "last.json", f"last-{sid}.safetensors", f"last-{sid}.optim.safetensors"])


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="gloo backend unavailable")
def test_msa_two_rank_ddp_matches_single_process(tmp_path):
    """MSA's B x B score matrices cover the global batch: image vectors and token states are gathered."""
    from _msa_toy import msa_ddp_worker, strip_batchnorm, tiny_bert_folder, tiny_msa

    folder = tiny_bert_folder(tmp_path / "bert", dropout=0.0)
    cfg = dict(epochs=1, lr=1e-3, weight_decay=0.05, batch_size=4, lr_schedule="none", grad_clip=0.0,
               quiet=True, seed=5, amp="off", optimizer="adamw")
    mp.spawn(msa_ddp_worker, args=(2, _free_port(), str(tmp_path), cfg, 8, str(folder)), nprocs=2, join=True)

    torch.manual_seed(0)
    single = strip_batchnorm(tiny_msa("bert", folder))
    init = {k: v.clone() for k, v in single.state_dict().items()}
    ds = ToyCaptionDataset(make_toy_samples(n_images=8, caps_per_image=(2, 2), seed=4))
    h = tr.train(tr.TrainConfig(**{**cfg, "batch_size": 8}), single, ds, device="cpu", collate_fn=toy_collate)
    ranks = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1)]

    def comparable(key, t):
        # Two parameters have a zero gradient up to rounding, which Adam turns into full-size steps:
        # the attention's key bias (it shifts all logits of a query equally) and, in the paper form,
        # the score head's bias (it shifts a whole score matrix; both softmaxes cancel it).
        if key.startswith("mscmat.head.") and key.endswith("bias"):
            return t[:0]
        if key.endswith("in_proj_bias"):
            d = t.numel() // 3
            return torch.cat([t[:d], t[2 * d:]])
        return t

    bad = [f"rank {r}: {k} (max diff {float((comparable(k, ranks[r][k]) - comparable(k, v)).abs().max()):.2e})"
           for k, v in single.state_dict().items() for r in (0, 1)
           if not torch.allclose(comparable(k, ranks[r][k]), comparable(k, v), atol=2e-5, rtol=1e-4)]
    assert not bad, "DDP weights differ from the single-process run: " + "; ".join(bad[:8])
    for key in ("mscmat.attn.3.in_proj_weight", "log_temperature", "query_proj.0.weight",
                "text.model.encoder.layer.0.attention.self.query.weight"):
        assert not torch.allclose(single.state_dict()[key], init[key]), key  # trained, incl. loss-only parts
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [r["loss"] for r in hist] == pytest.approx([r["loss"] for r in h], rel=1e-5)
    assert hist[0]["alignment"] == pytest.approx(h[0]["alignment"], rel=1e-5)
