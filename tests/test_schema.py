"""Strict config validation: unknown sections/keys, types, ranges, choices; every preset validates."""

import pytest
import yaml

from rsnb import experiment as ex
from rsnb.errors import ConfigError
from rsnb.schema import check_value


@pytest.mark.parametrize("override, message", [
    ("trian.epochs=3", r"unknown section 'trian' \(did you mean 'train'\?\); allowed sections: name, image_size, data"),
    ("foo.bar=1", r"unknown section 'foo'; allowed sections"),
    ("data.min_cont=1", r"unknown key 'data.min_cont' \(did you mean 'min_count'\?\); allowed keys in data: .*min_count"),
    ("train.epoch=2", r"unknown key 'train.epoch' \(did you mean 'epochs'\?\); allowed keys in train: .*batch_size"),
    ("model.embd_dim=8", r"unknown key 'model.embd_dim' \(did you mean 'embed_dim'\?\)"),
    ("eval.batchsize=8", r"unknown key 'eval.batchsize'"),
    ("data.synthetic.imags=3", r"unknown key 'data.synthetic.imags' \(did you mean 'images'\?\)"),
    ("train.epochs=abc", r"^train.epochs: expected an integer, got 'abc'$"),
    ("train.epochs=2.5", r"^train.epochs: expected an integer, got 2.5$"),
    ("train.lr=-1", r"^train.lr: -1.0 must be > 0$"),
    ("train.lr=fast", r"^train.lr: expected a number, got 'fast'$"),
    ("train.batch_size=0", r"^train.batch_size: 0 must be >= 2"),
    ("train.epochs=0", r"^train.epochs: 0 must be >= 1$"),
    ("image_size=0", r"^image_size: 0 must be >= 32"),
    ("image_size=100", r"image_size must be a multiple of 32, got 100"),
    ("train.quiet=maybe", r"^train.quiet: expected true or false, got 'maybe'$"),
    ("data.val_fraction=1.5", r"^data.val_fraction: 1.5 must be between 0 and 1"),
    ("data.captions_per_image=0", r"^data.captions_per_image: 0 must be a number of captions >= 1 or 'any'$"),
    ("data.synthetic=3", r"^data.synthetic: expected a mapping of keys \(images, size, seed, splits\), got 3$"),
    ("train.amp=half", r"^train.amp = 'half'; expected one of"),
    ("model.vga=sof", r"^model.vga must be one of \('soft', 'fusion', 'sim'\), got 'sof'$"),
    ("model.preset=m10", r"^model.preset: ablation must be one of \['m1'.*got 'm10' \(or paper, official\)$"),
    ("model.name=clip", r"^model.name: 'clip' is not a model"),
    ("train=3", r"^train: expected a section"),
    ("train.epochs", r"must look like section.key=value"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        ex.load_config("demo", [override], quick=False)


def test_good_values_are_normalised():
    cfg = ex.load_config("demo", ["train.grad_clip=1", "train.lr=2e-4", "data.captions_per_image=any",
                                  "data.max_images=null"], quick=False)
    assert cfg["train"]["grad_clip"] == 1.0 and isinstance(cfg["train"]["grad_clip"], float)
    assert cfg["train"]["lr"] == 2e-4 and cfg["data"]["captions_per_image"] == "any"
    assert check_value("x", 3, float | None) == 3.0 and check_value("x", None, int | None) is None
    with pytest.raises(ConfigError, match="x: expected an integer or null, got True"):
        check_value("x", True, int | None)  # a bool is not a number


def test_unknown_keys_in_a_file_name_the_file(tmp_path):
    bad = tmp_path / "mine.yaml"
    bad.write_text("train:\n  epochs: 2\n  lr_shedule: step\n")
    with pytest.raises(ConfigError, match=r"mine.yaml: unknown key 'train.lr_shedule' \(did you mean 'lr_schedule'\?\)"):
        ex.load_config(bad, quick=False)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mine.yaml: expected a mapping of sections, got list"):
        ex.load_config(bad, quick=False)


@pytest.mark.parametrize("quick", [False, True])
def test_every_preset_validates_and_round_trips(quick):
    names = ex.preset_names()
    assert {"demo", "synthetic", "rsitmd", "rsicd", "ucm", "sydney", "rsitmd_official"} <= set(names)
    for name in names:
        cfg = ex.load_config(name, quick=quick)
        # what a run folder stores (config.yaml) loads back unchanged through the same validation
        again = ex.check_config(yaml.safe_load(yaml.safe_dump(cfg)))
        assert again == cfg, name


def test_every_default_key_validates():
    # each key of DEFAULTS, set to its own default value, is accepted (new keys must live in DEFAULTS)
    def walk(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict) and k not in ("model",):
                yield from walk(v, f"{prefix}{k}.")
            elif not isinstance(v, dict):
                yield f"{prefix}{k}", v
    for key, value in walk(ex.DEFAULTS):
        ex.load_config(None, [f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"],
                       quick=False)


def test_yaml_words_off_on_yes_no_stay_strings(tmp_path):
    """YAML 1.1 reads `off` as False: `train.amp=off` (a documented value) must stay the string 'off'."""
    cfg = ex.load_config("demo", ["train.amp=off", "train.quiet=true"], quick=False)
    assert cfg["train"]["amp"] == "off" and cfg["train"]["quiet"] is True
    mine = tmp_path / "mine.yaml"
    mine.write_text("train:\n  amp: off\n  quiet: false\n")
    cfg = ex.load_config(mine, quick=False)
    assert cfg["train"]["amp"] == "off" and cfg["train"]["quiet"] is False
    with pytest.raises(ConfigError, match=r"^train.quiet: expected true or false, got 'yes'$"):
        ex.load_config("demo", ["train.quiet=yes"], quick=False)
    assert yaml.safe_load(yaml.safe_dump(cfg)) == cfg  # config.yaml written by safe_dump reads back equal
