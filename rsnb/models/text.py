"""Text encoders for AMFMN: the paper's bi-GRU, the released code's skip-thought GRU, and keywords.

All sentence encoders share one interface, :class:`TextEncoder`:
``forward(tokens (B, L), lengths (B,)) -> (sentence (B, D), token_states (B, L, D_tok))``, token ids
right-padded with 0, token states zero at padded positions.

* :class:`BiGRUEncoder` (paper Sec. III-B, default): 300-d embedding, bidirectional GRU(512),
  s_t = mean of the two directions, sentence = mean of s_t over the real tokens.
* :class:`SkipThoughtEncoder` (released code): 620-d embedding, uni-directional "Bayesian" GRU(2400) with
  variational dropout 0.25, hidden state at the last real token, then ReLU(Linear(2400 -> 512)). Weights
  load from the original Kiros et al. (2015) skip-thought files.
* :class:`KeywordEncoder` (paper eq. 13): a GRU over each keyword phrase, the mean of the final states
  over the present keywords, then an MLP -> k(g).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

SKIPTHOUGHT_FILES = ("dictionary.txt", "utable.npy", "uni_skip.npz")
SKIPTHOUGHT_SOURCE = (
    "they are the original skip-thought files of Kiros et al. 2015 (historically "
    "http://www.cs.toronto.edu/~rkiros/models/; the AMFMN README links a Baidu-pan copy, password NIST)"
)


def check_lengths(tokens: Tensor, lengths: Tensor) -> None:
    """Raise a clear error when ``lengths`` does not fit ``tokens`` (B, L)."""
    if lengths.shape != tokens.shape[:1]:
        raise ValueError(f"lengths has shape {tuple(lengths.shape)}, expected ({tokens.shape[0]},)")
    bad = ((lengths < 1) | (lengths > tokens.shape[1])).nonzero()
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"caption {i} in the batch has length {int(lengths[i])}, "
                         f"outside [1, {tokens.shape[1]}]")


class TextEncoder(nn.Module):
    """Interface of the sentence encoders.

    Attributes:
        embedding: the word embedding (row 0 = padding), shared with :class:`KeywordEncoder`.
        out_dim: D, size of the sentence vector.
        token_dim: D_tok, size of the per-token states.
    """

    embedding: nn.Embedding
    out_dim: int
    token_dim: int

    def forward(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Encode captions: tokens (B, L), lengths (B,) -> sentence (B, D), token states (B, L, D_tok)."""
        raise NotImplementedError


class BiGRUEncoder(TextEncoder):
    """Paper text encoder: bidirectional GRU with averaged directions and mean pooling.

    Args:
        vocab_size: embedding rows including padding row 0.
        word_dim: word embedding size (300 in the paper).
        hidden: GRU hidden size per direction (512 in the paper).
        embed_dim: output size; a Linear projection is added only if it differs from ``hidden``.
    """

    def __init__(self, vocab_size: int, word_dim: int = 300, hidden: int = 512, embed_dim: int = 512) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.gru = nn.GRU(word_dim, hidden, batch_first=True, bidirectional=True)
        self.proj = nn.Identity() if hidden == embed_dim else nn.Linear(hidden, embed_dim)
        self.hidden, self.out_dim, self.token_dim = hidden, embed_dim, hidden

    def forward(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """See :class:`TextEncoder`; padded steps never enter the GRU (packed sequences)."""
        check_lengths(tokens, lengths)
        B, L = tokens.shape
        emb = self.embedding(tokens)  # (B, L, E)
        packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=L)  # (B, L, 2H), 0 at pads
        states = 0.5 * (out[..., : self.hidden] + out[..., self.hidden:])  # (B, L, H) s_t
        sent = states.sum(dim=1) / lengths.to(states)[:, None]  # (B, H) mean over real steps
        return self.proj(sent), states


class BayesianGRU(nn.Module):
    """Uni-directional GRU in the skip-thought layout with variational ("Bayesian") dropout.

    Gates: three input Linears (r, z, n) with bias, three hidden Linears without bias;
    r = sigmoid(W_r x + U_r h), z = sigmoid(W_z x + U_z h), n = tanh(W_n x + r * (U_n h)),
    h' = (1 - z) * n + z * h. In train mode each of the six projections gets its own dropout mask,
    drawn once per sequence (B, dim) and reused at every step.

    Args:
        input_size: word embedding size (620).
        hidden: hidden size (2400).
        dropout: drop probability p of the variational masks (0.25 in the released config).
    """

    def __init__(self, input_size: int = 620, hidden: int = 2400, dropout: float = 0.25) -> None:
        super().__init__()
        self.input_size, self.hidden, self.dropout = input_size, hidden, dropout
        self.in_r = nn.Linear(input_size, hidden)
        self.in_z = nn.Linear(input_size, hidden)
        self.in_n = nn.Linear(input_size, hidden)
        self.hid_r = nn.Linear(hidden, hidden, bias=False)
        self.hid_z = nn.Linear(hidden, hidden, bias=False)
        self.hid_n = nn.Linear(hidden, hidden, bias=False)

    def _masks(self, batch: int, dim: int, like: Tensor) -> list[Tensor] | None:
        if not (self.training and self.dropout > 0):
            return None
        keep = 1.0 - self.dropout
        return [torch.bernoulli(like.new_full((batch, dim), keep)) / keep for _ in range(3)]

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Run the GRU.

        Args:
            x: (B, L, E) embedded tokens.
            lengths: (B,) real lengths; the state is frozen after the last real token.

        Returns:
            (B, L, H) hidden states, zero at padded positions.
        """
        B, L, _ = x.shape
        mx, mh = self._masks(B, self.input_size, x), self._masks(B, self.hidden, x)
        if mx is None:
            xr, xz, xn = self.in_r(x), self.in_z(x), self.in_n(x)  # (B, L, H) each
        else:
            xr, xz, xn = (lin(x * m[:, None]) for lin, m in zip((self.in_r, self.in_z, self.in_n), mx))
        w_hid = torch.cat([self.hid_r.weight, self.hid_z.weight, self.hid_n.weight])  # (3H, H)
        h = x.new_zeros(B, self.hidden)  # (B, H)
        steps = int(lengths.max())
        outs = []
        for t in range(steps):
            if mh is None:
                hr, hz, hn = F.linear(h, w_hid).chunk(3, dim=-1)  # (B, H) each
            else:
                hr, hz, hn = self.hid_r(h * mh[0]), self.hid_z(h * mh[1]), self.hid_n(h * mh[2])
            r = torch.sigmoid(xr[:, t] + hr)
            z = torch.sigmoid(xz[:, t] + hz)
            n = torch.tanh(xn[:, t] + r * hn)
            h_new = (1 - z) * n + z * h  # (B, H)
            valid = (lengths > t)[:, None]  # (B, 1)
            h = torch.where(valid, h_new, h)
            outs.append(h_new * valid)
        states = torch.stack(outs, dim=1)  # (B, steps, H)
        return F.pad(states, (0, 0, 0, L - steps))  # (B, L, H)


class SkipThoughtEncoder(TextEncoder):
    """Released-code text encoder: skip-thought uni-GRU, last real state, ReLU(Linear) projection.

    Args:
        vocab_size: embedding rows including padding row 0.
        word_dim: 620 for the original files.
        hidden: 2400 for the original files.
        embed_dim: output size (512).
        dropout: variational dropout of the GRU (0.25).
        skipthought_dir: folder with ``dictionary.txt``, ``utable.npy``, ``uni_skip.npz``; None keeps
            the random initialisation (warns).
        words: ``words[i]`` is the token of embedding row i (row 0 = padding), needed to initialise the
            embedding from ``utable.npy``.
    """

    def __init__(self, vocab_size: int, word_dim: int = 620, hidden: int = 2400, embed_dim: int = 512,
                 dropout: float = 0.25, skipthought_dir: str | Path | None = None,
                 words: Sequence[str] | None = None) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.gru = BayesianGRU(word_dim, hidden, dropout)
        self.proj = nn.Linear(hidden, embed_dim)
        self.out_dim, self.token_dim = embed_dim, hidden
        if skipthought_dir is None:
            warnings.warn("SkipThoughtEncoder built without skipthought_dir: the GRU and embedding are "
                          "randomly initialised (fine when a checkpoint is loaded next)", stacklevel=2)
        else:
            if words is None:
                raise ValueError("skip-thought initialisation needs the vocabulary: pass words "
                                 "(words[i] = token of row i) together with skipthought_dir")
            self.load_skipthought(skipthought_dir, words)

    def forward(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """See :class:`TextEncoder`; token states are the 2400-d GRU states."""
        check_lengths(tokens, lengths)
        emb = self.embedding(tokens)  # (B, L, E)
        states = self.gru(emb, lengths)  # (B, L, H)
        last = states[torch.arange(tokens.shape[0], device=tokens.device), lengths - 1]  # (B, H)
        return F.relu(self.proj(last)), states

    @torch.no_grad()
    def load_skipthought(self, folder: str | Path, words: Sequence[str]) -> int:
        """Copy the original skip-thought weights into the embedding and GRU.

        Args:
            folder: folder holding ``dictionary.txt``, ``utable.npy`` and ``uni_skip.npz``.
            words: ``words[i]`` = token of embedding row i; words missing from the dictionary get its
                ``UNK`` row, row 0 stays zero.

        Returns:
            The number of vocabulary words (rows >= 1) that were not in the dictionary.
        """
        folder = Path(folder)
        for name in SKIPTHOUGHT_FILES:
            if not (folder / name).is_file():
                raise FileNotFoundError(f"skip-thought file {folder / name} is missing: put "
                                        f"{', '.join(SKIPTHOUGHT_FILES)} in {folder}; {SKIPTHOUGHT_SOURCE}")
        V, E = self.embedding.weight.shape
        if len(words) != V:
            raise ValueError(f"words has {len(words)} entries but the embedding has {V} rows")
        lines = (folder / "dictionary.txt").read_text(encoding="utf-8", errors="replace").splitlines()
        index = {w.strip(): i for i, w in enumerate(lines)}
        table = _load_utable(folder / "utable.npy", E)
        if len(table) != len(lines):
            raise ValueError(f"{folder / 'utable.npy'} has {len(table)} rows but "
                             f"{folder / 'dictionary.txt'} has {len(lines)} lines")
        unk = table[index["UNK"]] if "UNK" in index else np.zeros(E, np.float32)
        weight = np.zeros((V, E), np.float32)
        missing = 0
        for row in range(1, V):
            j = index.get(words[row])
            missing += j is None
            weight[row] = unk if j is None else table[j]
        self.embedding.weight.copy_(torch.from_numpy(weight))
        self._load_gru(folder / "uni_skip.npz")
        return missing

    def _load_gru(self, path: Path) -> None:
        H, E = self.gru.hidden, self.gru.input_size
        expected = {"encoder_W": (E, 2 * H), "encoder_U": (H, 2 * H), "encoder_b": (2 * H,),
                    "encoder_Wx": (E, H), "encoder_Ux": (H, H), "encoder_bx": (H,)}
        with np.load(path, allow_pickle=False) as npz:
            p = {}
            for key, shape in expected.items():
                if key not in npz.files:
                    raise KeyError(f"{path} has no array {key!r} (found: {', '.join(sorted(npz.files))})")
                arr = np.asarray(npz[key], np.float32)
                if arr.shape != shape:
                    raise ValueError(f"{path}: {key} has shape {arr.shape}, expected {shape}")
                p[key] = torch.from_numpy(arr)
        g = self.gru
        # Theano layout: x @ W with W (E, 2H) = [reset | update]; nn.Linear stores (out, in).
        g.in_r.weight.copy_(p["encoder_W"][:, :H].T)
        g.in_z.weight.copy_(p["encoder_W"][:, H:].T)
        g.in_n.weight.copy_(p["encoder_Wx"].T)
        g.in_r.bias.copy_(p["encoder_b"][:H])
        g.in_z.bias.copy_(p["encoder_b"][H:])
        g.in_n.bias.copy_(p["encoder_bx"])
        g.hid_r.weight.copy_(p["encoder_U"][:, :H].T)
        g.hid_z.weight.copy_(p["encoder_U"][:, H:].T)
        g.hid_n.weight.copy_(p["encoder_Ux"].T)


def _load_utable(path: Path, dim: int) -> np.ndarray:
    """Load ``utable.npy`` as a (V, dim) float32 array (plain or pickled object array)."""
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError:  # the original table is a pickled object array written by Python 2
        arr = np.load(path, allow_pickle=True, encoding="latin1")
    if arr.dtype == object:
        arr = np.stack([np.asarray(r, np.float32).reshape(-1) for r in arr])
    arr = np.asarray(arr, np.float32).reshape(len(arr), -1)
    if arr.shape[1] != dim:
        raise ValueError(f"{path}: rows have {arr.shape[1]} values, expected word_dim={dim}")
    return arr


class KeywordEncoder(nn.Module):
    """Keyword branch k(g) (paper eq. 13): GRU per phrase, mean over present keywords, MLP.

    Args:
        embedding: the word embedding, normally the sentence encoder's (shared weights).
        hidden: GRU hidden size.
        embed_dim: D, output size.
        owns_embedding: register ``embedding`` as a submodule. Pass False when it already belongs to the
            sentence encoder, so the weights appear once in ``state_dict`` (safetensors refuses
            shared tensors) while still being used and trained here.
    """

    def __init__(self, embedding: nn.Embedding, hidden: int = 512, embed_dim: int = 512,
                 owns_embedding: bool = True) -> None:
        super().__init__()
        self.own_embedding = embedding if owns_embedding else None
        self._borrowed = None if owns_embedding else (embedding,)  # a tuple is not registered
        self.gru = nn.GRU(embedding.embedding_dim, hidden, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(hidden, embed_dim), nn.ReLU(), nn.Linear(embed_dim, embed_dim))
        self.hidden, self.out_dim = hidden, embed_dim

    @property
    def embedding(self) -> nn.Embedding:
        """The word embedding in use (owned or borrowed)."""
        return self.own_embedding if self._borrowed is None else self._borrowed[0]

    def forward(self, keywords: Tensor, keyword_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Encode keyword phrases.

        Args:
            keywords: (B, K, Lk) token ids, 0-padded on the right.
            keyword_mask: (B, K) bool, True where a keyword exists. Rows whose ids are all 0 count as
                absent even if marked present; a sample without keywords gets MLP(0).

        Returns:
            k(g) (B, D) and the per-keyword final GRU states (B, K, hidden), zero for absent ones.
        """
        B, K, Lk = keywords.shape
        if keyword_mask.shape != (B, K):
            raise ValueError(f"keyword_mask has shape {tuple(keyword_mask.shape)}, expected {(B, K)}")
        flat = keywords.reshape(B * K, Lk)  # (B*K, Lk)
        pos = torch.arange(1, Lk + 1, device=flat.device)
        lengths = ((flat != 0) * pos).amax(dim=1)  # (B*K,) index of the last real token + 1
        present = keyword_mask.reshape(-1).bool() & (lengths > 0)  # (B*K,)
        states = self.embedding.weight.new_zeros(B * K, self.hidden)  # (B*K, H)
        if present.any():
            emb = self.embedding(flat[present])  # (N, Lk, E)
            packed = pack_padded_sequence(emb, lengths[present].cpu(), batch_first=True, enforce_sorted=False)
            _, h_n = self.gru(packed)  # (1, N, H)
            states = states.index_put((present.nonzero()[:, 0],), h_n[0])
        states = states.reshape(B, K, self.hidden)  # (B, K, H)
        count = present.reshape(B, K).sum(dim=1, keepdim=True).clamp_min(1)  # (B, 1)
        pooled = states.sum(dim=1) / count  # (B, H)
        return self.mlp(pooled), states
