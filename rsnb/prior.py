"""Prior caption similarity S(caption j, image i) for the AMFMN dynamic margin (paper eq. 29).

The released AMFMN code computes S with ``Rct/generate_t2i_sim_matrix.py``; this module follows
that recipe exactly (the released ``Rct/generate_t2i_sim_matrix.py``; the paper's Sec. III-E names
BLEU and METEOR instead):

1. Preprocess every sentence: NLTK ``word_tokenize``, Porter-stem each lower-cased token, and
   keep a second copy without English stop-words and ``,``/``.``. Stop-words are removed *after*
   stemming, as in the official script, so stems such as ``thi`` (this) or ``wa`` (was) survive.
2. ``score1`` = 1 if the caption's token list equals one of image i's reference token lists,
   otherwise NLTK ``sentence_bleu`` (BLEU-4, uniform weights, no smoothing) of the caption against
   those references.
3. ``score2`` = mean over image i's non-empty stop-word-free references r of
   ``|set(r) & set(caption)| / len(r)``.
4. ``S = (score1 + score2) / 2``.

The official script fills a dense N_img x N_cap matrix with a per-pair Python loop (hours for
RSITMD, 3.8 GB for RSICD). :class:`PriorSimilarity` instead precomputes sparse per-caption n-gram
counts and per-image clipped reference counts once, and evaluates any block of pairs with five
sparse matrix products (clipped n-gram matches via ``min(a, b) = sum_t [a >= t][b >= t]``).

Deviations, all documented: (a) no NLTK data can be downloaded here, so ``word_tokenize``'s
Punkt sentence splitter is emulated (see :func:`word_tokenize`) and the 179-word NLTK English
stop-word list is written out; (b) an image without any non-empty stop-word-free reference gets
``score2 = 0`` where the official script yields NaN.

Shown in notebooks/03_loss_behaviour.ipynb.
"""

from __future__ import annotations

import math
import re
import sys
from collections import Counter, OrderedDict
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch
from nltk.stem import PorterStemmer
from nltk.tokenize.destructive import NLTKWordTokenizer

from rsnb.data.vocab import NLTK_ENGLISH_STOPWORDS

PRIOR_STOPWORDS: frozenset[str] = NLTK_ENGLISH_STOPWORDS | {",", "."}
BLEU_ORDER = 4

# Titles that Punkt's English model treats as abbreviations (no sentence break after "Mr.").
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "prof", "jr", "sr", "st", "mt", "vs"})
_SENT_END = re.compile(r"[.?!][\"')\]}]*$")
_WORD_TOKENIZER = NLTKWordTokenizer()
_STEMMER = PorterStemmer()
_STEM_CACHE: dict[str, str] = {}
_TINY = sys.float_info.min  # what NLTK's method0 "smoothing" substitutes for a zero precision


def split_sentences(text: str) -> list[str]:
    """Split text into sentences like NLTK's Punkt English model does on captions.

    A break follows a whitespace-delimited chunk ending in ``.``, ``?`` or ``!`` (optionally
    followed by closing quotes/brackets) when more text follows, except after an ellipsis, a
    single-letter initial, a number, or a title abbreviation (Mr., Dr., St., ...). Punkt's
    orthographic re-classification and its full learned abbreviation list are not emulated.
    The 384 mid-text sentence ends in the RSITMD/UCM/Sydney captions are ordinary words, ``?``,
    ``!``, a lone ``.`` and one ``Mr.``, which Punkt's rules split (or not, for ``Mr.``) the same
    way; this was checked by reading Punkt's rules, since the Punkt model cannot be downloaded here.
    """
    chunks = list(re.finditer(r"\S+", text))
    sentences, start = [], 0
    for k, m in enumerate(chunks[:-1]):
        word = m.group()
        if not _SENT_END.search(word):
            continue
        stem = word.rstrip("\"')]}")
        body = stem.rstrip(".?!")
        if stem.endswith("..") or (stem.endswith(".") and (
                (len(body) == 1 and body.isalpha()) or body.replace(".", "").isdigit()
                or body.lower() in _ABBREVIATIONS)):
            continue
        sentences.append(text[start:m.end()].strip())
        start = chunks[k + 1].start()
    tail = text[start:].strip()
    return sentences + ([tail] if tail else [])


def word_tokenize(text: str) -> list[str]:
    """NLTK ``word_tokenize`` without the Punkt data: :func:`split_sentences` + NLTK's word tokenizer."""
    return [tok for sent in split_sentences(text) for tok in _WORD_TOKENIZER.tokenize(sent)]


def _stem(token: str) -> str:
    out = _STEM_CACHE.get(token)
    if out is None:
        out = _STEM_CACHE[token] = _STEMMER.stem(token.lower())
    return out


def preprocess(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Official preprocessing of one sentence.

    Returns:
        ``(tokens, content)``: the stemmed lower-cased tokens, and the same without stop-words
        and ``,``/``.`` (stop-words are matched against the stems, as in the official script).
    """
    tokens = tuple(_stem(t) for t in word_tokenize(text))
    return tokens, tuple(t for t in tokens if t not in PRIOR_STOPWORDS)


def _ngrams(tokens: Sequence, n: int) -> Counter:
    return Counter(tuple(tokens[k:k + n]) for k in range(len(tokens) - n + 1))


def sentence_bleu4(references: Sequence[Sequence[str]], hypothesis: Sequence[str]) -> float:
    """BLEU-4 of one hypothesis, equal to ``nltk.translate.bleu_score.sentence_bleu`` defaults.

    No smoothing: 0 when no unigram matches (or the hypothesis is empty); a zero higher-order
    precision is replaced by ``sys.float_info.min`` as NLTK does, giving a tiny positive score
    (about 1e-77), not exactly 0. Brevity penalty uses the closest reference length, ties to the
    shorter one.
    """
    if not references:
        raise ValueError("sentence_bleu4: at least one reference is required")
    c = len(hypothesis)
    logs = []
    for n in range(1, BLEU_ORDER + 1):
        counts = _ngrams(hypothesis, n)
        best: Counter = Counter()
        for ref in references:
            best |= _ngrams(ref, n)  # element-wise max of counts
        matched = sum(min(v, best[g]) for g, v in counts.items())
        if n == 1 and matched == 0:
            return 0.0
        logs.append(0.25 * math.log(matched / max(1, c - n + 1) if matched else _TINY))
    r = min((len(ref) for ref in references), key=lambda length: (abs(length - c), length))
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(math.fsum(logs))


def released_pair_similarity(references: Sequence[str], caption: str) -> float:
    """The official ``calc_sim`` for one (image, caption) pair, written out plainly.

    Args:
        references: the reference captions of image i (normally 5 strings).
        caption: caption j.

    Returns:
        S in [0, 1] (0 for an image without references).
    """
    refs = [preprocess(r) for r in references]
    if not refs:
        return 0.0
    tokens, content = preprocess(caption)
    ref_tokens = [r[0] for r in refs]
    score1 = 1.0 if tokens in ref_tokens else sentence_bleu4(ref_tokens, tokens)
    fractions = [len(set(r[1]) & set(content)) / len(r[1]) for r in refs if r[1]]
    score2 = sum(fractions) / len(fractions) if fractions else 0.0
    return (score1 + score2) / 2


class _Interner(dict):
    """Map hashable keys to consecutive integer ids."""

    def id(self, key) -> int:
        out = self.get(key)
        if out is None:
            out = self[key] = len(self)
        return out


def _threshold_csr(rows: list[dict[int, int]], n_cols: int, levels: int) -> sp.csr_matrix:
    """Binary matrix [count >= t] for t = 1..levels, stacked horizontally (column = t-1 block)."""
    indptr, indices = [0], []
    for row in rows:
        for g, v in row.items():
            if v == 1:
                indices.append(g)
            else:
                indices.extend((t - 1) * n_cols + g for t in range(1, min(v, levels) + 1))
        indptr.append(len(indices))
    data = np.ones(len(indices), dtype=np.float64)
    return sp.csr_matrix((data, np.asarray(indices, dtype=np.int64), np.asarray(indptr)),
                         shape=(len(rows), n_cols * levels))


class PriorSimilarity:
    """Prior similarity S[image, caption] of a training corpus, computed per block on the fly.

    Memory grows with the corpus (sparse n-gram tables) and with the pairs cached, never with
    N_img x N_cap. Caption ``j`` is the ``j``-th caption in image order (``Corpus.captions``).

    Args:
        captions_per_image: a list of per-image caption lists, or a ``Corpus`` (uses
            ``corpus.images[i].captions``).
        cache_size: maximum number of (image, caption) values kept in an LRU cache (0 = off,
            the default: random caption-level batches almost never repeat a pair, and a cache
            hit costs about as much as recomputing a 100 x 100 block, see bench/bench_prior.py).

    Example:
        >>> prior = PriorSimilarity([["a red roof ."], ["green trees ."]])
        >>> prior.batch_matrix([0, 1], [0, 1]).shape
        torch.Size([2, 2])
    """

    def __init__(self, captions_per_image, cache_size: int = 0):
        """Preprocess every caption once and build the sparse n-gram and word tables."""
        per_image = [list(r.captions) for r in captions_per_image.images] \
            if hasattr(captions_per_image, "images") else [list(c) for c in captions_per_image]
        for i, caps in enumerate(per_image):
            bad = [k for k, c in enumerate(caps) if not isinstance(c, str)]
            if bad:
                raise TypeError(f"PriorSimilarity: image {i}, caption {bad[0]} is not a string")
        self.n_images = len(per_image)
        self.caption_to_image = np.array([i for i, caps in enumerate(per_image) for _ in caps], dtype=np.int64)
        self.n_captions = len(self.caption_to_image)
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[int, float] = OrderedDict()
        self.cache_hits = self.cache_misses = 0

        memo: dict[str, tuple] = {}
        processed = [[memo[c] if c in memo else memo.setdefault(c, preprocess(c)) for c in caps]
                     for caps in per_image]
        flat = [p for caps in processed for p in caps]
        words, grams, seqs = _Interner(), [_Interner() for _ in range(BLEU_ORDER)], _Interner()

        # Per caption (hypothesis side): n-gram counts, exact-sequence id, content-word set.
        hyp = [[] for _ in range(BLEU_ORDER)]
        for tokens, _ in flat:
            for n in range(BLEU_ORDER):
                hyp[n].append({grams[n].id(g): v for g, v in _ngrams(tokens, n + 1).items()})
        self.hyp_len = np.array([len(t) for t, _ in flat], dtype=np.int64)
        seq_rows = [{seqs.id(t): 1} for t, _ in flat]
        word_rows = [{words.id(w): 1 for w in set(c)} for _, c in flat]

        # Per image (reference side): max n-gram counts, reference sequences, score2 weights.
        ref = [[] for _ in range(BLEU_ORDER)]
        ref_seq_rows, w_rows, ref_lens = [], [], []
        first = np.cumsum([0] + [len(caps) for caps in processed])
        for i, caps in enumerate(processed):
            for n in range(BLEU_ORDER):
                best = {}
                for row in hyp[n][first[i]:first[i + 1]]:  # the image's own captions are its references
                    for gid, v in row.items():
                        if v > best.get(gid, 0):
                            best[gid] = v
                ref[n].append(best)
            ref_seq_rows.append({seqs.id(t): 1 for t, _ in caps})
            ref_lens.append([len(t) for t, _ in caps])
            nonempty = [c for _, c in caps if c]
            w: dict[int, float] = {}
            for c in nonempty:
                for u in set(c):
                    uid = words.id(u)
                    w[uid] = w.get(uid, 0.0) + 1.0 / (len(c) * len(nonempty))
            w_rows.append(w)

        self._hyp, self._ref = [], []
        for n in range(BLEU_ORDER):
            levels = max([v for row in hyp[n] for v in row.values()], default=1)
            self._hyp.append(_threshold_csr(hyp[n], len(grams[n]), levels))  # (N_cap, V_n*T)
            self._ref.append(_threshold_csr(ref[n], len(grams[n]), levels))  # (N_img, V_n*T)
        self._seq_hyp = _threshold_csr(seq_rows, len(seqs), 1)
        self._seq_ref = _threshold_csr(ref_seq_rows, len(seqs), 1)
        self._words_hyp = _threshold_csr(word_rows, len(words), 1)
        data = [v for row in w_rows for v in row.values()]
        indices = [u for row in w_rows for u in row]
        indptr = np.cumsum([0] + [len(row) for row in w_rows])
        self._words_ref = sp.csr_matrix((np.asarray(data, dtype=np.float64), np.asarray(indices, dtype=np.int64),
                                         indptr), shape=(self.n_images, len(words)))
        k_max = max((len(x) for x in ref_lens), default=0)
        self._ref_len = np.full((self.n_images, max(k_max, 1)), 10**6, dtype=np.int64)  # pad never wins
        for i, lens in enumerate(ref_lens):
            self._ref_len[i, :len(lens)] = lens

    def memory_bytes(self) -> int:
        """Bytes held by the precomputed tables and the cache (never N_img x N_cap)."""
        mats = self._hyp + self._ref + [self._seq_hyp, self._seq_ref, self._words_hyp, self._words_ref]
        tables = sum(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes for m in mats)
        return tables + self._ref_len.nbytes + self.hyp_len.nbytes + 100 * len(self._cache)

    def _check(self, ids, n: int, what: str) -> np.ndarray:
        ids = np.asarray(ids.cpu() if torch.is_tensor(ids) else ids, dtype=np.int64).reshape(-1)
        bad = np.flatnonzero((ids < 0) | (ids >= n))
        if bad.size:
            raise IndexError(f"PriorSimilarity: {what} id {ids[bad[0]]} at position {bad[0]} is outside [0, {n})")
        return ids

    def block(self, image_ids, caption_ids) -> np.ndarray:
        """S for every image in ``image_ids`` against every caption in ``caption_ids``.

        Args:
            image_ids: (I,) image indices.
            caption_ids: (J,) caption indices.

        Returns:
            float64 array (I, J) of S values in [0, 1].
        """
        parts = self.parts(image_ids, caption_ids)
        return (parts["score1"] + parts["score2"]) / 2

    def parts(self, image_ids, caption_ids) -> dict[str, np.ndarray]:
        """The ingredients of S for an (I, J) block of pairs.

        Returns:
            dict of (I, J) arrays: ``bleu`` (BLEU-4 of caption j against image i's references),
            ``exact`` (bool, caption j equals one of them), ``score1``, ``score2``.
        """
        imgs = self._check(image_ids, self.n_images, "image")
        caps = self._check(caption_ids, self.n_captions, "caption")
        c = self.hyp_len[caps]  # (J,)
        # clipped n-gram matches: sum_t [ref max count >= t] . [hyp count >= t]
        num = np.stack([(self._ref[n][imgs] @ self._hyp[n][caps].T).toarray()
                        for n in range(BLEU_ORDER)])  # (4, I, J)
        denom = np.maximum(1, c[None, :] - np.arange(BLEU_ORDER)[:, None])  # (4, J)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            logp = np.where(num > 0, np.log(num / denom[:, None, :]), math.log(_TINY))  # (4, I, J)
            lens = self._ref_len[imgs]  # (I, K)
            key = np.abs(lens[:, :, None] - c[None, None, :]) * 10**7 + lens[:, :, None]  # (I, K, J)
            r = np.take_along_axis(lens[:, :, None], key.argmin(axis=1)[:, None, :], axis=1)[:, 0, :]  # (I, J)
            bp = np.where(c[None, :] > r, 1.0, np.exp(1.0 - r / np.maximum(c[None, :], 1)))
            bleu = np.where((num[0] > 0) & (c[None, :] > 0), bp * np.exp((0.25 * logp).sum(0)), 0.0)
        exact = (self._seq_ref[imgs] @ self._seq_hyp[caps].T).toarray() > 0  # (I, J)
        score2 = (self._words_ref[imgs] @ self._words_hyp[caps].T).toarray()  # (I, J)
        return {"bleu": bleu, "exact": exact, "score1": np.where(exact, 1.0, bleu), "score2": score2}

    def pair(self, image_idx: int, caption_idx: int) -> float:
        """S for one (image, caption) pair, as a Python float (float64, not rounded to float32)."""
        ids = (self._check([image_idx], self.n_images, "image"), self._check([caption_idx], self.n_captions, "caption"))
        return float(self._values(*ids)[0, 0])

    def batch_matrix(self, image_ids, caption_ids, device=None) -> torch.Tensor:
        """Prior matrix of a training batch: entry (i, j) = S[image_ids[i], caption_ids[j]].

        Args:
            image_ids: (B,) image index of each sample (rows of the model's similarity matrix).
            caption_ids: (B',) caption index of each sample (columns).
            device: device of the returned tensor (default CPU).

        Returns:
            float32 tensor (B, B') in [0, 1].
        """
        imgs = self._check(image_ids, self.n_images, "image")
        caps = self._check(caption_ids, self.n_captions, "caption")
        ui, inv_i = np.unique(imgs, return_inverse=True)
        uc, inv_c = np.unique(caps, return_inverse=True)
        out = self._values(ui, uc)[inv_i[:, None], inv_c[None, :]]  # (B, B')
        return torch.as_tensor(out, dtype=torch.float32, device=device)

    def _values(self, ui: np.ndarray, uc: np.ndarray) -> np.ndarray:
        """Block of S for unique ids, through the LRU cache when it is on."""
        if self.cache_size <= 0:
            return self.block(ui, uc)
        keys = (ui[:, None] * self.n_captions + uc[None, :]).ravel().tolist()
        values = [self._cache.get(k) for k in keys]
        missing = [k for k, v in zip(keys, values) if v is None]
        self.cache_hits += len(keys) - len(missing)
        self.cache_misses += len(missing)
        if not missing:
            for k in keys:
                self._cache.move_to_end(k)
            return np.asarray(values, dtype=np.float64).reshape(len(ui), len(uc))
        out = self.block(ui, uc)
        for k, v in zip(keys, out.ravel().tolist()):
            self._cache[k] = v
            self._cache.move_to_end(k)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out
