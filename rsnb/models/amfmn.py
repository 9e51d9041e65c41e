"""AMFMN assembly: configuration, presets (paper, released code, ablations m1..m9) and the model.

The model follows the interface in DESIGN.md: ``forward(batch)`` returns per-sample features,
``loss(feats, batch)`` scores them against each other and applies the triplet loss of
:mod:`rsnb.losses`, ``encode_images`` / ``encode_texts`` / ``score`` serve retrieval evaluation.

sim[i, j] = cos(Fv_i, Ft_ij): the image vector Fv (MVSA output, or v(g) without MVSA) against a text
vector that depends on the image through visual-guided attention (VGA) and, with sentences and
keywords, through VGMF fusion. Scoring never re-runs the CNN or GRU: it works on cached vectors, uses
a closed form of eq. 20 for soft attention (see ``AMFMN._score_soft``), and evaluates every other variant on
bounded image x text blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rsnb.losses import margin_matrix, pair_stats, triplet_loss
from rsnb.models import DictConfig, count_parameters
from rsnb.models.backbone import GROUPINGS, Backbone, backbone_init_request
from rsnb.models.mvsa import FORMS as MVSA_FORMS
from rsnb.models.mvsa import MVSA
from rsnb.models.registry import ModelBuilder, split_model_section
from rsnb.models.text import BiGRUEncoder, KeywordEncoder, SkipThoughtEncoder
from rsnb.models.vga import SIM_GATES, VGA_TYPES, VGMF, VGMF_FORMS, SoftAttention, build_vga

_CHOICES = {
    "backbone": ("resnet18", "resnet50"),
    "backbone_grouping": GROUPINGS,
    "mvsa_form": MVSA_FORMS,
    "text_encoder": ("bigru", "skipthought"),
    "text_input": ("sentence", "keywords", "both"),
    "vga": VGA_TYPES,
    "sim_gate": SIM_GATES,
    "vgmf_form": VGMF_FORMS,
    "loss": ("dynamic", "fixed"),
    "negatives": ("sum", "hardest"),
    "prior": ("released", "bleu_meteor"),
}

# Table VI of the paper: (use_mvsa, use_vga, text_input, use_vgmf)
ABLATIONS = {
    "m1": (False, False, "sentence", False),  # v(g) + s(g)  (= VSE++)
    "m2": (False, False, "keywords", False),  # v(g) + k(g)
    "m3": (True, False, "sentence", False),  # Fv + s(g)
    "m4": (True, False, "keywords", False),  # Fv + k(g)
    "m5": (True, False, "both", False),  # Fv + s(g) + k(g)  (mean of the two)
    "m6": (True, True, "sentence", False),  # Fv + s(v)  (= AMFMN-sim, headline)
    "m7": (True, True, "keywords", False),  # Fv + k(v)
    "m8": (True, True, "both", False),  # Fv + s(v) + k(v)  (mean of the two)
    "m9": (True, True, "both", True),  # Fv + Ft  (VGMF, full model)
}


@dataclass
class AMFMNConfig(DictConfig):
    """Every AMFMN setting; defaults are the paper's (see :meth:`paper` for the choices made).

    Attributes:
        backbone: ``"resnet18"`` (paper/code) or ``"resnet50"``.
        pretrained: backbone initialisation: ``True``/``"imagenet"`` (torchvision ImageNet weights,
            random with a warning when they cannot be downloaded), ``False``/``"random"``, or the path
            of a local torchvision state dict (``.pth`` read with ``weights_only=True``, or ``.safetensors``).
        backbone_grouping: ``"code"`` (layer1+2 | layer3+4, released code) or ``"paper"`` (stem+layer1+2 |
            layer3+4, the five levels of eqs. 6-9); see :mod:`rsnb.models.backbone`.
        image_size: input side in pixels, a multiple of 32; sets the MVSA mask size (image_size/16)^2.
        embed_dim: joint embedding size D.
        use_mvsa: Fv = MVSA output; False uses the global vector v(g) (ablations m1, m2).
        mvsa_form: ``"paper"`` (PReLU, raw residual, L2) or ``"code"``.
        mvsa_channels: C of the LF/HF convs.
        text_encoder: ``"bigru"`` (paper) or ``"skipthought"`` (released code).
        vocab_size: rows of the word embedding including padding row 0 (must be set).
        word_dim, text_hidden: embedding and GRU sizes (300/512 paper, 620/2400 skip-thought).
        text_dropout: variational dropout of the skip-thought GRU.
        skipthought_dir: folder of the original skip-thought files (None: random init).
        text_input: ``"sentence"``, ``"keywords"`` or ``"both"`` (paper Table IV).
        keyword_hidden: GRU size of the keyword branch.
        use_vga: visual-guided attention on the text vectors; False compares image and text directly.
        vga: ``"soft"``, ``"fusion"`` or ``"sim"``; sim_gate: ``"vector"`` (code) or ``"cosine"`` (paper).
        sim_gate_scale: factor on S(a, b) inside the sim gate's sigmoid; 1 is the paper and the code (an
            rsnb diagnostic, see :class:`rsnb.models.vga.SimilarityAttention`).
        use_vgmf: with ``text_input="both"``, fuse by VGMF; False averages the two branches (m5, m8).
        vgmf_form: ``"paper"`` (mix raw vectors) or ``"code"`` (mix L2-normalised vectors).
        loss: ``"dynamic"`` (L_ct, needs a prior similarity) or ``"fixed"`` margin.
        margin: fixed margin; gamma, beta: dynamic margin gamma (e^beta - e^(beta S)) / (e^beta - 1).
        negatives: ``"sum"`` over all negatives or ``"hardest"`` (VSE++).
        prior: the prior similarity S of the dynamic margin: ``"released"`` (BLEU-4 + stemmed
            content-word overlap, the released script) or ``"bleu_meteor"`` (the paper's BLEU + METEOR,
            Sec. III-E; needs NLTK's WordNet data), see :mod:`rsnb.prior`.
        mask_same_image: do not treat another caption of the same image as a negative.
        keep_unused_modules: also build the released code's dead weights (ResNet fc, VGMF gate) as
            frozen modules so that :meth:`AMFMN.num_parameters` matches its ``params_count``.
    """

    backbone: str = "resnet18"
    pretrained: bool | str = True
    backbone_grouping: str = "code"
    image_size: int = 256
    embed_dim: int = 512
    use_mvsa: bool = True
    mvsa_form: str = "paper"
    mvsa_channels: int = 3
    text_encoder: str = "bigru"
    vocab_size: int = 0
    word_dim: int = 300
    text_hidden: int = 512
    text_dropout: float = 0.25
    skipthought_dir: str | None = None
    text_input: str = "sentence"
    keyword_hidden: int = 512
    use_vga: bool = True
    vga: str = "sim"
    sim_gate: str = "vector"
    sim_gate_scale: float = 1.0
    use_vgmf: bool = True
    vgmf_form: str = "paper"
    loss: str = "dynamic"
    margin: float = 0.2
    gamma: float = 0.6
    beta: float = 5.0
    negatives: str = "sum"
    prior: str = "released"
    mask_same_image: bool = True
    keep_unused_modules: bool = False

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"AMFMNConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        backbone_init_request(self.pretrained)  # raises on a value that is neither a flag nor a path
        if self.image_size % 32:
            raise ValueError(f"AMFMNConfig.image_size must be a multiple of 32, got {self.image_size}")

    @classmethod
    def paper(cls, **overrides) -> AMFMNConfig:
        """Paper settings: the headline AMFMN-sim model (Table II, Table VI m6).

        ResNet-18 (ImageNet), paper MVSA, bi-GRU 300/512, sentence input, sim VGA, L_ct with
        gamma=0.6, beta=5, summed over negatives. The sim gate is the code's vector gate: the paper's
        scalar cosine gate (``sim_gate="cosine"``) is a positive scalar per pair, so the final cosine
        cancels it and sentence-only "sim" would reduce to no attention at all (notebook 02 shows this). Same-image negatives are
        masked (a fix; the paper is silent). Use :meth:`ablation` ``("m9")`` for the keyword + VGMF model.
        """
        return cls(**overrides)

    @classmethod
    def official(cls, **overrides) -> AMFMNConfig:
        """The released code: code MVSA, skip-thought 620/2400 (dropout 0.25), soft VGA, sentence only,
        fixed margin 0.2 summed over negatives, same-image captions left as negatives, dead modules kept."""
        preset = dict(mvsa_form="code", text_encoder="skipthought", word_dim=620, text_hidden=2400,
                      text_dropout=0.25, vga="soft", sim_gate="vector", vgmf_form="code", loss="fixed",
                      margin=0.2, negatives="sum", mask_same_image=False, keep_unused_modules=True)
        return cls(**{**preset, **overrides})

    @classmethod
    def ablation(cls, name: str, **overrides) -> AMFMNConfig:
        """Paper Table VI row ``"m1"``..``"m9"`` on top of :meth:`paper` (see ``ABLATIONS``)."""
        if name not in ABLATIONS:
            raise ValueError(f"ablation must be one of {sorted(ABLATIONS)}, got {name!r}")
        mvsa, vga, text_input, vgmf = ABLATIONS[name]
        preset = dict(use_mvsa=mvsa, use_vga=vga, text_input=text_input, use_vgmf=vgmf)
        return cls.paper(**{**preset, **overrides})


def _cosine_rows(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """cos(a_i, b_j) for a (Ni, D), b (Nt, D) -> (Ni, Nt), with eps on the norm product."""
    return (a @ b.T) / (a.norm(dim=1)[:, None] * b.norm(dim=1)[None]).clamp_min(eps)


class AMFMN(nn.Module):
    """Asymmetric multimodal feature matching network (paper Fig. 1).

    Args:
        cfg: the configuration.
        words: ``words[i]`` = token of embedding row i; needed only to initialise the skip-thought
            embedding from ``cfg.skipthought_dir``.
        init_pretrained: load ImageNet / skip-thought weights; pass False when a checkpoint is loaded next.
    """

    model_name = "amfmn"  # the registry name (rsnb.models.registry), stored in checkpoints

    def __init__(self, cfg: AMFMNConfig, words: Sequence[str] | None = None,
                 init_pretrained: bool = True) -> None:
        super().__init__()
        if cfg.vocab_size < 2:
            raise ValueError(f"AMFMNConfig.vocab_size must be set (rows incl. <pad>), got {cfg.vocab_size}")
        self.cfg = cfg
        D = cfg.embed_dim
        self.uses_sentence = cfg.text_input in ("sentence", "both")
        self.uses_keywords = cfg.text_input in ("keywords", "both")
        self.backbone = Backbone(cfg.backbone, cfg.pretrained if init_pretrained else False, D, cfg.keep_unused_modules,
                                 cfg.backbone_grouping)
        #: what the backbone really started from: "imagenet", "random" or a weights file path
        self.backbone_init = self.backbone.init
        self.mvsa = None
        if cfg.use_mvsa:
            self.mvsa = MVSA(self.backbone.low_channels, self.backbone.high_channels, cfg.image_size // 16,
                             D, cfg.mvsa_channels, cfg.mvsa_form)
        self.sentence_encoder: BiGRUEncoder | SkipThoughtEncoder | None = None
        if self.uses_sentence:
            if cfg.text_encoder == "bigru":
                self.sentence_encoder = BiGRUEncoder(cfg.vocab_size, cfg.word_dim, cfg.text_hidden, D)
            else:
                self.sentence_encoder = SkipThoughtEncoder(
                    cfg.vocab_size, cfg.word_dim, cfg.text_hidden, D, cfg.text_dropout,
                    cfg.skipthought_dir if init_pretrained else None, words)
        self.keyword_encoder = None
        if self.uses_keywords:
            shared = self.sentence_encoder is not None
            emb = self.sentence_encoder.embedding if shared else nn.Embedding(cfg.vocab_size, cfg.word_dim, padding_idx=0)
            self.keyword_encoder = KeywordEncoder(emb, cfg.keyword_hidden, D, owns_embedding=not shared)
        make_vga = (lambda: build_vga(cfg.vga, D, cfg.sim_gate, cfg.sim_gate_scale)) if cfg.use_vga else (lambda: None)
        self.vga_sentence = make_vga() if self.uses_sentence else None
        self.vga_keywords = make_vga() if self.uses_keywords else None
        self.vgmf = None
        if (cfg.text_input == "both" and cfg.use_vgmf) or cfg.keep_unused_modules:
            self.vgmf = VGMF(D, cfg.vgmf_form)
            if not (cfg.text_input == "both" and cfg.use_vgmf):
                self.vgmf.requires_grad_(False)  # built only to mirror the released parameter count

    @property
    def text_inputs(self) -> tuple[str, ...]:
        """What the text side reads: ``("sentence",)``, ``("keywords",)`` or ``("sentence", "keywords")``."""
        return ("sentence",) * self.uses_sentence + ("keywords",) * self.uses_keywords

    # ------------------------------------------------------------------ encoders
    def encode_images(self, images: Tensor) -> dict[str, Tensor]:
        """Images (N, 3, H, W) -> {"v": Fv (N, D)}."""
        low, high, glob = self.backbone(images)
        fv = self.mvsa(low, high, glob) if self.mvsa is not None else glob  # (N, D)
        return {"v": fv}

    def mvsa_maps(self, images: Tensor) -> dict[str, Tensor]:
        """Intermediate MVSA maps of ``images`` (see :meth:`MVSA.forward`), plus ``fv`` and ``vg``."""
        if self.mvsa is None:
            raise RuntimeError("this AMFMN has no MVSA (use_mvsa=False)")
        low, high, glob = self.backbone(images)
        fv, maps = self.mvsa(low, high, glob, return_maps=True)
        return {**maps, "fv": fv, "vg": glob}

    def encode_texts(self, tokens: Tensor | None, lengths: Tensor | None, keywords: Tensor | None = None,
                     keyword_mask: Tensor | None = None) -> dict[str, Tensor]:
        """Captions (N, L) / keywords (N, K, Lk) -> {"s": (N, D)} and/or {"k": (N, D)} per ``text_input``."""
        out = {}
        if self.uses_sentence:
            if tokens is None or lengths is None:
                raise ValueError(f"text_input={self.cfg.text_input!r} needs tokens and lengths")
            out["s"] = self.sentence_encoder(tokens, lengths)[0]  # (N, D)
        if self.uses_keywords:
            if keywords is None or keyword_mask is None:
                raise ValueError(f"text_input={self.cfg.text_input!r} needs keywords and keyword_mask")
            out["k"] = self.keyword_encoder(keywords, keyword_mask)[0]  # (N, D)
        return out

    def forward(self, batch: dict) -> dict[str, Tensor]:
        """Training batch -> {"img_v", "txt_s" and/or "txt_k"}, each with leading dim B."""
        img = self.encode_images(batch["images"])
        txt = self.encode_texts(batch.get("tokens"), batch.get("lengths"), batch.get("keywords"),
                                batch.get("keyword_mask"))
        return {**{f"img_{k}": v for k, v in img.items()}, **{f"txt_{k}": v for k, v in txt.items()}}

    # ------------------------------------------------------------------ scoring
    def _fuse(self, s: Tensor, k: Tensor) -> Tensor:
        """Combine sentence and keyword features (..., D) into Ft: VGMF or their mean."""
        if self.cfg.use_vgmf:
            return self.vgmf(s, k)
        return 0.5 * (s + k)

    def score(self, img_feats: dict[str, Tensor], txt_feats: dict[str, Tensor],
              chunk_size: int = 128) -> Tensor:
        """Similarity of every image with every text, cos(Fv_i, Ft_ij).

        Args:
            img_feats: {"v": (Ni, D)} from :meth:`encode_images`.
            txt_feats: {"s": (Nt, D)} and/or {"k": (Nt, D)} from :meth:`encode_texts`.
            chunk_size: side of the image x text blocks for the pairwise variants; peak extra memory is
                about chunk_size^2 * D floats per live tensor.

        Returns:
            (Ni, Nt) similarities.
        """
        v = img_feats["v"]  # (Ni, D)
        needed = [("s", self.vga_sentence)] if self.uses_sentence else []
        needed += [("k", self.vga_keywords)] if self.uses_keywords else []
        for key, _ in needed:
            if key not in txt_feats:
                raise KeyError(f"score needs txt_feats[{key!r}] for text_input={self.cfg.text_input!r}")
        texts = [(txt_feats[key], vga) for key, vga in needed]
        if not self.cfg.use_vga:  # text features do not depend on the image
            ft = self._fuse(*[t for t, _ in texts]) if len(texts) == 2 else texts[0][0]  # (Nt, D)
            return _cosine_rows(v, ft)
        if len(texts) == 1 and isinstance(texts[0][1], SoftAttention):
            return self._score_soft(v, texts[0][0], texts[0][1])
        img_side = [vga.image_side(v) for _, vga in texts]
        txt_side = [vga.text_side(t) for t, vga in texts]
        v_norm = v.norm(dim=1)  # (Ni,)
        rows = []
        for i0 in range(0, v.shape[0], chunk_size):
            i1 = i0 + chunk_size
            blocks = []
            for j0 in range(0, txt_side[0][0].shape[0], chunk_size):
                j1 = j0 + chunk_size
                fts = [vga.pair(tuple(x[i0:i1] for x in im), tuple(x[j0:j1] for x in tx))
                       for (_, vga), im, tx in zip(texts, img_side, txt_side)]  # (ni, nt, D) each
                ft = self._fuse(*fts) if len(fts) == 2 else fts[0]  # (ni, nt, D)
                num = torch.einsum("id,ijd->ij", v[i0:i1], ft)  # (ni, nt)
                den = (v_norm[i0:i1, None] * ft.norm(dim=-1)).clamp_min(1e-8)
                blocks.append(num / den)
            rows.append(torch.cat(blocks, dim=1))
        return torch.cat(rows, dim=0)  # (Ni, Nt)

    @staticmethod
    def _score_soft(v: Tensor, t: Tensor, vga: SoftAttention) -> Tensor:
        """Soft attention (eq. 20, Ft = g ⊙ t) in two matmuls, since |g ⊙ t|² = (g ⊙ g) · (t ⊙ t):
        sim = ((v * g) . t) / (|v| sqrt((g * g) . (t * t))), g = sigmoid(W v + b)."""
        g = vga.image_side(v)[0]  # (Ni, D)
        num = (v * g) @ t.T  # (Ni, Nt)
        ft_norm = ((g * g) @ (t * t).T).clamp_min(0).sqrt()  # (Ni, Nt) = |g_i * t_j|
        return num / (v.norm(dim=1)[:, None] * ft_norm).clamp_min(1e-8)

    # ------------------------------------------------------------------ loss
    def loss(self, feats: dict[str, Tensor], batch: dict) -> tuple[Tensor, dict[str, float]]:
        """Triplet loss over the in-batch B x B score matrix (rows images, columns captions).

        Args:
            feats: output of :meth:`forward` (possibly all-gathered across ranks).
            batch: needs ``image_ids`` (B,). With ``cfg.loss == "dynamic"`` also ``batch["prior"]``
                (B, B), prior[i, j] = S(captions of image i, caption j), e.g. from
                ``rsnb.prior.PriorSimilarity.batch_matrix(image_ids, caption_ids)`` in the training
                loop's batch hook (after the all-gather).

        Returns:
            The loss and a dict of floats (loss, mean positive and negative similarity).
        """
        img = {k[4:]: v for k, v in feats.items() if k.startswith("img_")}
        txt = {k[4:]: v for k, v in feats.items() if k.startswith("txt_")}
        sims = self.score(img, txt)  # (B, B)
        image_ids = batch["image_ids"].to(sims.device)
        c = self.cfg
        margin = margin_matrix(sims, batch.get("prior"), kind=c.loss, margin=c.margin, gamma=c.gamma, beta=c.beta)
        loss = triplet_loss(sims, image_ids, margin, negatives=c.negatives, mask_same_image=c.mask_same_image)
        return loss, {"loss": float(loss.detach()), **pair_stats(sims, image_ids)}

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of parameters (each shared tensor once)."""
        return count_parameters(self, trainable_only)


# ---------------------------------------------------------------------- registry (rsnb.models.registry)
def config_from_run(run_cfg: dict, vocab_size: int) -> AMFMNConfig:
    """The :class:`AMFMNConfig` of a run config: ``model.preset`` + overrides + vocab and image size."""
    run, m = split_model_section(run_cfg, BUILDER)
    preset = run.get("preset", "paper")
    m.update(vocab_size=vocab_size, image_size=int(run_cfg["image_size"]))
    if preset == "paper":
        return AMFMNConfig.paper(**m)
    if preset == "official":
        return AMFMNConfig.official(**m)
    return AMFMNConfig.ablation(preset, **m)


def prior_hook(model_cfg: AMFMNConfig, train_split):
    """``batch_hook`` adding ``batch["prior"]`` (B, B) for the dynamic-margin loss, else None."""
    if model_cfg.loss != "dynamic":
        return None
    from rsnb.prior import PriorSimilarity
    from rsnb.prior_meteor import MeteorPrior

    prior = MeteorPrior(train_split) if model_cfg.prior == "bleu_meteor" else PriorSimilarity(train_split)

    def hook(batch: dict) -> dict:
        batch["prior"] = prior.batch_matrix(batch["image_ids"], batch["caption_ids"], device=batch["image_ids"].device)
        return batch

    return hook


def _build(cfg: AMFMNConfig, vocab, init_pretrained: bool = True) -> AMFMN:
    return AMFMN(cfg, words=getattr(vocab, "itos", None), init_pretrained=init_pretrained)


BUILDER = ModelBuilder(name="amfmn", config_cls=AMFMNConfig, make_config=config_from_run, build=_build,
                       batch_hook=prior_hook)
