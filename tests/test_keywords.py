"""The keyword protocol: one query per image for keyword-only models, and the paper's keyword input rules."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from rsnb import evaluate as ev
from rsnb import experiment as ex
from rsnb.data import dataset as ds
from rsnb.data.corpus import Corpus, ImageRecord
from rsnb.data.keywords import KeywordRules
from rsnb.data.vocab import Vocab
from rsnb.models.amfmn import AMFMN, AMFMNConfig

COLOURS = ["red", "green", "blue", "grey", "white", "black", "brown", "pink", "orange", "purple", "yellow", "cyan"]
TARGETS = ["roof", "pool", "boat", "tank"]


def _corpus(tmp_path, n=12, keywords=True):
    rng = np.random.default_rng(0)
    recs = []
    for i in range(n):
        p = tmp_path / f"img_{i}.png"
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(p)
        c, t = COLOURS[i], TARGETS[i % 4]
        caps = [f"there is a {c} {t} next to the road number {k}" for k in range(5)]
        kws = [f"{c} {t}", "- road"] if keywords else []
        recs.append(ImageRecord(p.name, p, "test", captions=caps, keywords=kws))
    return Corpus("tiny", tmp_path, recs)


def _naive(sims, c2i):
    """R@K by sorting every row/column (stable, ties by index)."""
    n_img, n_cap = sims.shape
    t2i = [sorted(range(n_img), key=lambda i: (-sims[i, j], i)).index(c2i[j]) for j in range(n_cap)]
    i2t = [min(sorted(range(n_cap), key=lambda j: (-sims[i, j], j)).index(j) for j in range(n_cap) if c2i[j] == i)
           for i in range(n_img)]
    return {f"{d}_R@{k}": 100.0 * np.mean(np.array(r) < k) for d, r in (("i2t", i2t), ("t2i", t2i)) for k in (1, 5, 10)}


@pytest.mark.parametrize("preset", ["m2", "m4", "m7"])
def test_keyword_only_models_get_one_query_per_image(tmp_path, preset):
    corpus = _corpus(tmp_path)
    vocab = Vocab.build(corpus.captions + [k for r in corpus.images for k in r.keywords], min_count=1)
    torch.manual_seed(3)
    model = AMFMN(AMFMNConfig.ablation(preset, pretrained=False, image_size=32, vocab_size=len(vocab), word_dim=12,
                                       text_hidden=16, embed_dim=16, keyword_hidden=10)).eval()
    assert model.text_inputs == ("keywords",)
    got = ev.evaluate(model, corpus, vocab, device="cpu", batch_size=5, image_size=32)
    # reference: each image once, each image's keyword set once (paper Table III)
    imgs = torch.stack([ds.ImageDataset(corpus, image_size=32)[i]["image"] for i in range(len(corpus))])
    phrases = [ds.encode_phrases(vocab, r.keywords) for r in corpus.images]
    q = ds.collate([{"tokens": torch.cat(p), "image_id": i, "caption_id": i, "keywords": p}
                    for i, p in enumerate(phrases)])
    with torch.no_grad():
        sims = model.score(model.encode_images(imgs),
                           model.encode_texts(q["tokens"], q["lengths"], q["keywords"], q["keyword_mask"])).numpy()
    assert sims.shape == (12, 12)
    ref = _naive(sims, list(range(12)))
    assert {k: got[k] for k in ref} == pytest.approx(ref)
    assert got["i2t_R@5"] > got["i2t_R@1"]  # five copies of one query would force R@5 == R@1
    with pytest.raises(ValueError, match="keyword-only"):
        ev.evaluate(model, corpus, vocab, device="cpu", image_size=32, return_sims=True)


def test_rules_filter_keywords_and_drop_frequent_words():
    train_kw = ["red roof", "red pool", "red boat", "green roof", "- port", "dark sea"]
    rules = KeywordRules.from_training(train_kw, from_sentence=True, word_share=0.5, joint=True)
    assert rules.lexicon == {"red", "roof", "pool", "boat", "green", "port", "dark", "sea"}
    assert rules.drop_words == {"red"}  # in 3 of 6 phrases >= 50 %
    assert rules.sentence("There is a red roof near the red sea.") == "there is a roof near the sea"
    assert rules.keywords_of(["a roof and a red boat", "the red roof by the sea"]) == ["roof", "red", "boat", "sea"]
    sentence_only = KeywordRules.from_training(train_kw, joint=False)
    assert sentence_only.drop_words == frozenset() and sentence_only.from_sentence
    off = KeywordRules.from_training(train_kw, from_sentence=False, word_share=0, joint=True)
    assert not off.active
    no_keywords = KeywordRules.from_training([])  # e.g. UCM: every non-stop-word may be a keyword
    assert no_keywords.lexicon is None and no_keywords.keywords_of(["the tank is white"]) == ["tank", "white"]


def test_text_dataset_applies_the_rules(tmp_path):
    corpus = _corpus(tmp_path, n=4, keywords=False)
    corpus.images[0].keywords.extend(["red roof"])  # an image with its own keywords keeps them
    vocab = Vocab.build(corpus.captions + ["red roof"], min_count=1)
    rules = KeywordRules(lexicon=frozenset({"green", "pool", "blue", "boat"}), from_sentence=True,
                         drop_words=frozenset({"road"}))
    d = ds.TextDataset(corpus, vocab, rules)
    item0, item5 = d[0], d[5]  # image 0 (own keywords), image 1 (none)
    assert [k.tolist() for k in item0["keywords"]] == [[vocab.stoi["red"], vocab.stoi["roof"]]]
    assert [k.tolist() for k in item5["keywords"]] == [[vocab.stoi["green"]], [vocab.stoi["pool"]]]
    assert vocab.stoi["road"] not in item5["tokens"].tolist()
    assert ds.TextDataset(corpus, vocab)[5]["keywords"] == []  # without rules: no keywords
    model_kw = ev.evaluate_keywords  # keyword queries for images without keywords come from their captions
    with pytest.raises(ValueError, match="image 1 .* has no keywords"):
        model_kw(None, corpus, vocab)


def test_run_rules_follow_the_model_and_config(tmp_path):
    corpus = _corpus(tmp_path)
    vocab = Vocab.build(corpus.captions + [k for r in corpus.images for k in r.keywords], min_count=1)
    cfg = ex.load_config("synthetic", quick=False)
    kw = dict(pretrained=False, image_size=32, vocab_size=len(vocab), word_dim=12, text_hidden=16, embed_dim=16,
              keyword_hidden=10)
    joint, keywords_only = AMFMN(AMFMNConfig.ablation("m9", **kw)), AMFMN(AMFMNConfig.ablation("m7", **kw))
    assert ex.keyword_rules(cfg, corpus, AMFMN(AMFMNConfig.paper(**kw))) is None  # sentence only
    assert ex.keyword_rules(cfg, corpus, joint).drop_words == set(TARGETS) | {"road"}  # >= 5 %: not the colours
    cfg = ex.load_config("synthetic", ["data.keyword_word_share=0.3"], quick=False)
    rules = ex.keyword_rules(cfg, corpus, joint)
    assert rules.drop_words == {"road"}  # in 12 of 24 phrases; a target in 3, a colour in 1
    assert ex.keyword_rules(cfg, corpus, keywords_only).drop_words == frozenset()
    data = ex.train_dataset(cfg, corpus, vocab, rules)
    assert vocab.stoi["road"] not in data[0]["tokens"].tolist()
    off = ex.load_config("synthetic", ["data.keywords_from_sentence=false", "data.keyword_word_share=0"], quick=False)
    assert ex.keyword_rules(off, corpus, joint) is None
    assert math.isclose(ex.load_config("synthetic", quick=False)["data"]["keyword_word_share"], 0.05)
