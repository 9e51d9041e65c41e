import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from rsnb import analysis as an
from rsnb.api import encode_queries
from rsnb.data.corpus import Corpus, ImageRecord
from rsnb.data.vocab import Vocab
from rsnb.evaluate import TABLE_KEYS


def _rec(cls, captions, keywords=(), objects=None, split="test"):
    meta = {"objects": [{"name": n, "scale": s, "colour": c, "box": [0, 0, 1, 1], "mentioned": True}
                        for n, s, c in objects]} if objects is not None else None
    return ImageRecord(f"{cls}.png", Path(f"{cls}.png"), split, cls, list(captions), list(keywords), meta)


# ---------------------------------------------------------------- paper numbers
def test_paper_rows_values_and_mr_consistency():
    rows = an.paper_rows("RSITMD")
    assert list(rows) == ["paper RSITMD AMFMN-soft", "paper RSITMD AMFMN-fusion", "paper RSITMD AMFMN-sim"]
    assert rows["paper RSITMD AMFMN-sim"]["mR"] == 29.72
    assert rows["paper RSITMD AMFMN-sim"]["t2i_R@10"] == 54.87
    assert an.PAPER_TABLE_III["AMFMN"]["t2i_R@1"] == 8.27
    # mR is the mean of the six recalls up to rounding; the paper's RSICD AMFMN-soft row is the one
    # row whose printed mR (16.02) disagrees with its recalls (mean 16.16): a typo in the paper itself
    off = []
    for d, table in [*an.PAPER_TABLE_II.items(), ("III", an.PAPER_TABLE_III)]:
        for m, r in table.items():
            six = [r[k] for k in TABLE_KEYS[:6]]
            if abs(np.mean(six) - r["mR"]) > 0.01:
                off.append((d, m))
    assert off == [("RSICD", "AMFMN-soft")]


def test_paper_rows_unknown():
    with pytest.raises(KeyError, match="dataset 'NWPU'"):
        an.paper_rows("NWPU")
    with pytest.raises(KeyError, match="method 'CLIP'"):
        an.paper_rows("RSICD", ["CLIP"])


# ---------------------------------------------------------------- rank histograms
def test_rank_buckets_labels():
    assert an.rank_buckets() == ["1", "2-5", "6-10", "11-20", "21-50", ">50"]
    assert an.rank_buckets((1, 3)) == ["1-2", ">2"]


def test_rank_histogram_hand_case():
    ranks = [0, 0, 1, 4, 5, 9, 10, 60, -1]  # 0-based; -1 (image without captions) ignored
    got = an.rank_histogram(ranks)
    np.testing.assert_allclose(got, np.array([2, 2, 2, 1, 0, 1]) / 8)
    with pytest.raises(ValueError, match="start at 1"):
        an.rank_histogram(ranks, edges=(2, 5))


def test_chance_rank_histogram_uniform():
    np.testing.assert_allclose(an.chance_rank_histogram(20, 1), [1 / 20, 4 / 20, 5 / 20, 10 / 20, 0, 0])


def test_chance_rank_histogram_matches_enumeration():
    n, m, edges = 9, 3, (1, 2, 4, 7)
    counts = np.zeros(len(edges))
    for pos in itertools.combinations(range(n), m):  # every placement of the relevant items
        first = min(pos) + 1
        counts[np.searchsorted(edges, first, side="right") - 1] += 1
    np.testing.assert_allclose(an.chance_rank_histogram(n, m, edges), counts / counts.sum())


# ---------------------------------------------------------------- breakdowns
def test_grouped_recall_hand_case():
    ranks = np.array([0, 3, 12, 0, 0, -1])
    groups = ["a", "a", "a", "b", "b", "b"]
    got = an.grouped_recall(ranks, groups)
    assert list(got) == ["a", "b"]
    assert got["a"] == {"n": 3.0, "R@1": pytest.approx(100 / 3), "R@5": pytest.approx(200 / 3),
                        "R@10": pytest.approx(200 / 3), "medr": 4.0}
    assert got["b"]["n"] == 2 and got["b"]["R@1"] == 100.0 and got["b"]["medr"] == 1.0
    with pytest.raises(ValueError, match="3 ranks but 2"):
        an.grouped_recall([0, 1, 2], ["a", "b"])


def test_class_confusion_rows_normalised():
    classes, m = an.class_confusion(["a", "a", "b", "b", "b"], ["a", "b", "b", "b", "c"])
    assert classes == ["a", "b", "c"]
    np.testing.assert_allclose(m, [[0.5, 0.5, 0], [0, 2 / 3, 1 / 3], [0, 0, 0]])


def test_caption_kinds_and_scale_groups():
    assert an.caption_kinds("Two white cars are parked on the grey road.") == {"car", "road"}
    # "pond" names a lake, but only counts when the image holds a lake
    assert an.caption_kinds("Three boats in a pond.", present={"boat"}) == {"boat"}
    assert an.scale_group({"small"}) == "small targets only"
    assert an.scale_group({"small", "large"}) == "small + larger"
    assert an.scale_group({"medium"}) == "medium/large only"
    assert an.scale_group(set()) == "no target named"
    corpus = Corpus("t", Path("."), [
        _rec("port", ["Two boats are moored.", "A ship is next to the pier.", "This is a port."],
             objects=[("boat", "small", "white"), ("ship", "medium", "grey"), ("pier", "medium", "grey")]),
        _rec("real", ["Some cars."]),  # no metadata
    ])
    assert an.caption_scale_groups(corpus) == ["small targets only", "medium/large only", "no target named",
                                               "unknown"]


def test_phrase_relevance_and_frequent_keywords():
    corpus = Corpus("t", Path("."), [
        _rec("port", [], ["- port", "white boats"], [("boat", "small", "white")]),
        _rec("port", [], ["- port"], [("boat", "small", "red"), ("ship", "medium", "white")]),
        _rec("storagetanks", [], ["- storage tanks"], [("tank", "small", "white")]),
    ])
    np.testing.assert_array_equal(an.phrase_relevance(corpus, "white boats"), [True, False, False])
    np.testing.assert_array_equal(an.phrase_relevance(corpus, "boats"), [True, True, False])
    np.testing.assert_array_equal(an.phrase_relevance(corpus, "- port"), [True, True, False])
    np.testing.assert_array_equal(an.phrase_relevance(corpus, "white tanks"), [False, False, True])
    assert an.frequent_keywords(corpus, 2) == [("- port", 2), ("- storage tanks", 1)]


# ---------------------------------------------------------------- galleries
def test_top_k_matches_stable_sort():
    rng = np.random.default_rng(0)
    sims = rng.integers(0, 4, (6, 9)).astype(float)  # many ties
    t2i = an.top_k(sims, 3, "t2i")
    i2t = an.top_k(sims, 4, "i2t")
    assert t2i.shape == (9, 3) and i2t.shape == (6, 4)
    for j in range(9):
        assert t2i[j].tolist() == sorted(range(6), key=lambda i: (-sims[i, j], i))[:3]
    for i in range(6):
        assert i2t[i].tolist() == sorted(range(9), key=lambda j: (-sims[i, j], j))[:4]
    with pytest.raises(ValueError, match="direction"):
        an.top_k(sims, 3, "x")


def test_pick_examples():
    ranks = np.array([0, 5, 0, 2, 9, 0, -1, 9])
    got = an.pick_examples(ranks, n_hits=2, n_misses=3, seed=0)
    assert len(got) == 5 and set(got[:2]) <= {0, 2, 5} and got[:2] == sorted(got[:2])
    assert got[2:] == [4, 7, 1]  # worst first, ties by index
    assert an.pick_examples(np.array([3, 4]), 2, 1) == [1]
    # at most one miss per image: queries 4 and 7 share image 1
    assert an.pick_examples(ranks, 0, 3, distinct=[0, 0, 0, 0, 1, 1, 1, 1]) == [4, 1]


# ---------------------------------------------------------------- model-based helpers
def _tiny_amfmn(**kw):
    from rsnb.models.amfmn import AMFMN, AMFMNConfig

    torch.manual_seed(0)
    base = dict(pretrained=False, image_size=64, vocab_size=12, embed_dim=32, word_dim=16, text_hidden=32,
                keyword_hidden=32)
    cfg = AMFMNConfig.paper(**{**base, **kw})
    return AMFMN(cfg, init_pretrained=False).eval()


@pytest.mark.parametrize("kw", [dict(vga="soft"), dict(vga="fusion"), dict(vga="sim"),
                                dict(text_input="both"), dict(use_vga=False)])
def test_guided_text_vectors_reproduce_scores(kw):
    model = _tiny_amfmn(**kw)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        img = model.encode_images(torch.randn(3, 3, 64, 64, generator=g))
        tokens = torch.randint(2, 12, (5, 6), generator=g)
        kws = torch.randint(2, 12, (5, 2, 2), generator=g)
        lengths, kw_mask = torch.tensor([6, 4, 3, 6, 2]), torch.ones(5, 2, dtype=torch.bool)
        txt = model.encode_texts(tokens, lengths, kws, kw_mask)
        sims = model.score(img, txt)  # (3, 5)
    pair = [0, 2, 1, 1, 0]
    ft = an.guided_text_vectors(model, img, txt, pair)  # (5, 32)
    cos = torch.nn.functional.cosine_similarity(img["v"][pair], ft, dim=1)
    torch.testing.assert_close(cos, sims[pair, torch.arange(5)], atol=1e-5, rtol=1e-5)


def test_encode_queries_matches_encode_texts():
    vocab = Vocab(["<pad>", "<unk>", "white", "boats", "port", "-", "near", "a", "tanks"])
    model = _tiny_amfmn(text_input="both", vocab_size=len(vocab))
    got = encode_queries(model, vocab, ["white boats near a port", ["- port", "white tanks"]])
    with torch.no_grad():
        ref0 = model.encode_texts(torch.tensor([[2, 3, 6, 7, 4]]), torch.tensor([5]),
                                  torch.tensor([[[2, 3, 6, 7, 4]]]), torch.ones(1, 1, dtype=torch.bool))
        # keyword list: sentence = phrases concatenated without "-", keywords = the phrases
        ref1 = model.encode_texts(torch.tensor([[4, 2, 8]]), torch.tensor([3]),
                                  torch.tensor([[[4, 0], [2, 8]]]), torch.ones(1, 2, dtype=torch.bool))
    for key in ("s", "k"):
        torch.testing.assert_close(got[key][0], ref0[key][0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got[key][1], ref1[key][0], atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_embed_2d_keeps_clusters_apart():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.05, (30, 8)) + np.eye(8)[0]
    b = rng.normal(0, 0.05, (20, 8)) + np.eye(8)[1]
    xa, xb = an.embed_2d(a, b, n_neighbors=10)
    assert xa.shape == (30, 2) and xb.shape == (20, 2)
    within = max(np.ptp(xa, 0).max(), np.ptp(xb, 0).max())
    assert np.linalg.norm(xa.mean(0) - xb.mean(0)) > within


# ---------------------------------------------------------------- run cache
def test_variant_config_quick_and_full():
    q = an.variant_config("soft", quick=True)
    assert q["model"]["vga"] == "soft" and q["model"]["pretrained"] is False
    assert q["image_size"] == 128 and q["data"]["max_images"] == 48 and q["train"]["num_workers"] == 0
    f = an.variant_config("fusion", quick=False)
    assert f["model"]["vga"] == "fusion" and f["image_size"] == 256
    assert f["train"]["epochs"] == 30 and f["train"]["batch_size"] == 128 and f["data"]["max_images"] is None
    assert f["train"]["lr"] == 2e-4  # config.FULL_RUN_OVERRIDES; the 150-epoch paper schedule is the CLI preset


def test_run_path_and_status(tmp_path, monkeypatch):
    monkeypatch.setenv("RSNB_CACHE", str(tmp_path))
    monkeypatch.setenv("RSNB_QUICK", "1")
    assert an.run_path("amfmn-sim") == tmp_path / "runs" / "amfmn-sim-quick"
    monkeypatch.setenv("RSNB_QUICK", "0")
    assert an.run_path("amfmn-sim").name == "amfmn-sim-full"
    cfg = an.variant_config("sim", quick=True)
    run = tmp_path / "run"
    assert an.run_status(cfg, run) == "absent"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (run / "last.json").write_text("{}")
    (run / "history.json").write_text(json.dumps([{"epoch": 1}]))
    assert an.run_status(cfg, run) == "partial"  # 1 of 2 epochs
    (run / "history.json").write_text(json.dumps([{"epoch": 1}, {"epoch": 2}]))
    assert an.run_status(cfg, run) == "complete"
    assert an.run_status(an.variant_config("soft", quick=True), run) == "absent"  # other config


def test_encode_split_gives_evaluate_scores(tmp_path):
    from rsnb import encode
    from rsnb import evaluate as ev
    from rsnb.data.formats import load_corpus
    from rsnb.data.synthetic import generate

    path = generate(tmp_path / "syn", 5, size=64, seed=3, splits=(0.0, 0.0, 1.0), progress=False)
    corpus = load_corpus(path)
    test = corpus.split("test")
    vocab = Vocab.build(test.captions, min_count=1)
    model = _tiny_amfmn(vocab_size=len(vocab))
    img, txt = an.encode_split(model, test, vocab, image_size=64, device="cpu", batch_size=2)
    assert img["v"].shape == (5, 32) and txt["s"].shape == (25, 32)
    _, ref = ev.evaluate(model, test, vocab, device="cpu", return_sims=True, image_size=64)
    torch.testing.assert_close(encode.score_all(model, img, txt, "cpu"), ref)


def test_evaluation_split_ignores_quick_subsample(tmp_path, monkeypatch):
    monkeypatch.setenv("RSNB_CACHE", str(tmp_path))
    cfg = an.variant_config("sim", quick=True)
    cfg["data"]["synthetic"] = {"images": 40, "size": 32, "seed": 0}
    cfg["data"]["max_images"] = 12
    from rsnb.experiment import prepare_corpus

    sub = prepare_corpus(cfg, progress=False)
    test = an.evaluation_split(cfg, "test")
    assert len(sub) == 12 and len(test) == 4  # 10 % of 40, stratified by the generator
    train_files = {r.filename for r in sub.images if r.split == "train"}
    assert train_files and not train_files & {r.filename for r in test.images}
    assert cfg["data"]["max_images"] == 12  # the caller's config is not modified


def test_cached_run_trains_once_and_is_reproducible(tmp_path, monkeypatch):
    monkeypatch.setenv("RSNB_CACHE", str(tmp_path))
    cfg = an.variant_config("soft", quick=True)
    cfg["image_size"] = 64
    cfg["data"].update(synthetic={"images": 6, "size": 64, "seed": 0}, max_images=None)
    cfg["model"].update(embed_dim=32, word_dim=16, text_hidden=32)
    cfg["train"].update(epochs=1, batch_size=20)
    first = an.cached_run(cfg, tmp_path / "a", device="cpu")
    assert first["trained"] and len(first["history"]) == 1 and not first["model"].training
    again = an.cached_run(cfg, tmp_path / "a", device="cpu")
    assert not again["trained"] and again["history"] == first["history"]
    torch.manual_seed(123)  # a different global RNG state must not change the run
    other = an.cached_run(cfg, tmp_path / "b", device="cpu")
    assert other["trained"] and other["history"][0]["loss"] == first["history"][0]["loss"]
    for (name, p), q in zip(first["model"].state_dict().items(), other["model"].state_dict().values()):
        assert torch.equal(p, q), name
    # weights that no longer fit the model code (a stale cache) are retrained, with a warning
    from rsnb import experiment
    from rsnb.checkpoint import save_checkpoint

    class Retrained(Exception):
        pass

    def fake_train_run(cfg_, run_dir, resume=False, device="auto", overwrite=False):
        assert Path(run_dir) == tmp_path / "a" and not resume
        raise Retrained

    save_checkpoint(tmp_path / "a", "best", _tiny_amfmn(embed_dim=16))
    monkeypatch.setattr(experiment, "train_run", fake_train_run)
    with pytest.warns(UserWarning, match="does not load"), pytest.raises(Retrained):
        an.cached_run(cfg, tmp_path / "a", device="cpu")


def test_run_status_reads_the_recorded_backbone_init(tmp_path):
    """A run folder records the backbone init it really had; an offline fallback to random weights
    still answers the same config, any other difference does not."""
    import yaml

    from rsnb import experiment as ex

    cfg = ex.load_config("synthetic", ["train.epochs=1", "model.pretrained=true"], quick=False)
    stored = json.loads(json.dumps(cfg))
    stored["model"]["pretrained"] = "random"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(stored))
    (tmp_path / "last.json").write_text("{}")
    (tmp_path / "history.json").write_text(json.dumps([{"epoch": 1}]))
    assert an.run_status(cfg, tmp_path) == "complete"
    assert an.run_status({**cfg, "model": {**cfg["model"], "pretrained": False}}, tmp_path) == "complete"
    assert an.run_status({**cfg, "model": {**cfg["model"], "pretrained": "/w/resnet18.pth"}}, tmp_path) == "absent"
    stored["model"]["pretrained"] = "imagenet"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(stored))
    assert an.run_status({**cfg, "model": {**cfg["model"], "pretrained": False}}, tmp_path) == "absent"
