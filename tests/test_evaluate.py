import math

import numpy as np
import pytest
import torch
from _toy import ToyRetrievalModel, make_toy_samples, toy_eval_loaders

from rsnb import encode
from rsnb import evaluate as ev


def naive_metrics(s: np.ndarray, c2i: list[int]):
    """Reference: stable sort of every row/column by (-score, index), then look the targets up."""
    n_img, n_cap = s.shape
    t2i = []
    for j in range(n_cap):
        order = sorted(range(n_img), key=lambda i: (-s[i, j], i))
        t2i.append(order.index(c2i[j]))
    i2t = []
    for i in range(n_img):
        own = [j for j in range(n_cap) if c2i[j] == i]
        if not own:
            continue
        order = sorted(range(n_cap), key=lambda j: (-s[i, j], j))
        i2t.append(min(order.index(j) for j in own))
    out = {}
    for name, r in (("i2t", np.array(i2t)), ("t2i", np.array(t2i))):
        for k in (1, 5, 10):
            out[f"{name}_R@{k}"] = 100.0 * np.mean(r < k)
        out[f"{name}_medr"] = math.floor(np.median(r)) + 1
        out[f"{name}_meanr"] = r.mean() + 1
    out["mR"] = np.mean([out[f"{d}_R@{k}"] for d in ("i2t", "t2i") for k in (1, 5, 10)])
    return out, np.array(i2t), np.array(t2i)


def _check(s, c2i):
    ref, ri, rt = naive_metrics(np.asarray(s), list(c2i))
    got, ranks = ev.retrieval_metrics(s, c2i, return_ranks=True)
    assert set(got) == set(ev.METRIC_KEYS)
    for k, v in ref.items():
        assert got[k] == pytest.approx(v, abs=1e-9), k
    np.testing.assert_array_equal(ranks["i2t"][ranks["i2t"] >= 0], ri)
    np.testing.assert_array_equal(ranks["t2i"], rt)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_matrices_match_naive(seed):
    rng = np.random.default_rng(seed)
    n_img = 23
    c2i = np.repeat(np.arange(n_img), 5)
    _check(rng.normal(size=(n_img, n_img * 5)), c2i)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_many_ties_match_naive(seed):
    rng = np.random.default_rng(seed)
    n_img = 17
    c2i = rng.permutation(np.repeat(np.arange(n_img), 3))
    s = rng.integers(0, 3, size=(n_img, len(c2i)))  # integers 0..2: ties everywhere
    _check(s, c2i)
    _check(torch.tensor(s, dtype=torch.float32), c2i)


@pytest.mark.parametrize("seed", [0, 1])
def test_irregular_caption_counts(seed):
    rng = np.random.default_rng(seed)
    n_img = 19
    counts = rng.integers(1, 8, size=n_img)  # 1..7 captions per image
    c2i = rng.permutation(np.repeat(np.arange(n_img), counts))  # shuffled caption order
    _check(rng.normal(size=(n_img, len(c2i))).astype(np.float32), c2i)
    _check(rng.integers(0, 3, size=(n_img, len(c2i))).astype(np.float64), c2i)


def test_chunked_counting_matches(monkeypatch):
    monkeypatch.setattr(ev, "_CHUNK_ELEMS", 7)  # force many tiny chunks
    rng = np.random.default_rng(5)
    c2i = rng.permutation(np.repeat(np.arange(11), 4))
    _check(rng.integers(0, 4, size=(11, 44)), c2i)


def test_perfect_ranking_gives_100():
    c2i = np.repeat(np.arange(12), 5)
    s = (c2i[None, :] == np.arange(12)[:, None]).astype(float)  # 1 on own pairs, 0 elsewhere
    m = ev.retrieval_metrics(s, c2i)
    for k in ("i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10", "mR"):
        assert m[k] == 100.0
    assert m["i2t_medr"] == m["t2i_medr"] == 1.0 and m["i2t_meanr"] == m["t2i_meanr"] == 1.0


def test_reversed_ranking_known_values():
    # 12 images, one caption each; the own image is always the lowest score -> rank 11 everywhere.
    n = 12
    s = np.ones((n, n)) - 2 * np.eye(n)
    m = ev.retrieval_metrics(s, np.arange(n))
    assert m["i2t_R@10"] == 0.0 and m["t2i_R@10"] == 0.0 and m["mR"] == 0.0
    assert m["i2t_medr"] == m["t2i_medr"] == 12.0 and m["t2i_meanr"] == 12.0


def test_hand_made_ties_and_ranks():
    # 3 images, 4 captions: c2i = [0, 0, 1, 2]
    s = np.array([
        [0.5, 0.9, 0.9, 0.1],   # image 0: best own caption 1 (0.9), tied with caption 2 (later) -> rank 0
        [0.7, 0.7, 0.7, 0.2],   # image 1: own caption 2 at 0.7, tied with captions 0,1 (earlier) -> rank 2
        [0.3, 0.2, 0.1, 0.3],   # image 2: own caption 3 at 0.3, tied with caption 0 (earlier) -> rank 1
    ])
    m, r = ev.retrieval_metrics(s, [0, 0, 1, 2], return_ranks=True)
    assert r["i2t"].tolist() == [0, 2, 1]
    # t2i: cap0 col [.5,.7,.3] own img0 -> 1; cap1 [.9,.7,.2] -> 0; cap2 [.9,.7,.1] own 1 -> 1;
    # cap3 [.1,.2,.3] own 2 -> 0
    assert r["t2i"].tolist() == [1, 0, 1, 0]
    assert m["i2t_R@1"] == pytest.approx(100 / 3) and m["t2i_R@1"] == 50.0
    assert m["i2t_medr"] == 2.0 and m["t2i_medr"] == 1.0  # floor(median(.5))+1 = 1
    assert m["t2i_meanr"] == 1.5
    assert r["i2t_top1"].tolist() == [1, 0, 0] and r["t2i_top1"].tolist() == [1, 0, 0, 2]


def test_image_without_captions_is_left_out_of_i2t():
    s = np.array([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])  # image 2 has no caption
    m, r = ev.retrieval_metrics(s, [0, 1], return_ranks=True)
    assert r["i2t"].tolist() == [0, 0, -1]
    assert m["i2t_R@1"] == 100.0 and m["t2i_R@1"] == 0.0


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="caption_to_image\\[1\\] = 5"):
        ev.retrieval_metrics(np.zeros((2, 2)), [0, 5])
    with pytest.raises(ValueError, match="3 entries"):
        ev.retrieval_metrics(np.zeros((2, 2)), [0, 1, 1])
    s = np.zeros((2, 2))
    s[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"sims\[1, 0\]"):
        ev.retrieval_metrics(s, [0, 1])


def test_encode_score_single_pass_matches_direct():
    torch.manual_seed(0)
    model = ToyRetrievalModel()
    samples = make_toy_samples(n_images=9, caps_per_image=(1, 4), seed=3)
    il, tl, c2i = toy_eval_loaders(samples, batch_size=4, shuffle_ids=True)
    calls = {"img": 0, "txt": 0}
    enc_i, enc_t = model.encode_images, model.encode_texts
    model.encode_images = lambda x: (calls.__setitem__("img", calls["img"] + len(x)), enc_i(x))[1]
    model.encode_texts = lambda *a: (calls.__setitem__("txt", calls["txt"] + len(a[0])), enc_t(*a))[1]
    img, txt = encode.encode_corpus(model, il, tl, "cpu")
    assert calls == {"img": 9, "txt": len(c2i)}  # every item encoded exactly once
    sims = encode.score_all(model, img, txt, "cpu", chunk=(4, 5))
    # direct computation in corpus order
    with torch.no_grad():
        di = enc_i(samples["images"])
        dt = enc_t(samples["tokens"], samples["lengths"], samples["keywords"], samples["keyword_mask"])
        direct = model.score(di, dt)
    torch.testing.assert_close(sims, direct, atol=1e-6, rtol=1e-5)
    m = ev.evaluate_loaders(model, il, tl, c2i, "cpu")
    assert m == ev.retrieval_metrics(direct, c2i)


def test_keyword_queries_target_own_image():
    torch.manual_seed(0)
    model = ToyRetrievalModel()
    samples = make_toy_samples(n_images=6, caps_per_image=(2, 2), seed=1)
    il, _, _ = toy_eval_loaders(samples, batch_size=4)
    kw = [{"keywords": samples["img_keywords"][i:i + 4], "keyword_mask": samples["img_keyword_mask"][i:i + 4]}
          for i in range(0, 6, 4)]
    m = ev.keyword_query_metrics(model, il, kw, "cpu")
    with torch.no_grad():
        tok, ln = ev.keywords_as_sentence(samples["img_keywords"], samples["img_keyword_mask"])
        q = model.encode_texts(tok, ln, samples["img_keywords"], samples["img_keyword_mask"])
        direct = model.score(model.encode_images(samples["images"]), q)
    assert m == ev.retrieval_metrics(direct, np.arange(6))


def test_keywords_as_sentence():
    kw = torch.tensor([[[3, 4], [5, 0], [9, 9]], [[0, 0], [0, 0], [0, 0]]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    tok, ln = ev.keywords_as_sentence(kw, mask)
    assert tok.tolist() == [[3, 4, 5], [0, 0, 0]] and ln.tolist() == [3, 1]


def test_kfold_and_summary_and_table():
    folds = ev.kfold_splits(23, 5, seed=7)
    assert len(folds) == 5
    vals = np.concatenate([v for _, v in folds])
    assert sorted(vals.tolist()) == list(range(23))  # disjoint, covering
    for tr, va in folds:
        assert not set(tr) & set(va) and len(tr) + len(va) == 23
    again = ev.kfold_splits(23, 5, seed=7)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    rows = [{"mR": 10.0, "i2t_R@1": 1.0}, {"mR": 14.0, "i2t_R@1": 3.0}]
    summ = ev.summarise_folds(rows)
    assert summ["mR"][0] == 12.0 and summ["mR"][1] == pytest.approx(math.sqrt(8))
    m = ev.retrieval_metrics(np.eye(3), [0, 1, 2])
    table = ev.format_table({"perfect": m, "folds": {k: (v, 0.5) for k, v in m.items()}})
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["model", "i2t_R@1"] and len(lines) == 3
    assert "100.00" in lines[1] and "100.00±0.50" in lines[2]


def _disk_corpus(tmp_path):
    from PIL import Image

    from rsnb.data.corpus import Corpus, ImageRecord

    rng = np.random.default_rng(0)
    recs = []
    words = ["red", "green", "blue", "grey", "white"]  # distinct per image: no exact-tie queries
    for i in range(5):
        p = tmp_path / f"img_{i}.png"
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(p)
        caps = [f"a {words[i]} roof near a road {k}" for k in range(1 + i % 3)]  # 1..3 captions
        recs.append(ImageRecord(p.name, p, "test", captions=caps, keywords=[f"{words[i]} roof", "- road"]))
    return Corpus("tiny", tmp_path, recs)


def test_evaluate_on_corpus_matches_manual_pipeline(tmp_path):
    from rsnb.data import dataset as ds
    from rsnb.data.vocab import Vocab

    corpus = _disk_corpus(tmp_path)
    vocab = Vocab.build(corpus.captions, min_count=1)
    torch.manual_seed(0)
    model = ToyRetrievalModel(vocab_size=len(vocab))
    m, sims = ev.evaluate(model, corpus, vocab, device="cpu", batch_size=2, image_size=16, return_sims=True)
    assert sims.shape == (5, len(corpus.captions)) and set(m) == set(ev.METRIC_KEYS)
    imgs = torch.stack([ds.ImageDataset(corpus, image_size=16)[i]["image"] for i in range(5)])
    txt = ds.collate([ds.TextDataset(corpus, vocab)[j] for j in range(len(corpus.captions))])
    with torch.no_grad():
        direct = model.score(model.encode_images(imgs),
                             model.encode_texts(txt["tokens"], txt["lengths"], txt["keywords"], txt["keyword_mask"]))
    torch.testing.assert_close(sims, direct, atol=1e-6, rtol=1e-5)
    assert m == ev.retrieval_metrics(direct, corpus.caption_to_image)

    km = ev.evaluate_keywords(model, corpus, vocab, device="cpu", batch_size=2, image_size=16)
    kw = [[vocab.encode_keyword(k) for k in r.keywords] for r in corpus.images]
    tok = [sum(p, []) for p in kw]
    items = [{"tokens": torch.tensor(t), "image_id": i, "caption_id": i, "keywords": [torch.tensor(x) for x in p]}
             for i, (t, p) in enumerate(zip(tok, kw))]
    q = ds.collate(items)
    with torch.no_grad():
        kd = model.score(model.encode_images(imgs),
                         model.encode_texts(q["tokens"], q["lengths"], q["keywords"], q["keyword_mask"]))
    assert km == ev.retrieval_metrics(kd, np.arange(5))


def _varied_corpus(tmp_path, n=6):
    from PIL import Image

    from rsnb.data.corpus import Corpus, ImageRecord

    rng = np.random.default_rng(1)
    words = "red green blue grey white dark".split()
    recs = []
    for i in range(n):
        p = tmp_path / f"v_{i}.png"
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(p)
        caps = [" ".join([words[i]] + ["roof near a road"] * (1 + (i + k) % 4)) for k in range(2)]  # 5..17 tokens
        recs.append(ImageRecord(p.name, p, "test", captions=caps))
    return Corpus("varied", tmp_path, recs)


def test_evaluate_fast_path_matches_plain_path(tmp_path):
    """uint8 images normalised per batch, length-sorted captions and channels-last give the plain path's scores."""
    from rsnb.data.dataset import TextDataset
    from rsnb.data.vocab import Vocab
    from rsnb.models.amfmn import AMFMN, AMFMNConfig

    corpus = _varied_corpus(tmp_path)
    vocab = Vocab.build(corpus.captions, min_count=1)
    order = [j for b in ev._length_sorted_batches(TextDataset(corpus, vocab), 4) for j in b]
    assert sorted(order) == list(range(12)) and order != list(range(12))  # sorting really permutes
    torch.manual_seed(0)
    model = AMFMN(AMFMNConfig.paper(vocab_size=len(vocab), image_size=32, pretrained=False, vga="soft")).eval()
    kw = dict(device="cpu", batch_size=4, image_size=32, return_sims=True)
    m_fast, fast = ev.evaluate(model, corpus, vocab, **kw)
    m_plain, plain = ev.evaluate(model, corpus, vocab, sort_captions=False, channels_last=False, normalize=True,
                                 cache_images=True, image_batch_size=6, **kw)
    assert fast.shape == (6, 12) and fast.std() > 1e-4  # scores differ between pairs: the check can fail
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
    assert m_fast == ev.retrieval_metrics(plain, corpus.caption_to_image) or m_fast == m_plain


def test_uint8_batches_are_normalised_like_float_items(tmp_path):
    from rsnb.data import dataset as ds

    corpus = _varied_corpus(tmp_path, n=3)
    u8 = torch.stack([ds.ImageDataset(corpus, image_size=32, normalize=False)[i]["image"] for i in range(3)])
    f32 = torch.stack([ds.ImageDataset(corpus, image_size=32)[i]["image"] for i in range(3)])
    assert u8.dtype == torch.uint8 and u8.shape == (3, 3, 32, 32)
    torch.testing.assert_close(ds.normalize(u8), f32, atol=1e-5, rtol=0)
    prepared = encode._prepare_images(u8, torch.device("cpu"), channels_last=True)
    assert prepared.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(prepared, f32, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="normalize expects uint8 images, got torch.float32"):
        ds.normalize(f32)


def test_encoding_names_stay_importable_from_evaluate():
    for name in ("encode_corpus", "score_all", "encode_and_score"):
        assert getattr(ev, name) is getattr(encode, name)
