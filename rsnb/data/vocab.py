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
split only: the released AMFMN vocab files were built on train and test captions together, so a
few test-only words have ids (2 in RSITMD, 25 in RSICD).

Stop-words (:data:`STOPWORD_MODES`): ``"keep"`` treats them as words; ``"unk"`` is the released
code's behaviour: its vocab builder leaves NLTK's English stop-words (:data:`NLTK_ENGLISH_STOPWORDS`)
out, but its caption encoder does not remove them, so "the", "a", "is" ... reach the GRU as
``<unk>``; ``"delete"`` removes :data:`STOPWORDS` from the vocabulary and from every encoded caption.
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

# NLTK's English stop-word list (nltk_data ``corpora/stopwords/english``, 179 words, the version
# current when AMFMN was released). Written out because NLTK data cannot be downloaded offline.
NLTK_ENGLISH_STOPWORDS: frozenset[str] = frozenset("""
i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves
he him his himself she she's her hers herself it it's its itself they them their theirs themselves
what which who whom this that that'll these those am is are was were be been being have has had
having do does did doing a an the and but if or because as until while of at by for with about
against between into through during before after above below to from up down in out on off over
under again further then once here there when where why how all any both each few more most other
some such no nor not only own same so than too very s t can will just don don't should should've
now d ll m o re ve y ain aren aren't couldn couldn't didn didn't doesn doesn't hadn hadn't hasn
hasn't haven haven't isn isn't ma mightn mightn't mustn mustn't needn needn't shan shan't shouldn
shouldn't wasn wasn't weren weren't won won't wouldn wouldn't
""".split())

#: What a :class:`Vocab` does with stop-words (see the module docstring).
STOPWORD_MODES = ("keep", "unk", "delete")

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


def _stopword_mode(stopwords: str | None, remove_stopwords: bool | None) -> str:
    """Resolve the ``stopwords`` mode, accepting the older boolean ``remove_stopwords``."""
    if stopwords is None:
        stopwords = "delete" if remove_stopwords else "keep"
    elif remove_stopwords is not None and remove_stopwords != (stopwords == "delete"):
        raise ValueError(f"Vocab: remove_stopwords={remove_stopwords} contradicts stopwords={stopwords!r}")
    if stopwords not in STOPWORD_MODES:
        raise ValueError(f"stopwords must be one of {STOPWORD_MODES}, got {stopwords!r}")
    return stopwords


class Vocab:
    """Word <-> id mapping; id 0 is padding.

    Vocabularies built here have ``<pad>`` = 0 and ``<unk>`` = 1, then the words. A vocabulary
    imported from the official AMFMN json (:meth:`from_amfmn_json`) keeps the official ids
    (words 1..N-1, ``<unk>`` = N), so embedding row k is word k in both code bases; there
    :attr:`unk_id` is N.

    Args:
        words: the id-ordered word list (index = id), starting with ``<pad>``.
        unk_id: id of the ``<unk>`` entry.
        remove_stopwords: older spelling of ``stopwords="delete"``.
        stopwords: ``"keep"``, ``"unk"`` or ``"delete"`` (:data:`STOPWORD_MODES`); only
            ``"delete"`` changes :meth:`encode` (it drops :data:`STOPWORDS`), the other two look
            every token up, so a stop-word missing from the vocabulary becomes ``<unk>``.
    """

    def __init__(self, words: list[str], unk_id: int = 1, remove_stopwords: bool | None = None,
                 stopwords: str | None = None):
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
        self.stopwords = _stopword_mode(stopwords, remove_stopwords)

    @property
    def remove_stopwords(self) -> bool:
        """True when :meth:`encode` deletes stop-words (``stopwords == "delete"``)."""
        return self.stopwords == "delete"

    # ---------------------------------------------------------------- building
    @classmethod
    def build(
        cls,
        captions: Iterable[str],
        min_count: int = 5,
        remove_stopwords: bool | None = None,
        order: str = "frequency",
        stopwords: str | None = None,
    ) -> Vocab:
        """Build a vocabulary from captions (pass the train split only).

        Args:
            captions: caption strings.
            min_count: keep words seen at least this often (the paper's builder uses 5).
            remove_stopwords: older spelling of ``stopwords="delete"``.
            order: ``"frequency"`` (most frequent first, ties alphabetical) or
                ``"first_seen"`` (the official builder's order).
            stopwords: ``"keep"`` (default), ``"unk"`` (leave :data:`NLTK_ENGLISH_STOPWORDS` out of
                the vocabulary, as the released builder does; they encode as ``<unk>``) or
                ``"delete"`` (leave :data:`STOPWORDS` out of the vocabulary and of :meth:`encode`).

        Returns:
            A :class:`Vocab` with ``<pad>`` = 0, ``<unk>`` = 1, words from id 2.
        """
        if order not in ("frequency", "first_seen"):
            raise ValueError(f"order must be 'frequency' or 'first_seen', got {order!r}")
        mode = _stopword_mode(stopwords, remove_stopwords)
        counts: Counter[str] = Counter()
        for caption in captions:
            counts.update(tokenize(caption))
        kept = [w for w, c in counts.items() if c >= min_count and w not in (PAD, UNK)]
        left_out = {"keep": frozenset(), "unk": NLTK_ENGLISH_STOPWORDS, "delete": STOPWORDS}[mode]
        kept = [w for w in kept if w not in left_out]
        if order == "frequency":
            kept.sort(key=lambda w: (-counts[w], w))
        return cls([PAD, UNK, *kept], unk_id=1, stopwords=mode)

    @classmethod
    def from_amfmn_json(cls, path: str | Path, remove_stopwords: bool | None = None,
                        stopwords: str | None = None) -> Vocab:
        """Import an official AMFMN vocab file (``{word2idx, idx2word, idx}``).

        The official ids are kept: word k has id k (1..N-1), ``<unk>`` is id N (the last one)
        and id 0 is padding, so row k of an official embedding matrix is word k here too.

        Args:
            path: e.g. ``vocab/rsitmd_splits_vocab.json``.
            remove_stopwords: older spelling of ``stopwords="delete"``.
            stopwords: ``"unk"`` (default, the released behaviour: the file has no stop-words, so
                they encode as ``<unk>`` and the GRU still sees them), ``"delete"`` (drop
                :data:`STOPWORDS` while encoding) or ``"keep"`` (same ids as ``"unk"``).
        """
        if stopwords is None and remove_stopwords is None:
            stopwords = "unk"
        mode = _stopword_mode(stopwords, remove_stopwords)
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
        return cls(words, unk_id=n, stopwords=mode)

    def to_amfmn_json(self, path: str | Path) -> None:
        """Write the vocabulary in the released AMFMN format (``word2idx``, ``idx2word``, ``idx``).

        Words keep their order; ``<unk>`` moves to the last id, as in the released files. A vocab
        read by :meth:`from_amfmn_json` is written back with the same ids.
        """
        words = [w for w in self.itos[1:] if w != UNK] + [UNK]
        w2i = {w: i for i, w in enumerate(words, start=1)}
        payload = {"word2idx": w2i, "idx2word": {str(i): w for w, i in w2i.items()}, "idx": len(w2i) + 1}
        Path(path).write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def from_file(cls, path: str | Path, stopwords: str | None = None) -> Vocab:
        """Read a vocabulary file of either format: released AMFMN json or rsnb ``vocab.json``.

        Args:
            path: the json file.
            stopwords: the stop-word mode (None: ``"unk"`` for an AMFMN file, the stored one for rsnb).

        Raises:
            FileNotFoundError: no such file. DataFormatError: neither format.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: vocabulary file not found (data.vocab)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataFormatError(f"{path}:{e.lineno}:{e.colno}: malformed JSON ({e.msg})") from None
        if isinstance(data, dict) and "word2idx" in data:
            return cls.from_amfmn_json(path, stopwords=stopwords)
        if isinstance(data, dict) and "words" in data:
            v = cls.load(path)
            if stopwords is not None:
                v.stopwords = _stopword_mode(stopwords, None)
            return v
        raise DataFormatError(f"{path}: not a vocabulary (neither an AMFMN 'word2idx' file nor an rsnb 'words' file)")

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
        return [t for t in tokens if t not in STOPWORDS] if self.stopwords == "delete" else tokens

    def decode(self, ids: Iterable[int], skip_pad: bool = True) -> str:
        """Map ids back to a space-joined string (padding skipped)."""
        return " ".join(self.itos[int(i)] for i in ids if not (skip_pad and int(i) == self.pad_id))

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> None:
        """Write the vocabulary as JSON (``words`` in id order, ``unk_id``, ``stopwords``)."""
        payload = {"words": self.itos, "unk_id": self.unk_id, "stopwords": self.stopwords,
                   "remove_stopwords": self.remove_stopwords}
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
        try:
            if "stopwords" in data:
                return cls(data["words"], unk_id=data["unk_id"], stopwords=data["stopwords"])
            return cls(data["words"], unk_id=data["unk_id"], remove_stopwords=bool(data.get("remove_stopwords", False)))
        except ValueError as e:  # duplicate words, no <pad>/<unk>: one line naming the file
            raise DataFormatError(f"{path}: {e}") from None

    def __repr__(self) -> str:
        return f"Vocab({len(self)} entries, unk_id={self.unk_id}, stopwords={self.stopwords!r})"
