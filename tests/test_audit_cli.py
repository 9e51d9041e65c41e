"""``python -m rsnb audit`` end to end: outputs, --dedupe, --against, --run, and one-line errors."""

import csv
import json

import numpy as np
import pytest

from rsnb import experiment as ex
from rsnb.audit.pairs import default_threshold, pair_scores, suspicious_from_sims
from rsnb.cli import main
from rsnb.data.formats import load_corpus
from rsnb.data.plant import plant_problems
from rsnb.data.synthetic import generate


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli_data")
    generate(folder, 150, size=80, seed=7, progress=False)
    truth = plant_problems(folder, duplicates=7, swaps=3, seed=3)
    return folder, truth


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_audit_writes_report_and_dedupes(dataset, tmp_path, capsys):
    folder, truth = dataset
    out = tmp_path / "audit"
    assert main(["audit", "--data", str(folder), "--out", str(out), "--dedupe", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "% of test images" in printed and "report:" in printed
    for name in ("image_pairs.csv", "captions_duplicates.csv", "captions_short.csv", "captions_near_duplicates.csv",
                 "captions_identical_images.csv", "captions_cross_class.csv", "summary.json", "report.md",
                 "dataset_dedup.json", "dedup_dropped.csv", "figures/image_pairs.png", "figures/hash_distances.png",
                 "figures/distinct_captions.png"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    n_test = sum(1 for r in load_corpus(folder).images if r.split == "test")
    leak = [r for r in summary["images"]["leaks"] if r["split"] == "test" and r["in"] == "train"][0]
    assert leak["images"] == n_test and leak["with_duplicate"] >= 6  # 7 planted
    assert f"{leak['percent']:.1f} % of test images" in (out / "report.md").read_text()
    dropped = {r["file"] for r in _rows(out / "dedup_dropped.csv")}
    planted = {d["target"] for d in truth["duplicates"]}
    assert len(dropped & planted) >= 6 and len(dropped - planted) <= 1
    clean = load_corpus(out / "dataset_dedup.json")  # the cleaned split reads back, images included
    assert clean.splits["test"] == n_test - len(dropped)
    assert not dropped & {r.filename for r in clean.images}
    assert all(r.path.is_file() for r in clean.images)
    # the planted copies carry their source's captions: the caption check sees the repeats too
    assert summary["captions"]["duplicate_groups"] >= 6


def test_audit_against_another_dataset(dataset, tmp_path, capsys):
    folder, _ = dataset
    other = tmp_path / "other"
    generate(other, 40, size=80, seed=8, progress=False)
    truth = plant_problems(other, duplicates=4, source=folder, target_split=None, source_split="train",
                           kinds=("jpeg", "rot90"), seed=4)
    out = tmp_path / "audit"
    assert main(["audit", "--data", str(other), "--against", str(folder), "--out", str(out), "--no-progress",
                 "--jaccard", "0"]) == 0
    rows = [r for r in _rows(out / "image_pairs_against.csv") if r["confirmed"] == "True"]
    found = {(r["file_a"], r["file_b"]) for r in rows}
    assert {(d["target"], d["source"]) for d in truth["duplicates"]} <= found
    assert (out / "against_captions_duplicates.csv").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["shared_sentences"] >= 4 * 4  # the copies brought their five captions along
    assert "the other dataset" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["--data", "/no/such/folder"], "/no/such/folder: no such dataset file or folder"),
    (["--threshold", "70"], "--threshold/--other-threshold: a Hamming distance in 0..64"),
    (["--jaccard", "1.5"], "--jaccard: a similarity in [0, 1]"),
    (["--dedupe", "--no-images"], "--dedupe needs the image checks"),
])
def test_bad_input_is_one_line(dataset, tmp_path, capsys, args, message):
    folder, _ = dataset
    base = ["audit", "--out", str(tmp_path / "o"), "--no-progress"]
    if "--data" not in args:
        base += ["--data", str(folder)]
    assert main(base + args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rsnb: error: ") and message in err[0], err


def test_bad_json_names_the_file(tmp_path, capsys):
    bad = tmp_path / "dataset.json"
    bad.write_text('{"images": [1, 2')
    assert main(["audit", "--data", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dataset.json:1:" in err[0] and "malformed JSON" in err[0]


def test_suspicious_from_hand_made_scores():
    # 4 images, captions 0-3 belong to images 0..3; caption 2's own image scores lowest for it
    sims = np.array([[0.9, 0.1, 0.8, 0.0],
                     [0.2, 0.8, 0.7, 0.1],
                     [0.1, 0.2, 0.1, 0.2],
                     [0.0, 0.3, 0.6, 0.9]])
    res = suspicious_from_sims(sims, [0, 1, 2, 3], threshold=2)
    assert res["rank"].tolist() == [1, 1, 4, 1]
    assert res["suspicious"].tolist() == [2] and res["top1"][2] == 0
    assert default_threshold(100) == 50
    score = pair_scores([{"caption_index": 2}, {"caption_index": 3}], {2, 7}, 10)
    assert score["precision"] == 0.5 and score["recall"] == 0.5


def test_audit_with_a_trained_run(dataset, tmp_path):
    folder, truth = dataset
    cfg = ex.load_config("synthetic", [f"data.path={folder}", "data.min_count=1", "image_size=64", "data.max_images=50",
                                       "model.pretrained=false", "model.embed_dim=32", "model.text_hidden=32",
                                       "model.word_dim=16", "train.epochs=1", "train.batch_size=25",
                                       "train.quiet=true", "train.num_workers=0"], quick=False)
    run = tmp_path / "run"
    ex.train_run(cfg, run, device="cpu", progress=False)
    out = tmp_path / "audit"
    assert main(["audit", "--data", str(folder), "--run", str(run), "--out", str(out), "--no-images",
                 "--rank-threshold", "1", "--device", "cpu", "--no-progress"]) == 0
    rows = _rows(out / "suspicious_pairs.csv")
    assert rows and all(int(r["rank"]) > 1 for r in rows)
    # independent count from the run's own score matrix
    model, vocab, cfg2 = ex.load_run(run)
    test = ex.prepare_corpus(cfg2, progress=False).split("test")
    from rsnb.evaluate import evaluate

    _, sims = evaluate(model, test, vocab, device="cpu", image_size=64, return_sims=True)
    sims = np.asarray(sims)
    c2i = np.asarray(test.caption_to_image)
    own = sims[c2i, np.arange(len(c2i))]
    ranks = 1 + (sims > own[None, :]).sum(0)  # ties broken in favour of the own image (like evaluate)
    assert len(rows) == int((ranks > 1).sum())
    assert (out / "figures" / "suspicious_pairs.png").is_file()
    assert "Suspicious pairs" in (out / "report.md").read_text()


def test_synth_command_plants_problems(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["synth", "--out", str(out), "--images", "40", "--size", "48", "--no-progress",
                 "--plant-duplicates", "2", "--plant-swaps", "1"]) == 0
    truth = json.loads((out / "planted.json").read_text())
    assert len(truth["duplicates"]) == 2 and len(truth["swaps"]) == 1
    assert "planted 2 near-duplicates and 1 caption swaps" in capsys.readouterr().out
    assert main(["synth", "--out", str(tmp_path / "t"), "--images", "20", "--size", "48", "--no-progress",
                 "--plant-duplicates", "9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rsnb: error: plant_problems: 9 duplicates asked")
