"""The paper's keyword input rules (Sec. III-D-2, Table IV), for models that read keywords.

AMFMN's text side takes a sentence, keywords, or both. The paper adds two rules that the released
code (sentence only) does not have:

* **Keywords filtered from the sentence.** When only a sentence is given, the keyword branch gets
  keywords filtered from it. rsnb's reading: the caption's words that occur in the training
  keywords (the keyword lexicon; when the training split has no keywords at all, every non-stop-word),
  in caption order, each once, one phrase per word. Config ``data.keywords_from_sentence`` (default
  true); an image that has its own keywords always keeps them.
* **Frequent keyword words removed from the sentence in joint training.** With sentence *and*
  keywords (``text_input: both``), the words that appear often in keywords are taken out of the
  sentence, so that the sentence branch carries what the keywords do not. The paper gives no
  threshold; rsnb removes every word found in at least ``data.keyword_word_share`` of the training
  keyword phrases (default 0.05, i.e. 5 %; 0 or null turns the rule off). Keywords are
  attribute-target phrases such as "dark sea", "red boat": on the synthetic training keywords 5 %
  removes 10 of 64 keyword words (the commonest colours and "trees", "cars", "road", "area"),
  where 1 % would remove 50 and leave little of a sentence.

When only keywords are given (keyword-only models m2, m4, m7), they are concatenated into one query
per image (:func:`rsnb.evaluate.evaluate_keywords`, paper Table III).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from rsnb.data.vocab import STOPWORDS, tokenize


def _words(phrase: str) -> list[str]:
    return [t for t in tokenize(phrase) if t != "-"]


@dataclass(frozen=True)
class KeywordRules:
    """Keyword inputs derived from sentences and sentence words removed, per the paper's rules.

    Attributes:
        lexicon: words that count as keywords when filtering them from a sentence (None: every
            non-stop-word).
        from_sentence: give captions of images without keywords keywords filtered from the caption.
        drop_words: words removed from every sentence (joint sentence + keyword models).
    """

    lexicon: frozenset[str] | None = None
    from_sentence: bool = False
    drop_words: frozenset[str] = frozenset()

    @classmethod
    def from_training(cls, keyword_phrases: Sequence[str], from_sentence: bool = True,
                      word_share: float | None = 0.05, joint: bool = False) -> KeywordRules:
        """Rules fitted on the training keywords.

        Args:
            keyword_phrases: every keyword phrase of the training images (duplicates count).
            from_sentence: :attr:`from_sentence`.
            word_share: a word found in at least this share of the phrases is a frequent keyword
                word; None or 0 keeps every sentence word.
            joint: the model reads sentences and keywords (only then are words dropped).
        """
        phrases = [set(_words(p)) for p in keyword_phrases]
        lexicon = frozenset().union(*phrases) - STOPWORDS if phrases else None
        drop: frozenset[str] = frozenset()
        if joint and word_share and phrases:
            counts = Counter(w for p in phrases for w in p)
            drop = frozenset(w for w, c in counts.items() if c >= word_share * len(phrases))
        return cls(lexicon=lexicon or None, from_sentence=from_sentence, drop_words=drop)

    @property
    def active(self) -> bool:
        """True when a rule changes anything."""
        return self.from_sentence or bool(self.drop_words)

    def sentence(self, caption: str) -> str:
        """The caption without :attr:`drop_words` (unchanged when there are none)."""
        if not self.drop_words:
            return caption
        return " ".join(t for t in tokenize(caption) if t not in self.drop_words)

    def keywords_of(self, captions: Sequence[str]) -> list[str]:
        """Keywords filtered from one or more captions: lexicon words in order, each once."""
        seen: dict[str, None] = {}
        for caption in captions:
            for t in tokenize(caption):
                if t not in STOPWORDS and (self.lexicon is None or t in self.lexicon):
                    seen.setdefault(t, None)
        return list(seen)
