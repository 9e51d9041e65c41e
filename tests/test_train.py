import csv
import json
import math

import pytest
import torch
from _toy import (
    ToyCaptionDataset,
    ToyRetrievalModel,
    make_toy_samples,
    prior_hook,
    toy_collate,
    toy_eval_loaders,
)
from torch.utils.data import DataLoader

from rsnb import checkpoint as ck
from rsnb import evaluate as ev
from rsnb import train as tr
from rsnb.distributed import EpochBatchSampler

SAMPLES = make_toy_samples(n_images=8, caps_per_image=(2, 2), seed=4)


def _cfg(**kw):
    base = dict(epochs=4, lr=1e-2, batch_size=4, lr_schedule="step", lr_step=1, lr_decay=0.5, grad_clip=1.0,
                quiet=True, seed=3, amp="off")
    base.update(kw)
    return tr.TrainConfig(**base)


def _model():
    torch.manual_seed(0)
    return ToyRetrievalModel()


def _val_fn():
    il, tl, c2i = toy_eval_loaders(SAMPLES, batch_size=5)
    return ev.make_val_fn(il, tl, c2i, "cpu")


def _strip(h):
    return [{k: v for k, v in row.items() if k != "time"} for row in h]


def test_resume_reproduces_uninterrupted_run(tmp_path):
    ds = ToyCaptionDataset(SAMPLES)
    m_full = _model()
    h_full = tr.train(_cfg(), m_full, ds, _val_fn(), device="cpu", out_dir=tmp_path / "a", collate_fn=toy_collate)
    m_part = _model()
    tr.train(_cfg(epochs=2), m_part, ds, _val_fn(), device="cpu", out_dir=tmp_path / "b", collate_fn=toy_collate)
    m_res = _model()  # fresh weights: everything must come from the checkpoint
    h_res = tr.train(_cfg(), m_res, ds, _val_fn(), device="cpu", out_dir=tmp_path / "b", resume=True,
                     collate_fn=toy_collate)
    assert len(h_full) == len(h_res) == 4
    assert _strip(h_full) == _strip(h_res)
    for (k, a), b in zip(m_full.state_dict().items(), m_res.state_dict().values()):
        assert torch.equal(a, b), k
    # something was learned and the lr followed the schedule
    assert h_full[-1]["loss"] < h_full[0]["loss"]
    assert [r["lr"] for r in h_full] == [1e-2, 5e-3, 2.5e-3, 1.25e-3]
    assert json.loads((tmp_path / "b" / "history.json").read_text())[3]["loss"] == h_full[3]["loss"]


def test_best_checkpoint_follows_validation_metric(tmp_path):
    scripted = iter([10.0, 30.0, 20.0])
    snapshots = {}

    def val_fn(model):
        return {"mR": next(scripted), "i2t_R@1": 1.0}

    def on_end(row, model):
        snapshots[row["epoch"]] = {k: v.clone() for k, v in model.state_dict().items()}

    h = tr.train(_cfg(epochs=3), _model(), ToyCaptionDataset(SAMPLES), val_fn, device="cpu", out_dir=tmp_path,
                 on_epoch_end=on_end, collate_fn=toy_collate)
    assert [r["val_mR"] for r in h] == [10.0, 30.0, 20.0]
    best = _model()
    doc = ck.load_checkpoint(tmp_path, "best", best)
    assert doc["state"]["epoch"] == 2 and doc["state"]["metrics"]["val_mR"] == 30.0
    for k, v in best.state_dict().items():
        assert torch.equal(v, snapshots[2][k]), k
    assert ck.load_checkpoint(tmp_path, "last")["state"]["best"] == 30.0
    with open(tmp_path / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["val_mR"]) for r in rows] == [10.0, 30.0, 20.0]
    assert {"epoch", "loss", "lr", "skipped", "pos", "time", "val_i2t_R@1"} <= set(rows[0])


class NaNAt(ToyRetrievalModel):
    """Loss is NaN on the listed (call index) steps."""

    def __init__(self, bad_calls):
        super().__init__()
        self.bad, self.calls = set(bad_calls), 0

    def loss(self, feats, batch):
        loss, logs = super().loss(feats, batch)
        self.calls += 1
        return (loss * float("nan") if self.calls - 1 in self.bad else loss), logs


def test_nonfinite_stop_names_epoch_and_step_and_keeps_clean_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = NaNAt({6})  # 4 steps per epoch: call 6 = epoch 1, step 2
    with pytest.raises(FloatingPointError, match=r"epoch 1 \(0-based\), step 2"):
        tr.train(_cfg(), model, ToyCaptionDataset(SAMPLES), device="cpu", out_dir=tmp_path, collate_fn=toy_collate)
    doc = ck.load_checkpoint(tmp_path, "last", ToyRetrievalModel())
    assert doc["state"]["epoch"] == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the NaN step never updated weights


def test_nonfinite_skip_counts_and_skips_update(tmp_path):
    torch.manual_seed(0)
    model = NaNAt({1, 2})
    h = tr.train(_cfg(epochs=1, nonfinite="skip"), model, ToyCaptionDataset(SAMPLES), device="cpu",
                 collate_fn=toy_collate)
    assert h[0]["skipped"] == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert math.isfinite(h[0]["loss"])


def test_grad_clip_applied_after_backward(monkeypatch):
    seen = []
    orig_step = torch.optim.Adam.step

    def step(self, *a, **k):
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        seen.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(x) for x in grads]))))
        return orig_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    tr.train(_cfg(epochs=1, grad_clip=1e-3), _model(), ToyCaptionDataset(SAMPLES), device="cpu", collate_fn=toy_collate)
    assert len(seen) == 4 and all(0 < n <= 1e-3 * (1 + 1e-4) for n in seen)
    seen.clear()
    tr.train(_cfg(epochs=1, grad_clip=0.0), _model(), ToyCaptionDataset(SAMPLES), device="cpu", collate_fn=toy_collate)
    assert max(seen) > 1e-2  # without clipping the norm is much larger: the clip above did act


def test_dataloader_input_and_batch_hook_sees_global_batch():
    seen = []

    def hook(batch):
        seen.append(batch["image_ids"].shape[0])
        return prior_hook(batch)

    loader = DataLoader(ToyCaptionDataset(SAMPLES), batch_size=99, collate_fn=toy_collate, shuffle=True)
    h = tr.train(_cfg(epochs=1, batch_size=6), _model(), loader, device="cpu", batch_hook=hook)
    assert seen == [6, 6, 4]  # cfg.batch_size rules; the last partial batch is kept in one process
    assert h[0]["epoch"] == 1


def test_lr_schedules():
    c = tr.TrainConfig(lr=2e-4)
    assert [tr.lr_at(c, e) for e in (0, 19, 20, 39, 40)] == pytest.approx([2e-4, 2e-4, 1.4e-4, 1.4e-4, 9.8e-5])
    c = tr.TrainConfig(lr=2e-4, lr_schedule="step_code")
    assert [tr.lr_at(c, e) for e in (18, 19, 38, 39, 59)] == pytest.approx([2e-4, 1.4e-4, 1.4e-4, 9.8e-5, 6.86e-5])
    c = tr.TrainConfig(lr=1.0, lr_schedule="cosine", epochs=10)
    assert [tr.lr_at(c, e) for e in (0, 5)] == pytest.approx([1.0, 0.5])
    assert tr.lr_at(tr.TrainConfig(lr=3.0, lr_schedule="none"), 99) == 3.0


def test_config_roundtrip_and_validation():
    c = tr.TrainConfig(epochs=3, amp="bf16")
    assert tr.TrainConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown keys \\['bogus'\\]"):
        tr.TrainConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="TrainConfig.optimizer = 'sgd'"):
        tr.TrainConfig(optimizer="sgd")


def test_amp_setup_cpu():
    cpu = torch.device("cpu")
    assert tr.amp_setup("auto", cpu) == (None, False)
    assert tr.amp_setup("off", cpu) == (None, False)
    assert tr.amp_setup("bf16", cpu) == (torch.bfloat16, False)
    with pytest.raises(ValueError, match="fp16"):
        tr.amp_setup("fp16", cpu)


def test_epoch_sampler_reproducible_and_rank_slices():
    s = EpochBatchSampler(20, 3, seed=1)
    s.set_epoch(2)
    a = list(s)
    s.set_epoch(3)
    b = list(s)
    s.set_epoch(2)
    assert list(s) == a and a != b and len(a) == len(s) == 7
    assert sorted(i for batch in a for i in batch) == list(range(20))
    single = EpochBatchSampler(20, 6, seed=1)
    single.set_epoch(2)
    ranks = [EpochBatchSampler(20, 3, seed=1, rank=r, world=2) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(2)
    parts = [list(r) for r in ranks]
    assert len(ranks[0]) == 3  # 20 // 6 full global batches; the partial one is dropped under DDP
    assert [p0 + p1 for p0, p1 in zip(*parts)] == list(single)[:3]
