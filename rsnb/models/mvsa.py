"""Multiscale visual self-attention (MVSA, paper Sec. III-C, eqs. 14-19; code ``VSA_Module``).

MVSA turns the backbone's three features into one gated image vector Fv = v(g) * mask:

1. LF path: Conv(k3, stride 4, no pad) on the low-level map, landing on the high-level grid.
2. HF path: Conv(k1) on the high-level map.
3. v(lh) = concat(LF, HF) + residual, a (B, 2C, h, w) map.
4. information map v(i) = Conv1x1(v(lh)); gate v(w) = sigmoid(Conv1x1(v(lh))); gated = v(i) * v(w).
5. salient mask = sigmoid(Linear(h*w -> D)(flatten(gated))); Fv = v(g) * mask.

Two forms (``form=``):

* ``"paper"`` (default): PReLU after the LF and HF convs, the residual is the channel-mean of the
  *raw* high-level map, and v(lh) is L2-normalised over channels at every position before the two 1x1
  convs. The paper does not say over which axis it normalises; per-position channel vectors is our
  reading.
* ``"code"``: the released code. No activation, no normalisation, the residual is the channel-mean of
  the *transformed* HF map.

The mask Linear takes h*w = (image_size/16)^2 inputs (256 at 256 px, 64 at 128 px), so the module is
not tied to 256 px. For ResNet grids (low = 4 x high) the official k3/s4/no-pad conv lands exactly on
the high-level grid for every input size that is a multiple of 16; any other mismatch is resolved by
adaptive average pooling. Shown in notebooks/02_mvsa_internals.ipynb.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FORMS = ("paper", "code")


class MVSA(nn.Module):
    """Multiscale visual self-attention.

    Args:
        low_channels: channels of the low-level map (192 for ResNet-18).
        high_channels: channels of the high-level map (768 for ResNet-18).
        grid_size: side h = w of the high-level map (image_size // 16; 16 at 256 px).
        embed_dim: D, size of v(g) and of the mask.
        channels: C, output channels of the LF and HF convs (3 in both released configs).
        form: ``"paper"`` or ``"code"`` (see the module docstring).

    Shown in notebooks/02_mvsa_internals.ipynb.
    """

    def __init__(self, low_channels: int = 192, high_channels: int = 768, grid_size: int = 16,
                 embed_dim: int = 512, channels: int = 3, form: str = "paper") -> None:
        super().__init__()
        if form not in FORMS:
            raise ValueError(f"mvsa form must be one of {FORMS}, got {form!r}")
        self.form = form
        self.grid_size = grid_size
        self.lf_conv = nn.Conv2d(low_channels, channels, kernel_size=3, stride=4)
        self.hf_conv = nn.Conv2d(high_channels, channels, kernel_size=1)
        if form == "paper":
            self.lf_act: nn.Module = nn.PReLU(channels)
            self.hf_act: nn.Module = nn.PReLU(channels)
        else:
            self.lf_act = nn.Identity()
            self.hf_act = nn.Identity()
        self.info_conv = nn.Conv2d(2 * channels, 1, kernel_size=1)
        self.gate_conv = nn.Conv2d(2 * channels, 1, kernel_size=1)
        self.mask_fc = nn.Linear(grid_size * grid_size, embed_dim)

    def forward(self, low: Tensor, high: Tensor, glob: Tensor,
                return_maps: bool = False) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """Gate the global vector with the multiscale saliency mask.

        Args:
            low: (B, Cl, 4h, 4w) low-level map.
            high: (B, Ch, h, w) high-level map, h = w = ``grid_size``.
            glob: (B, D) global vector v(g).
            return_maps: also return the intermediate maps.

        Returns:
            Fv (B, D); with ``return_maps`` also a dict with ``lf``, ``hf`` (B, C, h, w), ``joint``
            v(lh) (B, 2C, h, w), ``info`` v(i), ``gate`` v(w), ``gated`` (B, 1, h, w), ``mask`` (B, D).
        """
        h, w = high.shape[-2:]
        if (h, w) != (self.grid_size, self.grid_size):
            raise ValueError(f"MVSA was built for a {self.grid_size}x{self.grid_size} high-level grid "
                             f"(image_size={16 * self.grid_size}), got {h}x{w}: set image_size to match")
        lf = self.lf_conv(low)  # (B, C, h', w'); h' = h for low = 4h
        if lf.shape[-2:] != (h, w):
            lf = F.adaptive_avg_pool2d(lf, (h, w))  # (B, C, h, w)
        lf = self.lf_act(lf)
        hf = self.hf_act(self.hf_conv(high))  # (B, C, h, w)
        joint = torch.cat([lf, hf], dim=1)  # (B, 2C, h, w)
        if self.form == "paper":
            joint = joint + high.mean(dim=1, keepdim=True)  # residual: raw high-level mean
            joint = F.normalize(joint, dim=1)  # L2 over channels at each position
        else:
            joint = joint + hf.mean(dim=1, keepdim=True)  # residual: transformed HF mean
        info = self.info_conv(joint)  # (B, 1, h, w)  v(i)
        gate = torch.sigmoid(self.gate_conv(joint))  # (B, 1, h, w)  v(w)
        gated = info * gate  # (B, 1, h, w)
        mask = torch.sigmoid(self.mask_fc(gated.flatten(1)))  # (B, D)
        fv = glob * mask  # (B, D)
        if not return_maps:
            return fv
        maps = {"lf": lf, "hf": hf, "joint": joint, "info": info, "gate": gate, "gated": gated, "mask": mask}
        return fv, maps
