"""The paper's prior similarity S (Sec. III-E): BLEU and METEOR, behind ``model.prior=bleu_meteor``.

The released code uses another recipe (BLEU-4 + stemmed content-word overlap, :mod:`rsnb.prior`,
the default). Here S = (score1 + METEOR) / 2 with the released recipe's BLEU-4 term as score1 and
NLTK's METEOR (exact, Porter-stem and WordNet-synonym matches); the paper gives no weights.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from nltk.translate.meteor_score import meteor_score

from rsnb.errors import ConfigError
from rsnb.prior import PriorSimilarity, word_tokenize


def load_wordnet():
    """NLTK's WordNet reader, ready for METEOR's synonym matching.

    Raises:
        ConfigError: the WordNet data is not installed (one line saying how to get it).
    """
    try:
        from nltk.corpus import wordnet  # deferred: the corpus reader needs NLTK data that may be absent

        wordnet.synsets("tree")  # forces the lazy corpus to load
    except LookupError:
        raise ConfigError("model.prior=bleu_meteor: METEOR needs NLTK's WordNet data, which is not installed "
                          "(nltk_data corpora/wordnet); run `python -m nltk.downloader wordnet omw-1.4` on a "
                          "machine with internet, or use model.prior=released") from None
    return wordnet


class MeteorPrior:
    """The paper's prior similarity: S = (score1 + METEOR) / 2, per (image, caption) pair.

    ``score1`` is the released recipe's BLEU-4 term (1 for an exact match, see
    :class:`PriorSimilarity`); METEOR is NLTK's ``meteor_score`` of the caption against the image's
    references (lower-cased NLTK tokens; exact, Porter-stem and WordNet-synonym matches). Equal
    weights are rsnb's choice: the paper says S is weighted from BLEU and METEOR but gives no
    weights. METEOR has no sparse closed form, so each pair costs one NLTK call per reference: a
    100 x 100 batch of RSITMD captions took 65 s on one CPU core (2,900x :class:`PriorSimilarity`,
    measured with a stub WordNet), which makes this a choice for small datasets and analysis rather
    than RSITMD-size training. Values are kept in an LRU cache.

    Args:
        captions_per_image: as :class:`PriorSimilarity`.
        wordnet: a WordNet reader (default :func:`load_wordnet`; tests pass a stub).
        cache_size: METEOR values kept (LRU).
    """

    def __init__(self, captions_per_image, wordnet=None, cache_size: int = 1_000_000):
        self.bleu = PriorSimilarity(captions_per_image)
        self.wordnet = load_wordnet() if wordnet is None else wordnet
        per_image = [list(r.captions) for r in captions_per_image.images] \
            if hasattr(captions_per_image, "images") else [list(c) for c in captions_per_image]
        self.refs = [[tuple(word_tokenize(c.lower())) for c in caps] for caps in per_image]
        self.hyps = [ref for refs in self.refs for ref in refs]
        self.n_images, self.n_captions = self.bleu.n_images, self.bleu.n_captions
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[tuple[int, int], float] = OrderedDict()

    def meteor(self, image_idx: int, caption_idx: int) -> float:
        """NLTK METEOR of caption ``caption_idx`` against the references of image ``image_idx``."""
        key = (int(image_idx), int(caption_idx))
        value = self._cache.get(key)
        if value is None:
            refs = [r for r in self.refs[key[0]] if r]
            hyp = self.hyps[key[1]]
            value = float(meteor_score(refs, hyp, wordnet=self.wordnet)) if refs and hyp else 0.0
            self._cache[key] = value
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return value

    def block(self, image_ids, caption_ids) -> np.ndarray:
        """S for every image in ``image_ids`` against every caption in ``caption_ids``: (I, J) float64."""
        imgs = self.bleu._check(image_ids, self.n_images, "image")
        caps = self.bleu._check(caption_ids, self.n_captions, "caption")
        met = np.array([[self.meteor(i, j) for j in caps] for i in imgs], dtype=np.float64).reshape(len(imgs), len(caps))
        return (self.bleu.parts(imgs, caps)["score1"] + met) / 2

    def pair(self, image_idx: int, caption_idx: int) -> float:
        """S for one pair."""
        return float(self.block([image_idx], [caption_idx])[0, 0])

    def batch_matrix(self, image_ids, caption_ids, device=None) -> torch.Tensor:
        """Prior matrix of a training batch, (B, B') float32, as :meth:`PriorSimilarity.batch_matrix`."""
        imgs = self.bleu._check(image_ids, self.n_images, "image")
        caps = self.bleu._check(caption_ids, self.n_captions, "caption")
        ui, inv_i = np.unique(imgs, return_inverse=True)
        uc, inv_c = np.unique(caps, return_inverse=True)
        out = self.block(ui, uc)[inv_i[:, None], inv_c[None, :]]
        return torch.as_tensor(out, dtype=torch.float32, device=device)
