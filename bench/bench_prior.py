"""Benchmark: prior similarity matrix per training batch, rsnb vs the official NLTK recipe.

Measures ``PriorSimilarity.batch_matrix`` on batches of 100 captions (caption-level sampling, as
in AMFMN training) and the official per-pair ``calc_sim`` (NLTK ``sentence_bleu``, re-tokenising
every sentence for every pair), side by side on the same pairs, plus an NLTK baseline with the
tokenisation cached. Uses the real RSITMD training captions when present (``$RSNB_DATA`` or
``../shared/data``), otherwise RSITMD-sized synthetic captions. Prints numbers only.

Run: ``python bench/bench_prior.py [--batches 30] [--naive-rows 5]``
"""

from __future__ import annotations

import argparse
import random
import time
import warnings
from pathlib import Path

import numpy as np
from nltk.stem import PorterStemmer
from nltk.translate.bleu_score import sentence_bleu

from rsnb import config, prior

BATCH = 100
RSITMD_BATCHES = 215  # 21,455 training captions / 100


def find_captions() -> list[str] | None:
    """RSITMD train_caps.txt lines (5 per image, blank lines kept, as the official script reads them)."""
    roots = [config.data_root(), Path(__file__).resolve().parents[2] / "shared" / "data"]
    for root in roots:
        if root is None:
            continue
        for path in (root / "rsitmd_precomp" / "train_caps.txt", root / "rsitmd" / "rsitmd_precomp" / "train_caps.txt"):
            if path.exists():
                print(f"captions: {path}")
                return path.read_text(encoding="utf-8").splitlines()
    return None


def synthetic_captions(n_images: int = 4291, seed: int = 0) -> list[str]:
    """RSITMD-like captions: 5 per image, about 10 words, a few hundred content words."""
    rng = random.Random(seed)
    nouns = [f"{w}{s}" for w in ("building", "tree", "road", "car", "river", "field", "house", "boat", "pond",
                                 "bridge", "lawn", "court", "plane", "tank", "ship", "track") for s in ("", "s")]
    adjs = ["green", "red", "white", "grey", "large", "small", "dense", "many", "some", "two", "long", "curved"]
    preps = ["beside", "near", "next to", "around", "on", "in the middle of", "surrounded by"]
    out = []
    for _ in range(n_images):
        scene = rng.sample(nouns, 4)
        for _ in range(5):
            a, b = rng.sample(scene, 2)
            lead = rng.choice(["There are", "There is a", "A", "Many", "Some"])
            out.append(f"{lead} {rng.choice(adjs)} {a} {rng.choice(preps)} the {rng.choice(adjs)} {b} .")
    print("captions: synthetic (RSITMD-sized)")
    return out


def official_calc_sim(refs: list[str], caption: str, stemmer: PorterStemmer) -> float:
    """The released script's per-pair computation (tokeniser: rsnb's Punkt-free word_tokenize)."""
    def pre(sent):
        toks = [stemmer.stem(w.lower()) for w in prior.word_tokenize(sent)]
        return toks, [w for w in toks if w not in prior.PRIOR_STOPWORDS]
    visual = [pre(r) for r in refs]
    cap, cap_content = pre(caption)
    score1 = 1 if cap in [v[0] for v in visual] else sentence_bleu([v[0] for v in visual], cap)
    score2 = np.mean([len(set(v[1]) & set(cap_content)) / len(v[1]) for v in visual if v[1]])
    return float(np.mean([score1, score2]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=config.quick_or_full(5, 30))
    parser.add_argument("--naive-rows", type=int, default=config.quick_or_full(2, 5),
                        help="batch rows (x 100 columns) computed with the official per-pair recipe")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # NLTK warns on every zero n-gram count

    lines = find_captions() or synthetic_captions()
    per_image = [lines[5 * i:5 * i + 5] for i in range(len(lines) // 5)]
    t0 = time.perf_counter()
    P = prior.PriorSimilarity(per_image)
    build = time.perf_counter() - t0
    print(f"corpus: {P.n_images} images, {P.n_captions} captions; build {build:.1f} s, "
          f"tables {P.memory_bytes() / 2**20:.1f} MiB (dense float64 would be "
          f"{P.n_images * P.n_captions * 8 / 2**30:.2f} GiB)")

    rng = np.random.default_rng(0)
    batches = [rng.choice(P.n_captions, size=BATCH, replace=False) for _ in range(args.batches)]
    P.batch_matrix(P.caption_to_image[batches[0]], batches[0])  # warm-up
    t0 = time.perf_counter()
    for caps in batches:
        M = P.batch_matrix(P.caption_to_image[caps], caps)
    fast = (time.perf_counter() - t0) / len(batches)
    P.cache_size = 10**6  # same batches through the LRU cache: first pass fills it, second hits
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        for caps in batches:
            P.batch_matrix(P.caption_to_image[caps], caps)
        times.append((time.perf_counter() - t0) / len(batches))
    P.cache_size = 0

    # official recipe on a sub-block of the last batch: rows = first naive_rows samples
    caps = batches[-1]
    rows = caps[:args.naive_rows]
    stemmer = PorterStemmer()
    t0 = time.perf_counter()
    naive = np.array([[official_calc_sim(per_image[P.caption_to_image[i]], lines[j], stemmer) for j in caps]
                      for i in rows])
    official_pair = (time.perf_counter() - t0) / naive.size
    diff = np.nanmax(np.abs(naive - P.block(P.caption_to_image[rows], caps)))
    diff32 = np.nanmax(np.abs(naive - M[:args.naive_rows].double().numpy()))

    # NLTK sentence_bleu with the preprocessing cached (the fairest per-pair baseline)
    cache = {j: prior.preprocess(lines[j]) for j in range(P.n_captions)}
    t0 = time.perf_counter()
    n_pairs = 0
    for i in caps[:4 * args.naive_rows]:
        first = 5 * P.caption_to_image[i]
        refs = [cache[k] for k in range(first, first + 5)]
        for j in caps:
            tokens, content = cache[j]
            s1 = 1 if list(tokens) in [list(r[0]) for r in refs] else sentence_bleu([r[0] for r in refs], tokens)
            s2 = [len(set(r[1]) & set(content)) / len(r[1]) for r in refs if r[1]]
            _ = (s1 + (sum(s2) / len(s2) if s2 else 0.0)) / 2
            n_pairs += 1
    cached_pair = (time.perf_counter() - t0) / n_pairs

    pairs = BATCH * BATCH
    print(f"\nper batch of {BATCH} ({pairs:,} pairs), mean of {len(batches)} batches:")
    print(f"  rsnb PriorSimilarity.batch_matrix : {fast * 1e3:9.2f} ms")
    print(f"  rsnb with LRU cache, miss / hit   : {times[0] * 1e3:9.2f} / {times[1] * 1e3:.2f} ms")
    print(f"  NLTK, preprocessing cached        : {cached_pair * pairs * 1e3:9.2f} ms  "
          f"(ratio {cached_pair * pairs / fast:,.0f}x)")
    print(f"  official calc_sim (re-tokenises)  : {official_pair * pairs * 1e3:9.2f} ms  "
          f"(ratio {official_pair * pairs / fast:,.0f}x)")
    print(f"  max |rsnb - official| on {naive.size} pairs: {diff:.2e} (float64 block), "
          f"{diff32:.2e} (float32 batch_matrix)")
    print(f"\nper RSITMD epoch ({RSITMD_BATCHES} batches): rsnb {fast * RSITMD_BATCHES:.1f} s, "
          f"NLTK cached {cached_pair * pairs * RSITMD_BATCHES / 60:.1f} min, "
          f"official {official_pair * pairs * RSITMD_BATCHES / 3600:.2f} h")
    print(f"official dense precompute ({P.n_images} x {P.n_captions}): "
          f"{official_pair * P.n_images * P.n_captions / 3600:.0f} h")


if __name__ == "__main__":
    main()
