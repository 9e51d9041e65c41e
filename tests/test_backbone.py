import pytest
import torch
import torch.nn.functional as F

from rsnb.models import backbone as bb
from rsnb.models.backbone import Backbone


def _images(n, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g)


@pytest.mark.parametrize("size", [128, 256])
def test_resnet18_shapes_and_values(size):
    torch.manual_seed(0)
    net = Backbone("resnet18", pretrained=False, embed_dim=512).eval()
    x = _images(1, size)
    with torch.no_grad():
        low, high, glob = net(x)
    assert low.shape == (1, 192, size // 4, size // 4)
    assert high.shape == (1, 768, size // 16, size // 16)
    assert glob.shape == (1, 512)
    assert (net.low_channels, net.high_channels, net.top_channels) == (192, 768, 512)
    # recompute by hand from the stages
    with torch.no_grad():
        f1 = net.layer1(net.stem(x))
        f2 = net.layer2(f1)
        f3 = net.layer3(f2)
        f4 = net.layer4(f3)
    torch.testing.assert_close(low[:, :64], f1)
    torch.testing.assert_close(low[:, 64:], F.interpolate(f2, scale_factor=2, mode="nearest"))
    torch.testing.assert_close(high[:, 256:, 1::2, 1::2], f4)  # each 2x2 block repeats one value
    torch.testing.assert_close(high[:, 256:, ::2, ::2], f4)
    torch.testing.assert_close(glob, f4.mean(dim=(2, 3)) @ net.global_fc.weight.T + net.global_fc.bias)


def test_resnet18_gradient_flow():
    net = Backbone("resnet18", pretrained=False, embed_dim=64)
    low, high, glob = net(_images(2, 64))
    (low.mean() + high.mean() + glob.pow(2).mean()).backward()
    for p in (net.stem[0].weight, net.layer1[0].conv1.weight, net.layer4[1].conv2.weight, net.global_fc.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_resnet50_shapes_from_model():
    net = Backbone("resnet50", pretrained=False, embed_dim=256).eval()
    assert (net.low_channels, net.high_channels, net.top_channels) == (256 + 512, 1024 + 2048, 2048)
    with torch.no_grad():
        low, high, glob = net(_images(1, 64))
    assert low.shape == (1, 768, 16, 16)
    assert high.shape == (1, 3072, 4, 4)
    assert glob.shape == (1, 256)
    assert net.global_fc.in_features == 2048


def test_keep_fc_is_frozen_and_counted():
    with_fc = Backbone("resnet18", pretrained=False, keep_fc=True)
    without = Backbone("resnet18", pretrained=False)
    n_with = sum(p.numel() for p in with_fc.parameters())
    n_without = sum(p.numel() for p in without.parameters())
    assert n_with - n_without == 513_000  # 512*1000 + 1000
    assert n_without == 11_176_512 + 262_656  # conv trunk + global Linear (released params_count)
    assert not any(p.requires_grad for p in with_fc.fc.parameters())


def test_download_failure_warns_and_falls_back(monkeypatch):
    class Offline:
        def get_state_dict(self, progress=True):
            raise OSError("no network")

    monkeypatch.setitem(bb._ARCHS, "resnet18", (bb.models.resnet18, Offline()))
    with pytest.warns(RuntimeWarning, match="RANDOMLY initialised"):
        net = Backbone("resnet18", pretrained=True)
    assert net.global_fc.out_features == 512
    assert net.init == "random"  # what the run really used, not what it asked for


def test_pretrained_weights_are_loaded(monkeypatch):
    ref = bb.models.resnet18(weights=None)

    class Fake:
        def get_state_dict(self, progress=True):
            return ref.state_dict()

    monkeypatch.setitem(bb._ARCHS, "resnet18", (bb.models.resnet18, Fake()))
    net = Backbone("resnet18", pretrained=True)
    torch.testing.assert_close(net.stem[0].weight, ref.conv1.weight)
    torch.testing.assert_close(net.layer4[1].bn2.running_var, ref.layer4[1].bn2.running_var)
    assert net.init == "imagenet" and Backbone("resnet18", pretrained="random").init == "random"


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_weights_file_is_loaded(tmp_path, suffix):
    torch.manual_seed(5)
    ref = bb.models.resnet18(weights=None)
    with torch.no_grad():
        ref.layer4[1].bn2.running_var.uniform_(0.5, 2.0)  # a buffer the random init leaves at 1
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".pth":
        torch.save(ref.state_dict(), path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    torch.manual_seed(6)
    net = Backbone("resnet18", pretrained=str(path))
    assert net.init == str(path)
    torch.testing.assert_close(net.stem[0].weight, ref.conv1.weight)
    torch.testing.assert_close(net.layer4[1].bn2.running_var, ref.layer4[1].bn2.running_var)


def test_weights_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.pretrained=.*missing.pth: no such weights file"):
        Backbone("resnet18", pretrained=str(tmp_path / "missing.pth"))
    state = bb.models.resnet18(weights=None).state_dict()
    partial = tmp_path / "partial.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("fc.")}, partial)
    with pytest.raises(ValueError, match="partial.pth: not a torchvision resnet18 state_dict \\(missing key 'fc.bias'"):
        Backbone("resnet18", pretrained=str(partial))
    r50 = tmp_path / "r50.pth"
    torch.save(bb.models.resnet50(weights=None).state_dict(), r50)
    with pytest.raises(ValueError, match="r50.pth: not a torchvision resnet18"):
        Backbone("resnet18", pretrained=str(r50))
    shaped = tmp_path / "shaped.pth"
    torch.save({**state, "fc.weight": torch.zeros(10, 512)}, shaped)
    with pytest.raises(ValueError, match=r"shaped.pth: fc.weight has shape \(10, 512\), resnet18 needs \(1000, 512\)"):
        Backbone("resnet18", pretrained=str(shaped))


class _NotTensors:  # torch.load(weights_only=True) refuses to unpickle this
    pass


def test_weights_file_is_never_unpickled(tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"conv1.weight": _NotTensors()}, evil)
    with pytest.raises(ValueError, match="evil.pth: cannot read a state dict"):
        Backbone("resnet18", pretrained=str(evil))
    with pytest.raises(ValueError, match="model.pretrained must be"):
        bb.build_resnet("resnet18", pretrained=3)


def test_paper_grouping_adds_the_stem_level():
    torch.manual_seed(0)
    net = Backbone("resnet18", pretrained=False, grouping="paper").eval()
    assert (net.low_channels, net.high_channels) == (64 + 64 + 128, 768)
    x = _images(1, 64)
    with torch.no_grad():
        low, high, glob = net(x)
        stem = net.stem(x)
        f1 = net.layer1(stem)
        f2 = net.layer2(f1)
    assert low.shape == (1, 256, 16, 16) and high.shape == (1, 768, 4, 4)
    torch.testing.assert_close(low[:, :64], stem)
    torch.testing.assert_close(low[:, 64:128], f1)
    torch.testing.assert_close(low[:, 128:], F.interpolate(f2, scale_factor=2, mode="nearest"))
    with pytest.raises(ValueError, match="grouping must be one of"):
        Backbone("resnet18", pretrained=False, grouping="five")


def test_unknown_arch():
    with pytest.raises(ValueError, match="resnet18"):
        Backbone("vgg16", pretrained=False)
