import json
import warnings

import pytest
import torch
import torch.nn.functional as F

from rsnb.models.amfmn import ABLATIONS, AMFMN, AMFMNConfig

TINY = dict(pretrained=False, image_size=64, vocab_size=20, word_dim=12, text_hidden=16, embed_dim=16,
            keyword_hidden=10)


def tiny(preset="paper", **kw):
    if preset in ABLATIONS:
        return AMFMNConfig.ablation(preset, **{**TINY, **kw})
    return getattr(AMFMNConfig, preset)(**{**TINY, **kw})


def build(cfg, seed=0):
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skip-thought without files
        return AMFMN(cfg).eval()


def _texts(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 7, (n,), generator=g)
    tokens = torch.randint(1, 20, (n, 6), generator=g) * (torch.arange(6)[None] < lengths[:, None])
    keywords = torch.randint(0, 20, (n, 3, 2), generator=g)
    keywords[..., 0] = keywords[..., 0].clamp_min(1)
    mask = torch.rand(n, 3, generator=g) < 0.7
    return tokens, lengths, keywords, mask


def _batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens, lengths, keywords, mask = _texts(n, seed)
    return {"images": torch.randn(n, 3, 64, 64, generator=g), "tokens": tokens, "lengths": lengths,
            "keywords": keywords, "keyword_mask": mask, "image_ids": torch.tensor([0, 1, 1, 2][:n]),
            "caption_ids": torch.arange(n), "prior": torch.rand(n, n, generator=g)}


def brute_force(model, v, txt):
    """sim[i, j] = cos(Fv_i, Ft_ij) with Ft_ij built pair by pair from the paper formulas."""
    cfg = model.cfg
    out = torch.empty(v.shape[0], next(iter(txt.values())).shape[0])
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            parts = []
            for key, vga in (("s", model.vga_sentence), ("k", model.vga_keywords)):
                if key in txt:
                    t = txt[key][j : j + 1]
                    parts.append(vga(v[i : i + 1], t) if cfg.use_vga else t)
            if len(parts) == 2:
                ft = model.vgmf(*parts) if cfg.use_vgmf else (parts[0] + parts[1]) / 2
            else:
                ft = parts[0]
            out[i, j] = F.cosine_similarity(v[i : i + 1], ft, eps=1e-8)[0]
    return out


# ---------------------------------------------------------------- config
def test_config_roundtrip_and_presets():
    for cfg in (AMFMNConfig.paper(vocab_size=9), AMFMNConfig.official(vocab_size=9), tiny("m9")):
        d = json.loads(json.dumps(cfg.to_dict()))
        assert AMFMNConfig.from_dict(d) == cfg
    p, o = AMFMNConfig.paper(), AMFMNConfig.official()
    assert (p.mvsa_form, p.text_encoder, p.word_dim, p.text_hidden, p.vga, p.sim_gate, p.loss, p.gamma,
            p.beta, p.negatives, p.text_input) == ("paper", "bigru", 300, 512, "sim", "vector", "dynamic",
                                                   0.6, 5.0, "sum", "sentence")
    assert AMFMNConfig() == p
    assert (o.mvsa_form, o.text_encoder, o.word_dim, o.text_hidden, o.text_dropout, o.vga, o.loss, o.margin,
            o.negatives, o.text_input, o.mask_same_image) == ("code", "skipthought", 620, 2400, 0.25, "soft",
                                                              "fixed", 0.2, "sum", "sentence", False)
    assert AMFMNConfig.official(vga="sim").vga == "sim"
    m9 = AMFMNConfig.ablation("m9", gamma=0.4)
    assert (m9.use_mvsa, m9.use_vga, m9.text_input, m9.use_vgmf, m9.gamma) == (True, True, "both", True, 0.4)
    m1 = AMFMNConfig.ablation("m1")
    assert (m1.use_mvsa, m1.use_vga, m1.text_input) == (False, False, "sentence")


def test_config_errors():
    with pytest.raises(ValueError, match="AMFMNConfig.vga must be one of"):
        AMFMNConfig(vga="hard")
    with pytest.raises(ValueError, match="multiple of 32"):
        AMFMNConfig(image_size=100)
    with pytest.raises(ValueError, match="unknown AMFMNConfig keys: \\['colour'\\]"):
        AMFMNConfig.from_dict({"colour": 1})
    with pytest.raises(ValueError, match="ablation must be one of"):
        AMFMNConfig.ablation("m10")
    with pytest.raises(ValueError, match="vocab_size must be set"):
        AMFMN(AMFMNConfig(pretrained=False))


# ---------------------------------------------------------------- scoring
SCORING_CASES = {
    "soft": dict(vga="soft"),
    "fusion": dict(vga="fusion"),
    "sim-vector": dict(vga="sim", sim_gate="vector"),
    "sim-cosine": dict(vga="sim", sim_gate="cosine"),
    "vgmf-paper": dict(text_input="both", vga="sim", sim_gate="vector"),
    "vgmf-code": dict(text_input="both", vga="fusion", vgmf_form="code"),
    "vgmf-soft-cosine": dict(text_input="both", vga="soft"),
    "keywords-fusion": dict(text_input="keywords", vga="fusion"),
}


@pytest.mark.parametrize("case", list(SCORING_CASES))
def test_cached_score_equals_brute_force(case):
    model = build(tiny(**SCORING_CASES[case]))
    g = torch.Generator().manual_seed(1)
    tokens, lengths, keywords, mask = _texts(5)
    with torch.no_grad():
        v = model.encode_images(torch.randn(3, 3, 64, 64, generator=g))["v"]
        txt = model.encode_texts(tokens, lengths, keywords, mask)
        sims = model.score({"v": v}, txt, chunk_size=2)  # 2 x 3 blocks, ragged at the edges
        ref = brute_force(model, v, txt)
    assert sims.shape == (3, 5)
    torch.testing.assert_close(sims, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.score({"v": v}, txt, chunk_size=128), sims, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_ablations_build_and_score(name):
    model = build(tiny(name))
    cfg = model.cfg
    assert (model.mvsa is not None) == cfg.use_mvsa
    assert (model.sentence_encoder is not None) == (cfg.text_input != "keywords")
    assert (model.keyword_encoder is not None) == (cfg.text_input != "sentence")
    assert (model.vga_sentence is not None or model.vga_keywords is not None) == cfg.use_vga
    assert (model.vgmf is not None) == (name == "m9")
    g = torch.Generator().manual_seed(2)
    tokens, lengths, keywords, mask = _texts(4)
    with torch.no_grad():
        v = model.encode_images(torch.randn(2, 3, 64, 64, generator=g))["v"]
        txt = model.encode_texts(tokens, lengths, keywords, mask)
        sims = model.score({"v": v}, txt, chunk_size=3)
    assert set(txt) == {"sentence": {"s"}, "keywords": {"k"}, "both": {"s", "k"}}[cfg.text_input]
    torch.testing.assert_close(sims, brute_force(model, v, txt), rtol=1e-5, atol=1e-6)
    if not cfg.use_mvsa:  # m1/m2: Fv is the global vector v(g)
        with torch.no_grad():
            torch.testing.assert_close(v, model.backbone(torch.randn(2, 3, 64, 64,
                                                                     generator=g.manual_seed(2)))[2])


def test_skipthought_model_and_128px_mvsa():
    model = build(tiny("official", image_size=128))
    assert model.mvsa.mask_fc.in_features == 64
    b = _batch(4)
    b["images"] = torch.randn(4, 3, 128, 128)
    with torch.no_grad():
        feats = model(b)
        maps = model.mvsa_maps(b["images"][:2])
    assert set(feats) == {"img_v", "txt_s"} and feats["img_v"].shape == (4, 16)
    assert (feats["txt_s"] >= 0).all()  # ReLU projection
    assert maps["gated"].shape == (2, 1, 8, 8) and maps["fv"].shape == (2, 16)


def test_missing_inputs_errors():
    model = build(tiny("m9"))
    tokens, lengths, _, _ = _texts(2)
    with pytest.raises(ValueError, match="needs keywords and keyword_mask"):
        model.encode_texts(tokens, lengths)
    with pytest.raises(KeyError, match="txt_feats\\['k'\\]"):
        model.score({"v": torch.randn(2, 16)}, {"s": torch.randn(2, 16)})
    with pytest.raises(RuntimeError, match="no MVSA"):
        build(tiny("m1")).mvsa_maps(torch.randn(1, 3, 64, 64))


# ---------------------------------------------------------------- loss
@pytest.mark.parametrize("preset", ["paper", "official", "m9"])
def test_forward_loss_and_gradients(preset):
    losses = pytest.importorskip("rsnb.losses")
    model = build(tiny(preset)).train()
    b = _batch(4)
    feats = model(b)
    assert all(t.shape[0] == 4 for t in feats.values())
    loss, logs = model.loss(feats, b)
    assert set(logs) == {"loss", "sim_pos", "sim_neg"} and logs["loss"] == pytest.approx(float(loss.detach()))
    sims = model.score({"v": feats["img_v"]}, {k[4:]: v for k, v in feats.items() if k.startswith("txt_")})
    cfg = model.cfg
    margin = losses.dynamic_margin(b["prior"], cfg.gamma, cfg.beta) if cfg.loss == "dynamic" else cfg.margin
    expected = losses.triplet_loss(sims, b["image_ids"], margin, negatives=cfg.negatives,
                                   mask_same_image=cfg.mask_same_image)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    named = dict(model.named_parameters())
    checked = ["backbone.stem.0.weight", "backbone.global_fc.weight", "mvsa.mask_fc.weight",
               "sentence_encoder.embedding.weight"]
    checked += {"paper": ["vga_sentence.img_proj.weight"], "official": ["vga_sentence.gate.weight"],
                "m9": ["vgmf.gate.weight", "keyword_encoder.gru.weight_hh_l0", "vga_keywords.img_proj.weight"]}[preset]
    for name in checked:
        assert named[name].grad is not None and named[name].grad.abs().sum() > 0, name
    for name, p in named.items():  # frozen dead modules of the official build get no gradient
        if not p.requires_grad:
            assert p.grad is None and (name.startswith("backbone.fc") or name.startswith("vgmf")), name


def test_dynamic_loss_needs_prior():
    pytest.importorskip("rsnb.losses")
    model = build(tiny("paper"))
    b = _batch(4)
    del b["prior"]
    with pytest.raises(ValueError, match="batch\\['prior'\\]"):
        model.loss(model(b), b)
    b["prior"] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match="prior has shape"):
        model.loss(model(b), b)


# ---------------------------------------------------------------- parameter counts
def test_official_parameter_count_matches_reference():
    """The released code's params_count with the RSITMD vocab (1,349 + pad rows)."""
    counts = {}
    for key, kw in {"soft": {}, "fusion": dict(vga="fusion"), "rsicd": dict(vocab_size=1226)}.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = AMFMN(AMFMNConfig.official(**{"vocab_size": 1350, "pretrained": False, **kw}))
        counts[key] = model.num_parameters()
        if key == "soft":
            assert model.num_parameters(trainable_only=True) == 36_696_228 - 513_000 - 524_800
            assert sum(p.numel() for p in model.mvsa.parameters()) == 139_092
            assert sum(p.numel() for p in model.sentence_encoder.gru.parameters()) == 21_751_200
        del model
    assert counts == {"soft": 36_696_228, "fusion": 37_483_172, "rsicd": 36_619_348}


def test_paper_backbone_grouping_feeds_mvsa():
    code, paper = build(tiny("paper")), build(tiny("paper", backbone_grouping="paper"))
    assert paper.mvsa.lf_conv.in_channels - code.mvsa.lf_conv.in_channels == 64  # the stem level
    b = _batch(4)
    loss, _ = paper.loss(paper.train()(b), b)
    loss.backward()
    assert paper.backbone.stem[0].weight.grad.abs().sum() > 0
    assert paper.mvsa.lf_conv.weight.grad[:, :64].abs().sum() > 0  # the stem channels are used
    with pytest.raises(ValueError, match="backbone_grouping must be one of"):
        AMFMNConfig(backbone_grouping="five", vocab_size=10)
