import random
import warnings
from pathlib import Path

import nltk
import numpy as np
import pytest
import torch
from nltk.stem import PorterStemmer
from nltk.translate.bleu_score import sentence_bleu

from rsnb import prior, prior_meteor
from rsnb.data.corpus import Corpus, ImageRecord


def _nltk_has(resource):
    try:
        nltk.data.find(resource)
        return True
    except LookupError:
        return False


HAS_PUNKT = _nltk_has("tokenizers/punkt_tab/english/")
HAS_STOPWORDS = _nltk_has("corpora/stopwords")
TOKENIZE = nltk.word_tokenize if HAS_PUNKT else prior.word_tokenize
STOP = (set(nltk.corpus.stopwords.words("english")) if HAS_STOPWORDS else set(prior.NLTK_ENGLISH_STOPWORDS)) | {",", "."}
STEMMER = PorterStemmer()

WORDS = ("there is a are the of this was some many green trees tree red roof roofs building buildings "
         "parked parking car cars river , . beside near white").split()


def nltk_bleu(refs, hyp):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sentence_bleu(refs, hyp, weights=(0.25, 0.25, 0.25, 0.25))


def naive_similarity(references, caption):
    """The official calc_sim written out with NLTK (word_tokenize, PorterStemmer, sentence_bleu)."""
    def pre(sent):
        toks = [STEMMER.stem(w.lower()) for w in TOKENIZE(sent)]
        return toks, [w for w in toks if w not in STOP]
    refs = [pre(r) for r in references]
    cap, cap_content = pre(caption)
    score1 = 1 if cap in [r[0] for r in refs] else nltk_bleu([r[0] for r in refs], cap)
    score2 = np.mean([len(set(r[1]) & set(cap_content)) / len(r[1]) for r in refs if len(r[1]) != 0])
    return float(np.mean([score1, score2]))


def random_corpus(rng, n_images, per_image=5):
    out = []
    for _ in range(n_images):
        caps = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 11))) for _ in range(per_image)]
        if rng.random() < 0.3:  # a duplicated reference, as in RSICD
            caps[1] = caps[0]
        out.append(caps)
    # captions repeated in other images (exact matches off the diagonal), differing only in case
    out[1][2] = out[0][0].upper()
    out[2][3] = out[0][1]
    return out


def test_stopword_list_is_nltk_english():
    assert len(prior.NLTK_ENGLISH_STOPWORDS) == 179
    assert {"the", "a", "there", "is", "wouldn't", "ourselves", "ma"} <= prior.NLTK_ENGLISH_STOPWORDS
    assert "green" not in prior.NLTK_ENGLISH_STOPWORDS
    if HAS_STOPWORDS:
        assert set(nltk.corpus.stopwords.words("english")) >= prior.NLTK_ENGLISH_STOPWORDS


@pytest.mark.parametrize("text, tokens", [
    ("This is a beach. The water is beautiful.",
     ["This", "is", "a", "beach", ".", "The", "water", "is", "beautiful", "."]),
    ("There are two white houses next to the baseball field, which is green",
     ["There", "are", "two", "white", "houses", "next", "to", "the", "baseball", "field", ",", "which", "is", "green"]),
    ("Mr. Sima saw the house by the road", ["Mr.", "Sima", "saw", "the", "house", "by", "the", "road"]),
    ("green ocean with white waves . .", ["green", "ocean", "with", "white", "waves", ".", "."]),
    ("Is it a villa! Yes it's right? ok", ["Is", "it", "a", "villa", "!", "Yes", "it", "'s", "right", "?", "ok"]),
    ("", []),
])
def test_word_tokenize(text, tokens):
    assert prior.word_tokenize(text) == tokens
    if HAS_PUNKT:
        assert nltk.word_tokenize(text) == tokens


def test_preprocess_stems_before_removing_stopwords():
    tokens, content = prior.preprocess("This was a Building, with parked cars.")
    assert tokens == ("thi", "wa", "a", "build", ",", "with", "park", "car", ".")
    # "this"/"was" stem to "thi"/"wa", which are not stop-words: the official script keeps them
    assert content == ("thi", "wa", "build", "park", "car")


def test_sentence_bleu4_matches_nltk_on_random_cases():
    rng = random.Random(0)
    vocab = list("abcdefg")
    cases = []
    for k in range(300):
        refs = [[rng.choice(vocab) for _ in range(rng.randint(1, 12))] for _ in range(rng.randint(1, 5))]
        kind = k % 6
        if kind == 0:
            hyp = list(rng.choice(refs))  # exact match (short ones give BLEU ~1e-77, not 1)
        elif kind == 1:
            hyp = [rng.choice(vocab) for _ in range(rng.randint(0, 3))]  # shorter than 4 tokens
        elif kind == 2:
            hyp = [rng.choice("xyz") for _ in range(rng.randint(1, 8))]  # no overlap
        else:
            hyp = [rng.choice(vocab) for _ in range(rng.randint(1, 14))]
        cases.append((refs, hyp))
    values = []
    for refs, hyp in cases:
        mine, ref = prior.sentence_bleu4(refs, hyp), nltk_bleu(refs, hyp)
        assert mine == pytest.approx(ref, rel=1e-12, abs=1e-300), (refs, hyp)
        values.append(ref)
    assert min(values) == 0 and max(values) == 1.0  # the cases cover both ends
    assert any(0 < v < 1e-60 for v in values)  # and NLTK's tiny no-smoothing values
    assert any(0.1 < v < 1 for v in values)


def test_vectorised_bleu_matches_nltk():
    rng = random.Random(1)
    per_image = random_corpus(rng, 12)
    P = prior.PriorSimilarity(per_image)
    flat = [c for caps in per_image for c in caps]
    pre = [list(prior.preprocess(c)[0]) for c in flat]
    parts = P.parts(np.arange(12), np.arange(len(flat)))
    assert parts["bleu"].shape == (12, 60)
    for i, caps in enumerate(per_image):
        refs = [list(prior.preprocess(c)[0]) for c in caps]
        for j in range(len(flat)):
            assert parts["bleu"][i, j] == pytest.approx(nltk_bleu(refs, pre[j]), rel=1e-9, abs=1e-300)
            assert parts["exact"][i, j] == (pre[j] in refs)
    assert parts["exact"][0, 0] and parts["exact"][0, 7]  # caption 7 = upper-cased caption 0


def test_full_similarity_matches_naive_official_recipe():
    rng = random.Random(2)
    per_image = random_corpus(rng, 10)
    flat = [c for caps in per_image for c in caps]
    P = prior.PriorSimilarity(per_image)
    S = P.block(np.arange(10), np.arange(50))
    naive = np.array([[naive_similarity(per_image[i], c) for c in flat] for i in range(10)])
    np.testing.assert_allclose(S, naive, rtol=0, atol=1e-12)
    assert (S >= 0).all() and (S <= 1).all()
    # every caption against its own image is an exact match: score1 = 1, so S >= 0.5
    own = S[P.caption_to_image, np.arange(50)]
    assert (own >= 0.5).all()
    assert S.std() > 0.05  # not a constant matrix
    # the scalar form agrees
    assert prior.released_pair_similarity(per_image[3], flat[7]) == pytest.approx(S[3, 7], abs=1e-12)


def test_real_captions_match_naive(shared_data):
    path = shared_data / "rsitmd" / "rsitmd_precomp" / "train_caps.txt"
    if not path.exists():
        pytest.skip("RSITMD captions not present")
    lines = path.read_text(encoding="utf-8").splitlines()[:200]
    per_image = [lines[5 * i:5 * i + 5] for i in range(40)]
    P = prior.PriorSimilarity(per_image)
    rng = random.Random(3)
    for _ in range(40):
        i, j = rng.randrange(40), rng.randrange(200)
        assert P.pair(i, j) == pytest.approx(naive_similarity(per_image[i], lines[j]), abs=1e-12)


def test_hand_computed_pair():
    refs = ["There are some buildings with white and grey roofs .",
            "Some buildings with white and grey roofs .",
            "There are some buildings with cars parked beside them .",
            "There are some buildings with cars parked beside them .",
            "Buildings and cars ."]
    # exact match of reference 5: score1 = 1. Content words (stems) of the references:
    # {build, white, grey, roof} (4 tokens) x2, {build, car, park, besid} (4) x2, {build, car} (2).
    # Caption content {build, car}: overlaps 1/4, 1/4, 2/4, 2/4, 2/2 -> score2 = 2.5/5 = 0.5
    assert prior.released_pair_similarity(refs, "Buildings and cars .") == pytest.approx((1 + 0.5) / 2)
    P = prior.PriorSimilarity([refs])
    assert P.pair(0, 4) == pytest.approx(0.75)


def test_batch_matrix_and_cache():
    rng = random.Random(4)
    per_image = random_corpus(rng, 8)
    P = prior.PriorSimilarity(per_image)
    Pc = prior.PriorSimilarity(per_image, cache_size=10_000)
    caps = torch.tensor([3, 17, 4, 39, 0, 22])
    imgs = torch.as_tensor(P.caption_to_image[caps.numpy()])  # image of each sample; 3 and 4 share one
    M = P.batch_matrix(imgs, caps)
    assert M.shape == (6, 6) and M.dtype == torch.float32
    for a in range(6):
        for b in range(6):
            assert M[a, b].item() == pytest.approx(P.pair(int(imgs[a]), int(caps[b])), abs=1e-7)
    assert torch.equal(M[0], M[2])  # same image rows
    assert torch.equal(Pc.batch_matrix(imgs, caps), M)
    assert Pc.cache_misses == 24 and Pc.cache_hits == 0  # 4 unique images x 6 captions
    assert torch.equal(Pc.batch_matrix(imgs, caps), M)
    assert Pc.cache_hits == 24
    small = prior.PriorSimilarity(per_image, cache_size=3)
    small.batch_matrix(imgs, caps)
    assert len(small._cache) == 3
    assert P.batch_matrix([1, 2], [5, 6, 7]).shape == (2, 3)


def test_corpus_input_equals_list_input():
    rng = random.Random(5)
    per_image = random_corpus(rng, 4)
    corpus = Corpus("t", Path("."), [ImageRecord(f"{i}.tif", Path(f"{i}.tif"), "train", captions=c)
                                      for i, c in enumerate(per_image)])
    a = prior.PriorSimilarity(corpus).block(np.arange(4), np.arange(20))
    b = prior.PriorSimilarity(per_image).block(np.arange(4), np.arange(20))
    np.testing.assert_array_equal(a, b)


def test_degenerate_inputs():
    # image 0: references made only of stop-words -> official NaN, here score2 = 0
    # image 1: no references at all -> S = 0; caption 5 is blank -> S = 0 against image 2
    per_image = [["there is a .", "it is ."], [], ["green trees", "red roofs", "", "cars", "a river"]]
    P = prior.PriorSimilarity(per_image)
    assert P.n_captions == 7 and P.caption_to_image.tolist() == [0, 0, 2, 2, 2, 2, 2]
    assert P.pair(0, 0) == 0.5  # exact match, score2 = 0
    assert P.block([1], np.arange(7)).tolist() == [[0.0] * 7]
    assert P.pair(2, 4) == pytest.approx(0.5)  # blank caption equals the blank reference: score1 = 1
    assert P.pair(0, 4) == 0.0
    with pytest.raises(IndexError, match="caption id 7 at position 1"):
        P.batch_matrix([0, 0], [1, 7])
    with pytest.raises(IndexError, match="image id -1"):
        P.pair(-1, 0)
    with pytest.raises(TypeError, match="image 0, caption 1"):
        prior.PriorSimilarity([["ok", 3]])


def test_large_corpus_is_sparse():
    """5,000 images x 25,000 captions: builds and answers batches without a dense matrix."""
    rng = np.random.default_rng(0)
    vocab = np.array([f"w{k}" for k in range(400)] + ["the", "a", "of", "is", "."])
    lengths = rng.integers(4, 9, size=25_000)
    words = rng.choice(vocab, size=(25_000, 8))
    captions = [" ".join(words[j, :lengths[j]]) for j in range(25_000)]
    P = prior.PriorSimilarity([captions[5 * i:5 * i + 5] for i in range(5_000)], cache_size=50_000)
    assert P.n_images == 5_000 and P.n_captions == 25_000
    dense = P.n_images * P.n_captions * 8
    assert P.memory_bytes() < dense / 20
    for _ in range(3):
        caps = rng.choice(25_000, size=100, replace=False)
        M = P.batch_matrix(caps // 5, caps)
        assert M.shape == (100, 100)
        assert (M.diagonal() >= 0.5).all()  # each caption is one of its image's references
        assert (M >= 0).all() and (M <= 1).all()
    assert P.memory_bytes() < dense / 20  # the cache holds only the pairs asked for


class _StubWordNet:
    """Stands in for NLTK's WordNet reader: a fixed synonym table (METEOR's third matching stage)."""

    class _Lemma:
        def __init__(self, name):
            self._name = name

        def name(self):
            return self._name

    class _Synset:
        def __init__(self, names):
            self._lemmas = [_StubWordNet._Lemma(n) for n in names]

        def lemmas(self):
            return self._lemmas

    SYNONYMS = {"automobil": ["car", "automobile"]}  # NLTK looks synonyms up by the Porter stem

    def synsets(self, word):
        return [self._Synset(self.SYNONYMS[word])] if word in self.SYNONYMS else []


def test_meteor_prior_matches_nltk_with_stub_wordnet():
    from nltk.translate.meteor_score import meteor_score

    caps = [["a red car parked near the road .", "many cars beside a road ."],
            ["green trees around a pond .", "a pond surrounded by trees ."]]
    wn = _StubWordNet()
    met = prior_meteor.MeteorPrior(caps, wordnet=wn)
    base = prior.PriorSimilarity(caps)
    hyp_text = "a red automobile near the road ."  # a synonym match only through WordNet
    probe = prior_meteor.MeteorPrior([caps[0], caps[1], [hyp_text]], wordnet=wn)
    for i in range(2):
        for j in range(4):
            refs = [prior.word_tokenize(c.lower()) for c in caps[i]]
            hyp = prior.word_tokenize([c for cs in caps for c in cs][j].lower())
            expected = (base.parts([i], [j])["score1"][0, 0] + meteor_score(refs, hyp, wordnet=wn)) / 2
            assert met.pair(i, j) == pytest.approx(expected, abs=1e-12)
    with_syn = probe.meteor(0, 4)
    without = prior_meteor.MeteorPrior([caps[0], caps[1], [hyp_text]], wordnet=type("NoSyn", (), {"synsets": lambda s, w: []})())
    assert with_syn > without.meteor(0, 4)  # the stub's synonym is used
    b = met.batch_matrix([1, 0, 1], [3, 0])
    assert b.shape == (3, 2) and b[0, 0].item() == pytest.approx(met.pair(1, 3), abs=1e-6)
    assert met.pair(0, 0) > 0.9 and met.pair(1, 0) < met.pair(0, 0)


def test_meteor_prior_offline_error_is_one_clear_line(monkeypatch):
    import nltk.corpus

    from rsnb.errors import ConfigError

    class Missing:
        def synsets(self, word):
            raise LookupError("Resource wordnet not found.\n  Please use the NLTK Downloader ...")

    monkeypatch.setattr(nltk.corpus, "wordnet", Missing())
    with pytest.raises(ConfigError, match=r"model.prior=bleu_meteor: METEOR needs NLTK's WordNet data") as err:
        prior_meteor.MeteorPrior([["a red roof ."]])
    assert "\n" not in str(err.value) and "nltk.downloader wordnet" in str(err.value)
    from rsnb.models.amfmn import AMFMNConfig, prior_hook

    with pytest.raises(ConfigError, match="WordNet"):  # raised before training starts
        prior_hook(AMFMNConfig(vocab_size=10, prior="bleu_meteor"), [["a red roof ."]])
    assert prior_hook(AMFMNConfig(vocab_size=10), [["a red roof ."]]) is not None
