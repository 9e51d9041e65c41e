"""Tokenisation and the word vocabulary.

The official AMFMN pipeline lower-cases a caption, runs NLTK ``word_tokenize`` and drops the
punctuation tokens ``, . : ; ? ( ) [ ] & ! * @ # $ %``. ``word_tokenize`` needs NLTK's ``punkt``
data, which cannot be downloaded offline, so :func:`tokenize` is a data-free regular-expression
equivalent of it for caption text:

* hyphenated words stay one token (``s-shaped``, ``t-junction``, ``bird's-eye``), as in NLTK;
* decimal numbers stay one token (``2.5``);
* clitics split off like NLTK's Treebank rules: ``it's`` -> ``it 's``, ``don't`` -> ``do n't``,
  ``cannot`` -> ``can not``;
* every other punctuation character is its own token (a full stop at the end of *any*
  sentence is split off, which is what ``punkt`` sentence splitting achieves in NLTK);
* the punctuation tokens above are dropped.

``tests/test_vocab.py`` checks the agreement with NLTK's Treebank word tokenizer on all real
captions in ``../shared/data``.

:class:`Vocab` maps words to ids with ``<pad>`` = 0 and ``<unk>`` = 1. Build it on the train
split only (the official vocab files leak test words, see the AMFMN reference §4.2).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from rsnb.data.corpus import DataFormatError

PAD, UNK = "<pad>", "<unk>"

#: Tokens the official pipeline removes after tokenisation.
PUNCTUATION = frozenset([",", ".", ":", ";", "?", "(", ")", "[", "]", "&", "!", "*", "@", "#", "$", "%"])

#: A built-in list of English function words (articles, pronouns, auxiliaries, prepositions,
#: conjunctions and a few adverbs). It plays the role of NLTK's stop-word corpus, which is
#: not available offline; it is not a copy of it.
STOPWORDS = frozenset(
    """
    a an the this that these those there here
    i me my myself we us our ours ourselves you your yours yourself yourselves
    he him his himself she her hers herself it its itself they them their theirs themselves
    what which who whom whose when where why how
    am is are was were be been being have has had having do does did doing done
    will would shall should can could may might must ought
    and but or nor if then else so than too very just only also
    because as until while of at by for with about against between into through during before
    after above below to from up down in out on off over under again further once
    all any both each few more most other some such no not own same
    s t d ll m o re ve y don now
    """.split()
)

_CLITIC = re.compile(r"(?<=[a-z0-9])(n't|'s|'re|'ve|'ll|'d|'m)(?![\w'-])")
_CANNOT = re.compile(r"\bcannot\b")
_TOKEN = re.compile(r"n't|'(?:s|re|ve|ll|d|m)\b|\d+(?:[.,]\d+)+|\w+(?:-\w+|'\w+)*-?|\S")


def tokenize(text: str, drop_punctuation: bool = True) -> list[str]:
    """Split a caption into lower-case word tokens (NLTK-equivalent, no data download).

    Args:
        text: raw caption, e.g. ``"There is a T-junction."``.
        drop_punctuation: remove the official punctuation tokens (:data:`PUNCTUATION`).

    Returns:
        Tokens, e.g. ``["there", "is", "a", "t-junction"]``.
    """
    text = _CLITIC.sub(r" \1", _CANNOT.sub("can not", text.lower()))
    tokens = _TOKEN.findall(text)
    if drop_punctuation:
        tokens = [t for t in tokens if t not in PUNCTUATION]
    return tokens


class Vocab:
    """Word <-> id mapping; id 0 is padding.

    Vocabularies built here have ``<pad>`` = 0 and ``<unk>`` = 1, then the words. A vocabulary
    imported from the official AMFMN json (:meth:`from_amfmn_json`) keeps the official ids
    (words 1..N-1, ``<unk>`` = N), so embedding row k is word k in both code bases; there
    :attr:`unk_id` is N.

    Args:
        words: the id-ordered word list (index = id), starting with ``<pad>``.
        unk_id: id of the ``<unk>`` entry.
        remove_stopwords: drop :data:`STOPWORDS` in :meth:`encode` (the vocab then has none).
    """

    def __init__(self, words: list[str], unk_id: int = 1, remove_stopwords: bool = False):
        if not words or words[0] != PAD:
            raise ValueError("Vocab words must start with '<pad>' (id 0)")
        if not 0 < unk_id < len(words) or words[unk_id] != UNK:
            raise ValueError(f"Vocab: id {unk_id} is not '<unk>'")
        self.itos = list(words)
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            dup = [w for w, c in Counter(self.itos).items() if c > 1][0]
            raise ValueError(f"Vocab: word {dup!r} appears twice")
        self.unk_id = unk_id
        self.pad_id = 0
        self.remove_stopwords = remove_stopwords

    # ---------------------------------------------------------------- building
    @classmethod
    def build(
        cls,
        captions: Iterable[str],
        min_count: int = 5,
        remove_stopwords: bool = False,
        order: str = "frequency",
    ) -> Vocab:
        """Build a vocabulary from captions (pass the train split only).

        Args:
            captions: caption strings.
            min_count: keep words seen at least this often (the paper's builder uses 5).
            remove_stopwords: leave :data:`STOPWORDS` out of the vocabulary and out of
                :meth:`encode` (the official builder removes NLTK stop-words).
            order: ``"frequency"`` (most frequent first, ties alphabetical) or
                ``"first_seen"`` (the official builder's order).

        Returns:
            A :class:`Vocab` with ``<pad>`` = 0, ``<unk>`` = 1, words from id 2.
        """
        if order not in ("frequency", "first_seen"):
            raise ValueError(f"order must be 'frequency' or 'first_seen', got {order!r}")
        counts: Counter[str] = Counter()
        for caption in captions:
            counts.update(tokenize(caption))
        kept = [w for w, c in counts.items() if c >= min_count and w not in (PAD, UNK)]
        if remove_stopwords:
            kept = [w for w in kept if w not in STOPWORDS]
        if order == "frequency":
            kept.sort(key=lambda w: (-counts[w], w))
        return cls([PAD, UNK, *kept], unk_id=1, remove_stopwords=remove_stopwords)

    @classmethod
    def from_amfmn_json(cls, path: str | Path, remove_stopwords: bool = True) -> Vocab:
        """Import an official AMFMN vocab file (``{word2idx, idx2word, idx}``).

        The official ids are kept: word k has id k (1..N-1), ``<unk>`` is id N (the last one)
        and id 0 is padding, so row k of an official embedding matrix is word k here too.

        Args:
            path: e.g. ``vocab/rsitmd_splits_vocab.json``.
            remove_stopwords: the official vocab has no stop-words, and the official encoder
                maps them to ``<unk>``; True drops them instead (False reproduces the quirk).
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataFormatError(f"{path}:{e.lineno}:{e.colno}: malformed JSON ({e.msg})") from None
        if not isinstance(data, dict) or "word2idx" not in data:
            raise DataFormatError(f"{path}: not an AMFMN vocab (no 'word2idx' key)")
        word2idx = data["word2idx"]
        n = len(word2idx)
        words = [PAD] + [""] * n
        for word, idx in word2idx.items():
            if not isinstance(idx, int) or not 1 <= idx <= n or words[idx]:
                raise DataFormatError(f"{path}: word2idx[{word!r}] = {idx!r} is not a unique id in 1..{n}")
            words[idx] = word
        if words[n] != UNK:
            raise DataFormatError(f"{path}: the last id {n} is {words[n]!r}, expected '<unk>'")
        return cls(words, unk_id=n, remove_stopwords=remove_stopwords)

    # ---------------------------------------------------------------- encoding
    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, word: str) -> bool:
        return word in self.stoi

    def encode(self, text: str) -> list[int]:
        """Tokenise ``text`` and map words to ids (unknown words -> :attr:`unk_id`)."""
        return [self.stoi.get(t, self.unk_id) for t in self._tokens(text)]

    def encode_keyword(self, phrase: str) -> list[int]:
        """Encode an RSITMD keyword phrase; ``-`` (no attribute, as in ``"- port"``) is dropped."""
        return [self.stoi.get(t, self.unk_id) for t in self._tokens(phrase) if t != "-"]

    def _tokens(self, text: str) -> list[str]:
        tokens = tokenize(text)
        return [t for t in tokens if t not in STOPWORDS] if self.remove_stopwords else tokens

    def decode(self, ids: Iterable[int], skip_pad: bool = True) -> str:
        """Map ids back to a space-joined string (padding skipped)."""
        return " ".join(self.itos[int(i)] for i in ids if not (skip_pad and int(i) == self.pad_id))

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> None:
        """Write the vocabulary as JSON (``words`` in id order, ``unk_id``, ``remove_stopwords``)."""
        payload = {"words": self.itos, "unk_id": self.unk_id, "remove_stopwords": self.remove_stopwords}
        Path(path).write_text(json.dumps(payload, ensure_ascii=False, indent=0), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        """Read a vocabulary written by :meth:`save`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataFormatError(f"{path}:{e.lineno}:{e.colno}: malformed JSON ({e.msg})") from None
        missing = [k for k in ("words", "unk_id") if k not in data]
        if missing:
            raise DataFormatError(f"{path}: missing key {missing[0]!r} in vocab file")
        return cls(data["words"], unk_id=data["unk_id"], remove_stopwords=data.get("remove_stopwords", False))

    def __repr__(self) -> str:
        return f"Vocab({len(self)} entries, unk_id={self.unk_id}, remove_stopwords={self.remove_stopwords})"
