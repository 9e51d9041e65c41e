"""Checkpoint sets switched by one atomic rename: an interrupt or a kill at any moment leaves a loadable checkpoint."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from _toy import ToyRetrievalModel
from safetensors.torch import save_file

from rsnb import checkpoint as ck

TESTS = Path(__file__).resolve().parent


def _model(seed: int) -> ToyRetrievalModel:
    torch.manual_seed(seed)
    return ToyRetrievalModel()


def _weights_equal(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("boundary", range(4))
def test_interrupt_at_each_file_boundary_keeps_a_complete_checkpoint(tmp_path, monkeypatch, boundary):
    """Ctrl-C before file 1, 2, 3 of a save, or after the switch but before the old set is removed."""
    old, new = _model(1), _model(2)
    opt = torch.optim.Adam(old.parameters())
    ck.save_checkpoint(tmp_path, "last", old, opt, state={"epoch": 1})
    real_write, calls = ck._atomic_write, []

    def interrupted_write(path, write):
        if len(calls) == boundary:
            raise KeyboardInterrupt  # what SIGINT does between two files
        calls.append(path)
        real_write(path, write)

    def interrupted_unlink(self, missing_ok=False):
        raise KeyboardInterrupt  # the switch happened; cleanup of the old set did not

    monkeypatch.setattr(ck, "_atomic_write", interrupted_write)
    if boundary == 3:
        monkeypatch.setattr(Path, "unlink", interrupted_unlink)
    with pytest.raises(KeyboardInterrupt):
        ck.save_checkpoint(tmp_path, "last", new, opt, state={"epoch": 2})
    monkeypatch.undo()
    loaded = ToyRetrievalModel()
    doc = ck.load_checkpoint(tmp_path, "last", loaded, torch.optim.Adam(loaded.parameters()))
    expect_epoch, expect = (2, new) if boundary == 3 else (1, old)  # the JSON rename is the switch
    assert doc["state"]["epoch"] == expect_epoch and _weights_equal(loaded, expect)
    stray = len(list(tmp_path.iterdir())) - 3
    assert stray == (boundary if boundary < 3 else 2)  # written-but-unused files of the new (or old) set
    removed = ck.clean_checkpoints(tmp_path)
    assert len(removed) == stray
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["last.json", *(p.name for k, p in ck.checkpoint_paths(tmp_path, "last").items() if k != "json")])
    assert ck.load_checkpoint(tmp_path, "last", ToyRetrievalModel())["state"]["epoch"] == expect_epoch


def test_temporary_files_of_a_killed_write_are_cleaned(tmp_path):
    ck.save_checkpoint(tmp_path, "best", _model(1), state={"epoch": 4})
    (tmp_path / ".best-0123456789abcdef.safetensors.abc.tmp").write_bytes(b"half a file")  # SIGKILL mid-write
    (tmp_path / ".tmpNF2kSa").write_bytes(b"safetensors' own temporary file, killed mid-write")
    (tmp_path / "best-0123456789abcdef.safetensors").write_bytes(b"set never switched to")
    (tmp_path / "notes.txt").write_text("the user's own file")
    (tmp_path / ".tmp-notes").write_text("not a name either writer makes")
    removed = sorted(p.name for p in ck.clean_checkpoints(tmp_path))
    assert removed == [".best-0123456789abcdef.safetensors.abc.tmp", ".tmpNF2kSa", "best-0123456789abcdef.safetensors"]
    assert (tmp_path / ".tmp-notes").is_file()
    assert (tmp_path / "notes.txt").is_file()
    assert ck.load_checkpoint(tmp_path, "best", ToyRetrievalModel())["state"]["epoch"] == 4


def test_legacy_layout_still_loads_and_is_replaced(tmp_path):
    """Run folders written before checkpoint sets (TAG.safetensors, no ``files`` entry) load and upgrade."""
    model = _model(3)
    ck.save_checkpoint(tmp_path, "last", model, state={"epoch": 1})
    paths = ck.checkpoint_paths(tmp_path, "last")
    doc = json.loads(paths["json"].read_text())
    del doc["files"]
    paths["model"].rename(tmp_path / "last.safetensors")
    paths["optim"].rename(tmp_path / "last.optim.safetensors")
    paths["json"].write_text(json.dumps(doc))
    loaded = ToyRetrievalModel()
    assert ck.load_checkpoint(tmp_path, "last", loaded)["state"]["epoch"] == 1 and _weights_equal(loaded, model)
    ck.save_checkpoint(tmp_path, "last", model, state={"epoch": 2})
    assert not (tmp_path / "last.safetensors").exists() and len(list(tmp_path.iterdir())) == 3


_WRITER = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {tests!r})
    from _toy import ToyRetrievalModel
    from rsnb import checkpoint as ck
    model = ToyRetrievalModel()
    model.big = torch.nn.Linear(512, 512)  # ~1 MB per save: the kill often lands inside a write
    opt = torch.optim.Adam(model.parameters())
    epoch = 0
    while True:
        epoch += 1
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float(epoch))
        ck.save_checkpoint({out!r}, "last", model, opt, state={{"epoch": epoch}})
        if epoch == 1:
            print("ready", flush=True)
""")


def test_sigkill_during_saves_leaves_a_loadable_checkpoint(tmp_path):
    """A real process saving checkpoints in a loop is killed with SIGKILL at random moments."""
    if not hasattr(signal, "SIGKILL"):
        pytest.skip("no SIGKILL on this platform")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), os.environ.get("PYTHONPATH", "")])}
    for trial, delay in enumerate((0.05, 0.17, 0.31)):
        out = tmp_path / f"t{trial}"
        proc = subprocess.Popen([sys.executable, "-c", _WRITER.format(tests=str(TESTS), out=str(out))],
                                stdout=subprocess.PIPE, env=env, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        model = ToyRetrievalModel()
        model.big = torch.nn.Linear(512, 512)
        epoch = ck.load_checkpoint(out, "last", model, torch.optim.Adam(model.parameters()))["state"]["epoch"]
        assert epoch >= 1 and all(bool((p == float(epoch)).all()) for p in model.parameters())
        ck.clean_checkpoints(out)
        assert len(list(out.iterdir())) == 3


def test_foreign_and_pickle_files_are_refused_not_unpickled(tmp_path):
    """A torch pickle or someone else's safetensors under a checkpoint name is an error naming the file."""
    model = ToyRetrievalModel()
    paths = ck.save_checkpoint(tmp_path, "last", model)
    torch.save(model.state_dict(), paths["model"])  # a pickle: must never be unpickled
    with pytest.raises(ck.CheckpointError, match=r"last-[0-9a-f]{16}\.safetensors: corrupt or truncated safetensors"):
        ck.load_checkpoint(tmp_path, "last", ToyRetrievalModel())
    save_file({"w": torch.zeros(2)}, str(paths["model"]))  # valid safetensors, not this save
    with pytest.raises(ck.CheckpointError, match="belongs to a different save"):
        ck.load_checkpoint(tmp_path, "last", ToyRetrievalModel())
    paths["json"].write_text(json.dumps({"epoch": 3}))  # some other program's JSON
    with pytest.raises(ck.CheckpointError, match=r"last\.json: not an rsnb checkpoint"):
        ck.load_checkpoint(tmp_path, "last", ToyRetrievalModel())
