import json
import random

import numpy as np
import pytest
import torch
from _toy import ToyRetrievalModel
from torch import nn

from rsnb import checkpoint as ck


def _trained(seed=0):
    torch.manual_seed(seed)
    model = ToyRetrievalModel()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.7)
    for _ in range(3):
        x = torch.randn(2, 3, 8, 8)
        model.encode_images(x)["img"].pow(2).sum().backward()
        opt.step()
        sched.step()
        opt.zero_grad()
    return model, opt, sched


def test_roundtrip_model_optimizer_scheduler_scaler_rng(tmp_path):
    model, opt, sched = _trained()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    state = {"epoch": 3, "step": 17, "history": [{"epoch": 1, "loss": 1.5}], "metrics": {"mR": 12.5},
             "best": float("-inf")}
    random.seed(11)
    np.random.seed(11)
    torch.manual_seed(11)
    paths = ck.save_checkpoint(tmp_path, "last", model, opt, sched, scaler, config={"lr": 1e-2}, state=state)
    sid = json.loads((tmp_path / "last.json").read_text())["save_id"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"last-{sid}.optim.safetensors", f"last-{sid}.safetensors",
                                                          "last.json"]
    assert paths["model"].name == f"last-{sid}.safetensors"
    expect = (random.random(), float(np.random.rand()), float(torch.rand(1)))

    model2, opt2, sched2 = _trained(seed=1)  # different weights and optimizer moments
    scaler2 = torch.amp.GradScaler("cpu", enabled=False)
    doc = ck.load_checkpoint(tmp_path, "last", model2, opt2, sched2, scaler2, restore_rng_state=True)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expect
    assert doc["config"] == {"lr": 1e-2}
    assert doc["state"]["epoch"] == 3 and doc["state"]["history"] == state["history"]
    assert doc["state"]["best"] == float("-inf")
    for (k, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(a, b), k
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for pid in s1["state"]:
        for key, v in s1["state"][pid].items():
            assert torch.equal(v, s2["state"][pid][key]), (pid, key)
    assert sched2.state_dict() == sched.state_dict()
    # the optimizer continues identically from the restored state
    for m, o in ((model, opt), (model2, opt2)):
        torch.manual_seed(5)
        m.encode_images(torch.randn(2, 3, 8, 8))["img"].sum().backward()
        o.step()
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)
    assert paths["json"].exists()


def test_tied_and_noncontiguous_weights(tmp_path):
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4, bias=False)
            self.b = nn.Linear(4, 4, bias=False)
            self.b.weight = self.a.weight  # shared storage
            self.register_buffer("t", torch.arange(12.0).reshape(3, 4).T)  # non-contiguous

    m = Tied()
    ck.save_checkpoint(tmp_path, "x", m)
    m2 = Tied()
    ck.load_checkpoint(tmp_path, "x", m2)
    assert torch.equal(m2.a.weight, m.a.weight) and m2.b.weight is m2.a.weight
    assert torch.equal(m2.t, m.t)


def test_truncated_safetensors_names_file(tmp_path):
    model, _, _ = _trained()
    p = ck.save_checkpoint(tmp_path, "last", model)["model"]
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ck.CheckpointError, match=r"last-[0-9a-f]{16}\.safetensors: corrupt or truncated"):
        ck.load_checkpoint(tmp_path, "last", ToyRetrievalModel())


def test_corrupt_json_names_file(tmp_path):
    model, _, _ = _trained()
    p = ck.save_checkpoint(tmp_path, "last", model)["json"]
    p.write_text(p.read_text()[:40])
    with pytest.raises(ck.CheckpointError, match=r"last\.json: corrupt or truncated JSON"):
        ck.load_checkpoint(tmp_path, "last", ToyRetrievalModel())


def test_mixed_saves_detected(tmp_path):
    model, _, _ = _trained()
    mine = ck.save_checkpoint(tmp_path, "last", model)
    other = ck.save_checkpoint(tmp_path / "other", "last", model)
    mine["model"].write_bytes(other["model"].read_bytes())  # a file from another save under this set's name
    with pytest.raises(ck.CheckpointError, match="different save"):
        ck.load_checkpoint(tmp_path, "last", ToyRetrievalModel())


def test_missing_keys_and_shape_mismatch(tmp_path):
    ck.save_checkpoint(tmp_path, "m", ToyRetrievalModel(dim=16))
    with pytest.raises(ck.CheckpointError, match=r"m-[0-9a-f]{16}\.safetensors: does not match.*shape mismatches.*img_proj"):
        ck.load_checkpoint(tmp_path, "m", ToyRetrievalModel(dim=8))
    bigger = ToyRetrievalModel()
    bigger.extra = nn.Linear(2, 2)
    with pytest.raises(ck.CheckpointError, match=r"2 missing keys \(e\.g\. extra\.weight"):
        ck.load_checkpoint(tmp_path, "m", bigger)
    with pytest.raises(ck.CheckpointError, match="missing"):
        ck.load_checkpoint(tmp_path, "nope", ToyRetrievalModel())


def test_refuses_nan_weights_and_keeps_previous(tmp_path):
    model = ToyRetrievalModel()
    ck.save_checkpoint(tmp_path, "last", model, state={"epoch": 1})
    with torch.no_grad():
        model.txt_proj.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="txt_proj.weight"):
        ck.save_checkpoint(tmp_path, "last", model, state={"epoch": 2})
    assert ck.load_checkpoint(tmp_path, "last")["state"]["epoch"] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_json_holds_no_tensors(tmp_path):
    model, opt, _ = _trained()
    ck.save_checkpoint(tmp_path, "t", model, opt)
    doc = json.loads((tmp_path / "t.json").read_text())
    exp_avg = doc["optimizer"]["state"]["__items__"][0][1]["exp_avg"]
    assert set(exp_avg) == {"__tensor__"}
    assert doc["optimizer"]["param_groups"][0]["betas"] == {"__tuple__": [0.9, 0.999]}
