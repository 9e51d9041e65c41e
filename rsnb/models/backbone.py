"""ResNet trunk that yields AMFMN's low-level, high-level and global image features (paper Sec. III-A).

The released AMFMN code uses torchvision's ResNet-18 and groups its four residual stages in pairs
(``grouping="code"``, the default):

* low-level  = concat(layer1, nearest-upsample x2 (layer2))      (B, c1 + c2, H/4,  W/4)
* high-level = concat(layer3, nearest-upsample x2 (layer4))      (B, c3 + c4, H/16, W/16)
* global v(g) = Linear(c4 -> D)(spatial mean of layer4)          (B, D), no activation

For ResNet-18 (c1..c4 = 64, 128, 256, 512) at 256 px that is 192x64x64, 768x16x16 and 512; ResNet-50
(256, 512, 1024, 2048) gives 768, 3072 and 2048 channels.

The paper (eqs. 6-9) instead describes five CNN levels, the first three upsampled and concatenated
into the low-level feature and the last two into the high-level one. ``grouping="paper"`` reads the
five levels as the stem (conv1 + max-pool, c0 = 64 channels at H/4: the resolution of layer1, so
the MVSA shapes are unchanged), layer1, layer2 | layer3, layer4:

* low-level  = concat(stem, layer1, nearest-upsample x2 (layer2))  (B, c0 + c1 + c2, H/4, W/4)
* high-level = as above                                           (B, c3 + c4, H/16, W/16)

Which conv1 tensor the paper means is not stated; taking it after the max-pool is our reading. Channel counts are read from the built model,
not hard-coded. Shown in notebooks/02_mvsa_internals.ipynb.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn
from torchvision import models

_ARCHS = {
    "resnet18": (models.resnet18, models.ResNet18_Weights.IMAGENET1K_V1),
    "resnet50": (models.resnet50, models.ResNet50_Weights.IMAGENET1K_V1),
}


GROUPINGS = ("code", "paper")


class BackboneFeatures(NamedTuple):
    """The three image features of :class:`Backbone`.

    Attributes:
        low: (B, c1 + c2, H/4, W/4) low-level map (c0 + c1 + c2 channels with the paper grouping).
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


def _load_weights_file(net: nn.Module, path: Path, arch: str) -> None:
    """Load a state dict from a ``.pth``/``.pt`` (tensors only) or ``.safetensors`` file into ``net``."""
    if not path.is_file():
        raise FileNotFoundError(f"model.pretrained={path}: no such weights file")
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:  # weights_only: tensors and plain containers, never arbitrary pickled objects
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpicklable object, truncated file, wrong format
        raise ValueError(f"model.pretrained={path}: cannot read a state dict ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"model.pretrained={path}: expected a dict of tensors (a {arch} state_dict)")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        what = f"missing key {missing[0]!r}" if missing else f"unexpected key {unexpected[0]!r}"
        raise ValueError(f"model.pretrained={path}: not a torchvision {arch} state_dict ({what}; "
                         f"{len(missing)} missing, {len(unexpected)} unexpected)")
    bad = next((k for k, v in state.items() if v.shape != own[k].shape), None)
    if bad is not None:
        raise ValueError(f"model.pretrained={path}: {bad} has shape {tuple(state[bad].shape)}, "
                         f"{arch} needs {tuple(own[bad].shape)}")
    net.load_state_dict(state)


def backbone_init_request(pretrained: bool | str) -> str:
    """Normalise a ``pretrained`` setting to ``"imagenet"``, ``"random"`` or a weights file path."""
    if pretrained is True or pretrained == "imagenet":
        return "imagenet"
    if pretrained is False or pretrained is None or pretrained == "random":
        return "random"
    if isinstance(pretrained, str | Path) and str(pretrained):
        return str(pretrained)
    raise ValueError(f"model.pretrained must be true/imagenet, false/random or a weights file path, got {pretrained!r}")


def build_resnet(arch: str = "resnet18", pretrained: bool | str = True, return_init: bool = False):
    """Build a torchvision ResNet, initialised from ImageNet, a local weights file, or at random.

    Args:
        arch: ``"resnet18"`` or ``"resnet50"``.
        pretrained: ``True``/``"imagenet"``: the IMAGENET1K_V1 weights through torchvision's
            ``weights=`` API; if the download fails (offline machine) a warning is issued and the
            weights stay random. ``False``/``"random"``: random. A path: a torchvision state dict
            saved with ``torch.save`` (read with ``weights_only=True``: nothing but tensors is
            unpickled) or a ``.safetensors`` file, e.g. a local copy of ``resnet18-f37072fd.pth``.
        return_init: also return what was really used: ``"imagenet"``, ``"random"`` or the path.

    Returns:
        The full torchvision ResNet (fc included), or ``(net, init)``.

    Raises:
        FileNotFoundError / ValueError: a weights path that is missing or not a matching state dict.
    """
    if arch not in _ARCHS:
        raise ValueError(f"backbone must be one of {sorted(_ARCHS)}, got {arch!r}")
    builder, weights = _ARCHS[arch]
    net = builder(weights=None)
    init = backbone_init_request(pretrained)
    if init == "imagenet":
        try:
            state = weights.get_state_dict(progress=False)
        except Exception as err:  # any download or cache failure: random init
            warnings.warn(
                f"could not load ImageNet weights for {arch} ({type(err).__name__}: {err}); "
                "the backbone is RANDOMLY initialised. Put the torchvision checkpoint in "
                "$TORCH_HOME/hub/checkpoints, pass model.pretrained=/path/to/weights.pth, "
                "or pass pretrained=False to silence this.",
                RuntimeWarning,
                stacklevel=2,
            )
            init = "random"
        else:
            net.load_state_dict(state)
    elif init != "random":
        _load_weights_file(net, Path(init), arch)
    return (net, init) if return_init else net


class Backbone(nn.Module):
    """ResNet trunk returning low-level, high-level and global features.

    Args:
        arch: ``"resnet18"`` (paper and code) or ``"resnet50"``.
        pretrained: ``True``/``"imagenet"``, ``False``/``"random"`` or a weights file path (see
            :func:`build_resnet`).
        embed_dim: D, size of the global vector v(g); 0 builds no ``global_fc`` (use :meth:`stages`,
            as MSA does).
        keep_fc: keep ResNet's classifier ``fc`` as a frozen, unused module. The released code leaves it
            in place, so its parameter count includes it; it never takes part in ``forward``.
        grouping: ``"code"`` (layer1+layer2 | layer3+layer4, released code) or ``"paper"`` (stem +
            layer1 + layer2 | layer3 + layer4, the paper's five levels; see the module docstring).

    Attributes:
        low_channels, high_channels, top_channels: c1 + c2, c3 + c4 and c4.
        init: how the trunk was really initialised: ``"imagenet"``, ``"random"`` (asked for, or the
            ImageNet download failed) or the weights file path.
    """

    def __init__(self, arch: str = "resnet18", pretrained: bool | str = True, embed_dim: int = 512,
                 keep_fc: bool = False, grouping: str = "code") -> None:
        super().__init__()
        if grouping not in GROUPINGS:
            raise ValueError(f"backbone grouping must be one of {GROUPINGS}, got {grouping!r}")
        self.grouping = grouping
        net, self.init = build_resnet(arch, pretrained, return_init=True)
        self.arch = arch
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        c1, c2, c3, c4 = (_stage_channels(s) for s in (self.layer1, self.layer2, self.layer3, self.layer4))
        self.stage_channels = (c1, c2, c3, c4)
        c0 = net.conv1.out_channels
        self.low_channels = c1 + c2 + (c0 if grouping == "paper" else 0)
        self.high_channels = c3 + c4
        self.top_channels = c4
        self.fc = None
        if keep_fc:
            self.fc = net.fc
            self.fc.requires_grad_(False)
        self.global_fc = nn.Linear(c4, embed_dim) if embed_dim > 0 else None

    def _stages(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        x = self.stem(images)  # (B, 64, H/4, W/4)
        f1 = self.layer1(x)  # (B, c1, H/4, W/4)
        f2 = self.layer2(f1)  # (B, c2, H/8, W/8)
        f3 = self.layer3(f2)  # (B, c3, H/16, W/16)
        f4 = self.layer4(f3)  # (B, c4, H/32, W/32)
        return x, f1, f2, f3, f4

    def stages(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The four residual stage outputs f1..f4: (B, c_s, H/4, W/4) .. (B, c4, H/32, W/32)."""
        return self._stages(images)[1:]

    def forward(self, images: Tensor) -> BackboneFeatures:
        """Encode images.

        Args:
            images: (B, 3, H, W), ImageNet-normalised, H and W multiples of 32.

        Returns:
            :class:`BackboneFeatures` (low, high, glob).
        """
        x, f1, f2, f3, f4 = self._stages(images)
        low_parts = [x, f1] if self.grouping == "paper" else [f1]
        low = torch.cat([*low_parts, F.interpolate(f2, size=f1.shape[-2:], mode="nearest")], dim=1)
        high = torch.cat([f3, F.interpolate(f4, size=f3.shape[-2:], mode="nearest")], dim=1)
        glob = self.global_fc(f4.mean(dim=(2, 3)))  # (B, D)
        return BackboneFeatures(low, high, glob)
