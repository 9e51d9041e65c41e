"""ResNet trunk that yields AMFMN's low-level, high-level and global image features (paper Sec. III-A).

The released AMFMN code uses torchvision's ResNet-18 and groups its four residual stages in pairs:

* low-level  = concat(layer1, nearest-upsample x2 (layer2))      (B, c1 + c2, H/4,  W/4)
* high-level = concat(layer3, nearest-upsample x2 (layer4))      (B, c3 + c4, H/16, W/16)
* global v(g) = Linear(c4 -> D)(spatial mean of layer4)          (B, D), no activation

For ResNet-18 (c1..c4 = 64, 128, 256, 512) at 256 px that is 192x64x64, 768x16x16 and 512; ResNet-50
(256, 512, 1024, 2048) gives 768, 3072 and 2048 channels. Channel counts are read from the built model,
not hard-coded. Shown in notebooks/02_mvsa_internals.ipynb.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision import models

_ARCHS = {
    "resnet18": (models.resnet18, models.ResNet18_Weights.IMAGENET1K_V1),
    "resnet50": (models.resnet50, models.ResNet50_Weights.IMAGENET1K_V1),
}


class BackboneFeatures(NamedTuple):
    """The three image features of :class:`Backbone`.

    Attributes:
        low: (B, c1 + c2, H/4, W/4) low-level map.
        high: (B, c3 + c4, H/16, W/16) high-level map.
        glob: (B, D) global vector v(g).
    """

    low: Tensor
    high: Tensor
    glob: Tensor


def _stage_channels(stage: nn.Sequential) -> int:
    """Output channels of a ResNet stage (the last BatchNorm of its last block)."""
    bns = [m for m in stage[-1].modules() if isinstance(m, nn.BatchNorm2d)]
    return bns[-1].num_features


def build_resnet(arch: str = "resnet18", pretrained: bool = True) -> nn.Module:
    """Build a torchvision ResNet, loading ImageNet weights when asked and reachable.

    Args:
        arch: ``"resnet18"`` or ``"resnet50"``.
        pretrained: load the IMAGENET1K_V1 weights through torchvision's ``weights=`` API. If the
            download fails (offline machine) a warning is issued and the weights stay random.

    Returns:
        The full torchvision ResNet (fc included).
    """
    if arch not in _ARCHS:
        raise ValueError(f"backbone must be one of {sorted(_ARCHS)}, got {arch!r}")
    builder, weights = _ARCHS[arch]
    net = builder(weights=None)
    if pretrained:
        try:
            state = weights.get_state_dict(progress=False)
        except Exception as err:  # any download or cache failure: random init
            warnings.warn(
                f"could not load ImageNet weights for {arch} ({type(err).__name__}: {err}); "
                "the backbone is RANDOMLY initialised. Put the torchvision checkpoint in "
                "$TORCH_HOME/hub/checkpoints or pass pretrained=False to silence this.",
                RuntimeWarning,
                stacklevel=2,
            )
        else:
            net.load_state_dict(state)
    return net


class Backbone(nn.Module):
    """ResNet trunk returning low-level, high-level and global features.

    Args:
        arch: ``"resnet18"`` (paper and code) or ``"resnet50"``.
        pretrained: ImageNet initialisation (see :func:`build_resnet`).
        embed_dim: D, size of the global vector v(g).
        keep_fc: keep ResNet's classifier ``fc`` as a frozen, unused module. The released code leaves it
            in place, so its parameter count includes it; it never takes part in ``forward``.

    Attributes:
        low_channels, high_channels, top_channels: c1 + c2, c3 + c4 and c4.
    """

    def __init__(self, arch: str = "resnet18", pretrained: bool = True, embed_dim: int = 512,
                 keep_fc: bool = False) -> None:
        super().__init__()
        net = build_resnet(arch, pretrained)
        self.arch = arch
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        c1, c2, c3, c4 = (_stage_channels(s) for s in (self.layer1, self.layer2, self.layer3, self.layer4))
        self.low_channels = c1 + c2
        self.high_channels = c3 + c4
        self.top_channels = c4
        self.fc = None
        if keep_fc:
            self.fc = net.fc
            self.fc.requires_grad_(False)
        self.global_fc = nn.Linear(c4, embed_dim)

    def forward(self, images: Tensor) -> BackboneFeatures:
        """Encode images.

        Args:
            images: (B, 3, H, W), ImageNet-normalised, H and W multiples of 32.

        Returns:
            :class:`BackboneFeatures` (low, high, glob).
        """
        x = self.stem(images)  # (B, 64, H/4, W/4)
        f1 = self.layer1(x)  # (B, c1, H/4, W/4)
        f2 = self.layer2(f1)  # (B, c2, H/8, W/8)
        f3 = self.layer3(f2)  # (B, c3, H/16, W/16)
        f4 = self.layer4(f3)  # (B, c4, H/32, W/32)
        low = torch.cat([f1, F.interpolate(f2, size=f1.shape[-2:], mode="nearest")], dim=1)
        high = torch.cat([f3, F.interpolate(f4, size=f3.shape[-2:], mode="nearest")], dim=1)
        glob = self.global_fc(f4.mean(dim=(2, 3)))  # (B, D)
        return BackboneFeatures(low, high, glob)
