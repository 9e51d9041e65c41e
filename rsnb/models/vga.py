"""Visual-guided attention (VGA, paper Sec. III-D-1, eqs. 20-25) and VGMF fusion (eqs. 26-27).

VGA builds a text feature for every (image, text) pair from the image vector v = Fv_i and the text
vector t = t_j (both (D,)):

* soft:   Ft = sigmoid(W v + b) * t
* fusion: f = [v; t];  Ft = sigmoid(W1 f + b1) * (W2 f + b2)
* sim:    a = Wv v + bv, b = Wt t + bt;  Ft = sigmoid(a * b) * b   (``gate="vector"``, released code)
          or Ft = sigmoid(cos(a, b)) * b                            (``gate="cosine"``, paper eqs. 23-25)

Note on the cosine gate: it is a positive scalar, so cos(Fv, Ft) = cos(Fv, b). With a sentence-only
model the cosine gate therefore does not change any score; it only matters when VGMF mixes two branches.

Every module offers two views of the same function:

* ``forward(v, t)``: matched pairs, (N, D) x (N, D) -> (N, D), written as in the paper;
* ``image_side(v)``, ``text_side(t)``, ``pair(img, txt)``: the per-image and per-text parts are
  computed once, ``pair`` combines an image block with a text block into (Ni, Nt, D). Scoring uses this
  so no encoder is re-run per pair.

Shown in notebooks/02_mvsa_internals.ipynb.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

VGA_TYPES = ("soft", "fusion", "sim")
SIM_GATES = ("vector", "cosine")
VGMF_FORMS = ("paper", "code")


class VisualGuidedAttention(nn.Module):
    """Base class of the VGA variants (see the module docstring)."""

    def forward(self, v: Tensor, t: Tensor) -> Tensor:
        """Matched pairs: v (N, D), t (N, D) -> Ft (N, D)."""
        raise NotImplementedError

    def image_side(self, v: Tensor) -> tuple[Tensor, ...]:
        """Per-image cache: v (Ni, D) -> tuple of (Ni, .) tensors."""
        raise NotImplementedError

    def text_side(self, t: Tensor) -> tuple[Tensor, ...]:
        """Per-text cache: t (Nt, D) -> tuple of (Nt, .) tensors."""
        raise NotImplementedError

    def pair(self, img: tuple[Tensor, ...], txt: tuple[Tensor, ...]) -> Tensor:
        """All pairs of an image block and a text block -> Ft (Ni, Nt, D)."""
        raise NotImplementedError


class SoftAttention(VisualGuidedAttention):
    """Soft attention: Ft = sigmoid(W v + b) * t (eq. 20).

    Args:
        dim: D.
    """

    def __init__(self, dim: int = 512) -> None:
        super().__init__()
        self.gate = nn.Linear(dim, dim)

    def forward(self, v: Tensor, t: Tensor) -> Tensor:  # noqa: D102
        return torch.sigmoid(self.gate(v)) * t  # (N, D)

    def image_side(self, v: Tensor) -> tuple[Tensor, ...]:  # noqa: D102
        return (torch.sigmoid(self.gate(v)),)  # g (Ni, D)

    def text_side(self, t: Tensor) -> tuple[Tensor, ...]:  # noqa: D102
        return (t,)

    def pair(self, img: tuple[Tensor, ...], txt: tuple[Tensor, ...]) -> Tensor:  # noqa: D102
        return img[0][:, None] * txt[0][None]  # (Ni, Nt, D)


class FusionAttention(VisualGuidedAttention):
    """Fusion attention: f = [v; t], Ft = sigmoid(W1 f + b1) * (W2 f + b2) (eqs. 21-22).

    Both Linear(2D -> D) act on the concatenation; ``image_side``/``text_side`` split their weight
    columns so that W f = W[:, :D] v + W[:, D:] t.

    Args:
        dim: D.
    """

    def __init__(self, dim: int = 512) -> None:
        super().__init__()
        self.dim = dim
        self.gate = nn.Linear(2 * dim, dim)
        self.value = nn.Linear(2 * dim, dim)

    def forward(self, v: Tensor, t: Tensor) -> Tensor:  # noqa: D102
        f = torch.cat([v, t], dim=-1)  # (N, 2D)
        return torch.sigmoid(self.gate(f)) * self.value(f)  # (N, D)

    def image_side(self, v: Tensor) -> tuple[Tensor, ...]:  # noqa: D102
        D = self.dim
        return (F.linear(v, self.gate.weight[:, :D], self.gate.bias),
                F.linear(v, self.value.weight[:, :D], self.value.bias))  # (Ni, D) x 2

    def text_side(self, t: Tensor) -> tuple[Tensor, ...]:  # noqa: D102
        D = self.dim
        return (F.linear(t, self.gate.weight[:, D:]), F.linear(t, self.value.weight[:, D:]))  # (Nt, D) x 2

    def pair(self, img: tuple[Tensor, ...], txt: tuple[Tensor, ...]) -> Tensor:  # noqa: D102
        gate = torch.sigmoid(img[0][:, None] + txt[0][None])  # (Ni, Nt, D)
        return gate * (img[1][:, None] + txt[1][None])  # (Ni, Nt, D)


class SimilarityAttention(VisualGuidedAttention):
    """Similarity attention: a = Wv v + bv, b = Wt t + bt, Ft = sigmoid(S(a, b)) * b (eqs. 23-25).

    Args:
        dim: D.
        gate: ``"vector"`` (released code: S = elementwise product, a (D,) gate) or ``"cosine"``
            (paper: S = cosine similarity, a scalar gate).
        scale: multiplies S before the sigmoid; 1 (paper and code). An rsnb diagnostic, not in the
            paper: at PyTorch's default init the entries of a and b are ~0.1, so a * b ~ 0.01 and the vector
            gate sits at sigmoid(0) = 0.5 for every pair (the gate ignores the image); ``scale`` ~ sqrt(D)
            starts it in its sensitive range.
    """

    def __init__(self, dim: int = 512, gate: str = "vector", scale: float = 1.0) -> None:
        super().__init__()
        if gate not in SIM_GATES:
            raise ValueError(f"sim_gate must be one of {SIM_GATES}, got {gate!r}")
        if not scale > 0:
            raise ValueError(f"sim_gate_scale must be > 0, got {scale!r}")
        self.gate_type = gate
        self.scale = float(scale)
        self.img_proj = nn.Linear(dim, dim)
        self.txt_proj = nn.Linear(dim, dim)

    def forward(self, v: Tensor, t: Tensor) -> Tensor:  # noqa: D102
        a, b = self.img_proj(v), self.txt_proj(t)  # (N, D)
        if self.gate_type == "vector":
            return torch.sigmoid(self.scale * a * b) * b
        return torch.sigmoid(self.scale * F.cosine_similarity(a, b, dim=-1, eps=1e-8))[:, None] * b

    def image_side(self, v: Tensor) -> tuple[Tensor, ...]:  # noqa: D102
        a = self.img_proj(v)  # (Ni, D)
        return (a, F.normalize(a, dim=-1, eps=1e-8))

    def text_side(self, t: Tensor) -> tuple[Tensor, ...]:  # noqa: D102
        b = self.txt_proj(t)  # (Nt, D)
        return (b, F.normalize(b, dim=-1, eps=1e-8))

    def pair(self, img: tuple[Tensor, ...], txt: tuple[Tensor, ...]) -> Tensor:  # noqa: D102
        if self.gate_type == "vector":
            return torch.sigmoid(self.scale * img[0][:, None] * txt[0][None]) * txt[0][None]  # (Ni, Nt, D)
        cos = img[1] @ txt[1].T  # (Ni, Nt)
        return torch.sigmoid(self.scale * cos)[..., None] * txt[0][None]  # (Ni, Nt, D)


def build_vga(kind: str, dim: int = 512, sim_gate: str = "vector", sim_gate_scale: float = 1.0) -> VisualGuidedAttention:
    """Build a VGA module by name: ``"soft"``, ``"fusion"`` or ``"sim"`` (``sim_gate*`` apply to sim only)."""
    if kind == "soft":
        return SoftAttention(dim)
    if kind == "fusion":
        return FusionAttention(dim)
    if kind == "sim":
        return SimilarityAttention(dim, sim_gate, sim_gate_scale)
    raise ValueError(f"vga must be one of {VGA_TYPES}, got {kind!r}")


class VGMF(nn.Module):
    """Visual-guided multimodal fusion of the sentence and keyword features (eqs. 26-27).

    s_w = Linear(2D -> D)(concat(L2(s), L2(k))), w = sigmoid(s_w), then

    * ``form="paper"``: Ft = s * w + k * (1 - w)
    * ``form="code"`` (the released, unused ``VGMF_Fusion``): Ft = L2(s) * w + L2(k) * (1 - w)

    Args:
        dim: D.
        form: ``"paper"`` or ``"code"``.
    """

    def __init__(self, dim: int = 512, form: str = "paper") -> None:
        super().__init__()
        if form not in VGMF_FORMS:
            raise ValueError(f"vgmf_form must be one of {VGMF_FORMS}, got {form!r}")
        self.form = form
        self.gate = nn.Linear(2 * dim, dim)

    def forward(self, s: Tensor, k: Tensor) -> Tensor:
        """Fuse s(v) and k(v), both (..., D) -> Ft (..., D)."""
        s_n, k_n = F.normalize(s, dim=-1, eps=1e-8), F.normalize(k, dim=-1, eps=1e-8)
        w = torch.sigmoid(self.gate(torch.cat([s_n, k_n], dim=-1)))  # (..., D)
        if self.form == "code":
            s, k = s_n, k_n
        return s * w + k * (1 - w)
