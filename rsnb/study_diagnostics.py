"""Cheap diagnostics for the ablation study: what the loss, the gradients and the gates look like.

Training runs are expensive on a CPU; these functions look at a few batches instead:

* :func:`step_diagnostics`: a freshly built model (exactly as ``train_run`` builds it) on the first
  training batches: loss value and loss per negative pair, active triplets, the global gradient norm
  (against ``train.grad_clip``) and its split over modules, and the gate statistics below;
* :func:`gate_statistics`: for a batch of images and captions, the MVSA mask (mean, spread over
  images) and the visual-guided attention gate sigmoid(a * b) of the "sim" head (mean, fraction
  saturated, and how much it changes from one image to another for the same caption, i.e. whether
  the attention is guided by the image at all);
* :func:`run_diagnostics`: the same gate statistics for a trained run folder (best checkpoint, test split).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

MODULES = ("backbone", "mvsa", "sentence_encoder", "keyword_encoder", "vga_sentence", "vga_keywords", "vgmf")


@torch.no_grad()
def gate_statistics(model, images: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> dict[str, float]:
    """MVSA mask and sim-VGA gate statistics of one batch (eval mode restored afterwards).

    Args:
        model: an AMFMN.
        images: (B, 3, S, S) normalised images.
        tokens: (B, L) token ids; lengths: (B,).

    Returns:
        Floats: ``fv_over_vg`` (|Fv| / |v(g)|), ``mask_mean``, ``mask_image_std`` (std over images,
        mean over dims), and for a sim VGA ``gate_mean``, ``gate_saturated`` (share < 0.05 or > 0.95),
        ``gate_image_std`` (std over the images of the gate for a fixed caption, mean over captions and
        dims) and ``ab_abs`` (mean |a * b|). Keys are absent when the module is.
    """
    from rsnb.models.vga import SimilarityAttention

    was = model.training
    model.eval()
    low, high, glob = model.backbone(images)
    out = {}
    fv = glob
    if model.mvsa is not None:
        fv, maps = model.mvsa(low, high, glob, return_maps=True)
        mask = maps["mask"]  # (B, D)
        out.update(mask_mean=float(mask.mean()), mask_image_std=float(mask.std(0).mean()),
                   fv_over_vg=float((fv.norm(dim=1) / glob.norm(dim=1).clamp_min(1e-8)).mean()))
    vga = model.vga_sentence
    if isinstance(vga, SimilarityAttention) and model.sentence_encoder is not None:
        s = model.sentence_encoder(tokens, lengths)[0]  # (B, D)
        a, b = vga.img_proj(fv), vga.txt_proj(s)  # (B, D) each
        ab = a[:, None] * b[None]  # (Bi, Bt, D)
        g = torch.sigmoid(ab)
        out.update(gate_mean=float(g.mean()), gate_saturated=float(((g < 0.05) | (g > 0.95)).float().mean()),
                   gate_image_std=float(g.std(0).mean()), ab_abs=float(ab.abs().mean()))
    model.train(was)
    return out


def _module_grad_norms(model) -> dict[str, float]:
    norms = {}
    for name in MODULES:
        mod = getattr(model, name, None)
        if mod is None:
            continue
        g = [p.grad.detach().flatten() for p in mod.parameters() if p.grad is not None]
        norms[name] = float(torch.cat(g).norm()) if g else 0.0
    return norms


def step_diagnostics(cfg: dict, n_batches: int = 3) -> dict[str, float]:
    """Loss, gradient and gate statistics of a fresh model of ``cfg`` on its first training batches.

    Builds data, vocabulary and model as :func:`rsnb.experiment.train_run` does (seeded with
    ``train.seed``), takes the first ``n_batches`` batches of epoch 0 in the training order and
    averages the statistics over them. No optimiser step is taken: this is the starting point.

    Returns:
        Floats: ``loss``, ``loss_per_pair`` (loss / valid negative pairs of both directions),
        ``active`` (share of violating triplets), ``grad_norm`` (global, before clipping),
        ``clip_factor`` (grad_clip / grad_norm, capped at 1; 1 = no clipping), ``grad_<module>``,
        ``grad_share_<module>`` (share of the squared norm) and the :func:`gate_statistics` keys.
    """
    from rsnb import distributed as du
    from rsnb import experiment as ex
    from rsnb.data.dataset import collate
    from rsnb.losses import dynamic_margin, triplet_loss
    from rsnb.models import registry
    from rsnb.train import TrainConfig, seed_everything

    cfg = ex.resolve_protocol(dict(cfg))
    builder = registry.builder_for(cfg)
    train_split = ex.prepare_corpus(cfg, progress=False).split("train")
    tok = builder.make_tokenizer(cfg, train_split, None)
    mcfg = builder.make_config(cfg, len(tok))
    tcfg = TrainConfig.from_dict(cfg["train"])
    seed_everything(tcfg.seed)  # as train_run: the same initial weights as the study's run of this seed
    model = builder.build(mcfg, tok, True)
    model.train()
    data = ex.train_dataset(cfg, train_split, tok)
    sampler = du.EpochBatchSampler(len(data), tcfg.batch_size, tcfg.seed, 0, 1)
    loader = torch.utils.data.DataLoader(data, batch_sampler=sampler, collate_fn=collate)
    hook = builder.batch_hook(mcfg, train_split)
    rows = []
    for i, batch in enumerate(loader):
        if i >= n_batches:
            break
        if hook is not None:
            batch = hook(batch)
        model.zero_grad(set_to_none=True)
        feats = model(batch)
        loss, _ = model.loss(feats, batch)
        loss.backward()
        with torch.no_grad():
            img = {k[4:]: v for k, v in feats.items() if k.startswith("img_")}
            txt = {k[4:]: v for k, v in feats.items() if k.startswith("txt_")}
            sims = model.score(img, txt)  # (B, B)
            margin = (dynamic_margin(batch["prior"].to(sims), mcfg.gamma, mcfg.beta) if mcfg.loss == "dynamic"
                      else mcfg.margin)
            _, st = triplet_loss(sims, batch["image_ids"], margin, negatives=mcfg.negatives,
                                 mask_same_image=mcfg.mask_same_image, return_stats=True)
        norms = _module_grad_norms(model)
        total = float(np.sqrt(sum(v**2 for v in norms.values())))
        row = {"loss": float(loss.detach()), "loss_per_pair": float(loss.detach()) / max(st["total"], 1),
               "active": st["active"] / max(st["total"], 1), "grad_norm": total,
               "clip_factor": min(1.0, tcfg.grad_clip / total) if tcfg.grad_clip > 0 and total > 0 else 1.0}
        row.update({f"grad_{k}": v for k, v in norms.items()})
        row.update({f"grad_share_{k}": v**2 / max(total**2, 1e-30) for k, v in norms.items()})
        row.update(gate_statistics(model, batch["images"], batch["tokens"], batch["lengths"]))
        rows.append(row)
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def run_diagnostics(run_dir: str | Path, n_images: int = 64) -> dict[str, float]:
    """:func:`gate_statistics` of a trained run (best checkpoint) on the first test images and captions."""
    from rsnb import experiment as ex
    from rsnb.data.dataset import CaptionDataset, collate

    model, vocab, cfg = ex.load_run(run_dir, "best")
    test = ex.prepare_corpus(cfg, progress=False).split("test")
    data = CaptionDataset(test, vocab, image_size=int(cfg["image_size"]), train=False)
    idx = list(range(0, min(len(data), 5 * n_images), 5))  # one caption per image: distinct images
    batch = collate([data[i] for i in idx])
    return gate_statistics(model, batch["images"], batch["tokens"], batch["lengths"])


def format_rows(rows: dict[str, dict[str, float]], keys=None) -> str:
    """``{name: stats}`` as a markdown table (columns = ``keys`` or every key seen)."""
    keys = list(keys or dict.fromkeys(k for r in rows.values() for k in r))
    lines = ["| model | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join("–" if k not in r else f"{r[k]:.4g}" for k in keys) + " |")
    return "\n".join(lines)


def diagnose(models, budget="cpu", extra=(), out=None, seed: int = 0, n_batches: int = 3) -> str:
    """Markdown report: :func:`step_diagnostics` of every model, and :func:`run_diagnostics` of its
    trained runs under ``out`` (``<out>/<spec>/seed<k>``, as written by ``rsnb study ablation``)."""
    from rsnb import study

    start = {m: step_diagnostics(study.run_config(m, seed, budget, extra), n_batches) for m in models}
    keys = ["loss", "loss_per_pair", "active", "grad_norm", "clip_factor", "grad_share_backbone", "grad_share_mvsa",
            "grad_share_sentence_encoder", "grad_share_vga_sentence", "mask_image_std", "fv_over_vg", "gate_mean",
            "gate_saturated", "gate_image_std"]
    md = f"## At initialisation (seed {seed}, first {n_batches} training batches)\n\n" + format_rows(start, keys)
    trained = {}
    for m in models:
        for run in sorted(Path(out).glob(f"{study.spec_dir(m)}/seed*")) if out else []:
            if (run / "best.json").is_file() or (run / "last.json").is_file():
                trained[f"{m} {run.name}"] = run_diagnostics(run)
    if trained:
        md += "\n\n## Trained (best checkpoint, 64 test images)\n\n" + format_rows(trained)
    return md
