import numpy as np
import pytest
import torch
from torch import nn

from rsnb.models.text import BayesianGRU, BiGRUEncoder, KeywordEncoder, SkipThoughtEncoder


def _batch():
    tokens = torch.tensor([[3, 4, 5, 6, 0, 0], [7, 2, 0, 0, 0, 0], [1, 8, 9, 3, 4, 5]])
    lengths = torch.tensor([4, 2, 6])
    return tokens, lengths


# ---------------------------------------------------------------- bi-GRU
def test_bigru_matches_unpadded_reference():
    torch.manual_seed(0)
    enc = BiGRUEncoder(vocab_size=10, word_dim=8, hidden=6, embed_dim=6)
    tokens, lengths = _batch()
    sent, states = enc(tokens, lengths)
    assert sent.shape == (3, 6) and states.shape == (3, 6, 6)
    for i, n in enumerate(lengths.tolist()):
        out, _ = enc.gru(enc.embedding(tokens[i : i + 1, :n]))  # no padding at all: (1, n, 12)
        s_t = 0.5 * (out[0, :, :6] + out[0, :, 6:])
        torch.testing.assert_close(states[i, :n], s_t)
        torch.testing.assert_close(sent[i], s_t.mean(0))
        assert states[i, n:].abs().sum() == 0


def test_bigru_padding_does_not_change_output():
    torch.manual_seed(0)
    enc = BiGRUEncoder(vocab_size=10, word_dim=8, hidden=6, embed_dim=4)  # with projection
    tokens, lengths = _batch()
    sent, _ = enc(tokens, lengths)
    wider = torch.cat([tokens, torch.zeros(3, 5, dtype=torch.long)], 1)
    junk = tokens.clone()
    junk[0, 4:] = 9  # garbage ids past the end
    torch.testing.assert_close(enc(wider, lengths)[0], sent)
    torch.testing.assert_close(enc(junk, lengths)[0], sent)
    assert sent.shape == (3, 4)


def test_bigru_gradients_and_length_errors():
    enc = BiGRUEncoder(vocab_size=10, word_dim=8, hidden=6)
    tokens, lengths = _batch()
    enc(tokens, lengths)[0].pow(2).sum().backward()
    assert enc.embedding.weight.grad[3].abs().sum() > 0
    assert enc.embedding.weight.grad[0].abs().sum() == 0  # padding row
    assert all(p.grad is not None for p in enc.gru.parameters())
    with pytest.raises(ValueError, match="caption 1 .* length 0"):
        enc(tokens, torch.tensor([4, 0, 6]))
    with pytest.raises(ValueError, match="length 7"):
        enc(tokens, torch.tensor([4, 2, 7]))


# ---------------------------------------------------------------- skip-thought GRU
def test_bayesian_gru_eval_equals_torch_gru():
    torch.manual_seed(0)
    g = BayesianGRU(5, 7, dropout=0.25).eval()
    ref = nn.GRU(5, 7, batch_first=True)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(torch.cat([g.in_r.weight, g.in_z.weight, g.in_n.weight]))
        ref.bias_ih_l0.copy_(torch.cat([g.in_r.bias, g.in_z.bias, g.in_n.bias]))
        ref.weight_hh_l0.copy_(torch.cat([g.hid_r.weight, g.hid_z.weight, g.hid_n.weight]))
        ref.bias_hh_l0.zero_()
    x = torch.randn(3, 6, 5)
    lengths = torch.tensor([6, 3, 1])
    out = g(x, lengths)
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(out[i, :n], ref(x[i : i + 1, :n])[0][0])
        assert out[i, n:].abs().sum() == 0
    assert sum(p.numel() for p in g.parameters()) == 3 * (5 * 7 + 7) + 3 * 7 * 7


def test_bayesian_dropout_mask_fixed_over_time():
    torch.manual_seed(0)
    g = BayesianGRU(4, 50, dropout=0.5).train()
    with torch.no_grad():  # z ~ 0 and no recurrence: h_t = n_t = tanh(W_n (x_t * m) + b_n)
        for lin in (g.hid_r, g.hid_z, g.hid_n):
            lin.weight.zero_()
        g.in_z.weight.zero_()
        g.in_z.bias.fill_(-30.0)
    x = torch.randn(2, 1, 4).expand(2, 5, 4)  # the same input at every step
    out = g(x, torch.tensor([5, 5]))
    torch.testing.assert_close(out, out[:, :1].expand_as(out))  # one mask per sequence
    assert not torch.allclose(out, g.eval()(x, torch.tensor([5, 5])))  # but masks are applied
    g.train().dropout = 0.0
    torch.testing.assert_close(g(x, torch.tensor([5, 5])), g.eval()(x, torch.tensor([5, 5])))


def _fake_skipthought(folder, E=6, H=5, utable_object=False, seed=0):
    rng = np.random.default_rng(seed)
    words = ["UNK", "river", "boat", "<eos>"]
    (folder / "dictionary.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    table = rng.standard_normal((len(words), E)).astype(np.float32)
    if utable_object:
        obj = np.empty(len(words), dtype=object)
        for i, row in enumerate(table):
            obj[i] = row[None]  # (1, E) rows in a pickled object array
        np.save(folder / "utable.npy", obj, allow_pickle=True)
    else:
        np.save(folder / "utable.npy", table)
    params = {
        "encoder_W": rng.standard_normal((E, 2 * H)) * 0.5, "encoder_U": rng.standard_normal((H, 2 * H)) * 0.5,
        "encoder_b": rng.standard_normal(2 * H) * 0.1, "encoder_Wx": rng.standard_normal((E, H)) * 0.5,
        "encoder_Ux": rng.standard_normal((H, H)) * 0.5, "encoder_bx": rng.standard_normal(H) * 0.1,
        "Wemb": rng.standard_normal((4, E)),  # other keys of the real file are ignored
    }
    np.savez(folder / "uni_skip.npz", **{k: v.astype(np.float32) for k, v in params.items()})
    return table, params


def _theano_gru(emb, p, H):
    """The original Theano encoder step, written from the published equations."""
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    h = np.zeros(H)
    for x in emb:
        preact = h @ p["encoder_U"] + x @ p["encoder_W"] + p["encoder_b"]
        r, u = sig(preact[:H]), sig(preact[H:])
        n = np.tanh((h @ p["encoder_Ux"]) * r + x @ p["encoder_Wx"] + p["encoder_bx"])
        h = u * h + (1 - u) * n
    return h


@pytest.mark.parametrize("utable_object", [False, True])
def test_skipthought_loader_maps_theano_weights(tmp_path, utable_object):
    table, params = _fake_skipthought(tmp_path, utable_object=utable_object)
    words = ["<pad>", "<unk>", "river", "boat", "zzz"]
    enc = SkipThoughtEncoder(5, word_dim=6, hidden=5, embed_dim=3, skipthought_dir=tmp_path, words=words).eval()
    W = enc.embedding.weight.detach().numpy()
    assert np.all(W[0] == 0)
    np.testing.assert_allclose(W[1], table[0])  # <unk> -> UNK row
    np.testing.assert_allclose(W[2], table[1])
    np.testing.assert_allclose(W[3], table[2])
    np.testing.assert_allclose(W[4], table[0])  # zzz -> UNK row
    assert enc.load_skipthought(tmp_path, words) == 2
    tokens = torch.tensor([[2, 3, 4, 0], [3, 1, 0, 0]])
    lengths = torch.tensor([3, 2])
    with torch.no_grad():
        sent, states = enc(tokens, lengths)
    assert states.shape == (2, 4, 5)
    for i, n in enumerate(lengths.tolist()):
        h = _theano_gru(W[tokens[i, :n].numpy()].astype(np.float64), params, 5)
        np.testing.assert_allclose(states[i, n - 1].numpy(), h, rtol=1e-5, atol=1e-5)
        expected = np.maximum(enc.proj.weight.detach().numpy() @ h + enc.proj.bias.detach().numpy(), 0)
        np.testing.assert_allclose(sent[i].numpy(), expected, rtol=1e-5, atol=1e-5)
    assert (sent >= 0).all()


@pytest.mark.parametrize("missing", ["dictionary.txt", "utable.npy", "uni_skip.npz"])
def test_skipthought_missing_file_error(tmp_path, missing):
    _fake_skipthought(tmp_path)
    (tmp_path / missing).unlink()
    with pytest.raises(FileNotFoundError, match=rf"{missing} is missing.*Kiros"):
        SkipThoughtEncoder(5, 6, 5, 3, skipthought_dir=tmp_path, words=["<pad>"] + ["w"] * 4)


def test_skipthought_bad_files(tmp_path):
    words = ["<pad>", "<unk>", "river", "boat", "zzz"]
    _, params = _fake_skipthought(tmp_path)
    with pytest.raises(ValueError, match="encoder_W has shape"):  # the file has hidden 5, not 7
        SkipThoughtEncoder(5, 6, 7, 3, skipthought_dir=tmp_path, words=words)
    del params["encoder_Ux"]
    np.savez(tmp_path / "uni_skip.npz", **params)
    with pytest.raises(KeyError, match="encoder_Ux"):
        SkipThoughtEncoder(5, 6, 5, 3, skipthought_dir=tmp_path, words=words)
    with pytest.raises(ValueError, match="pass words"):
        SkipThoughtEncoder(5, 6, 5, 3, skipthought_dir=tmp_path)
    with pytest.warns(UserWarning, match="randomly initialised"):
        SkipThoughtEncoder(5, 6, 5, 3)


def test_skipthought_gradient_flow():
    with pytest.warns(UserWarning):
        enc = SkipThoughtEncoder(10, word_dim=6, hidden=8, embed_dim=4).train()
    tokens, lengths = _batch()
    sent, states = enc(tokens, lengths)
    assert sent.shape == (3, 4) and states.shape == (3, 6, 8)
    (sent.sum() + states.sum()).backward()
    for p in enc.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


# ---------------------------------------------------------------- keywords
def test_keyword_encoder_mean_over_present_keywords():
    torch.manual_seed(0)
    emb = nn.Embedding(12, 5, padding_idx=0)
    enc = KeywordEncoder(emb, hidden=6, embed_dim=4)
    kw = torch.tensor([
        [[3, 4], [5, 0], [9, 9]],  # third keyword masked out
        [[7, 8], [0, 0], [0, 0]],
        [[0, 0], [0, 0], [0, 0]],  # no keywords at all
    ])
    mask = torch.tensor([[True, True, False], [True, False, False], [False, False, False]])
    out, states = enc(kw, mask)
    assert out.shape == (3, 4) and states.shape == (3, 3, 6)

    def final(ids):
        return enc.gru(emb(torch.tensor([ids])))[1][0, 0]

    with torch.no_grad():
        torch.testing.assert_close(out[0], enc.mlp((final([3, 4]) + final([5])) / 2))
        torch.testing.assert_close(out[1], enc.mlp(final([7, 8])))
        torch.testing.assert_close(out[2], enc.mlp(torch.zeros(6)))
    assert states[0, 2].abs().sum() == 0
    kw2 = kw.clone()
    kw2[0, 2] = torch.tensor([1, 2])  # content of a masked keyword is ignored
    torch.testing.assert_close(enc(kw2, mask)[0], out)
    with pytest.raises(ValueError, match="keyword_mask"):
        enc(kw, mask[:, :2])


def test_keyword_encoder_shared_embedding():
    torch.manual_seed(0)
    sent = BiGRUEncoder(vocab_size=12, word_dim=5, hidden=6)
    enc = KeywordEncoder(sent.embedding, hidden=6, embed_dim=6, owns_embedding=False)
    assert enc.embedding is sent.embedding
    assert not any("embedding" in k for k in enc.state_dict())
    kw = torch.tensor([[[3, 4]], [[5, 0]]])
    enc(kw, torch.tensor([[True], [True]]))[0].sum().backward()
    assert sent.embedding.weight.grad[[3, 4, 5]].abs().sum() > 0
    assert all(p.grad is not None for p in enc.gru.parameters())
