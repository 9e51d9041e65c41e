"""Helpers shared by the tests that check rsnb against the released AMFMN pipeline."""

import numpy as np
import torch

from rsnb.data.dataset import denormalize
from rsnb.data.vocab import Vocab

#: Ids in the released xiaoyuan1996/AMFMN ``vocab/rsitmd_splits_vocab.json`` (1,348 words + <unk>).
RELEASED_RSITMD_IDS = {"baseball": 1, "field": 2, "beside": 3, "two": 17, "truck": 390, "'s": 396,
                       "also": 465, "ca": 994, "n't": 995, "looking": 1044, "whose": 1130, "4": 1207,
                       "loaded": 1326, "extremely": 1347, "20": 1348, "<unk>": 1349}


def rebuild_released_rsitmd_vocab(shared_data, path):
    """The released builder on the RSITMD precomp captions: train + test, NLTK stop-words out,
    min count 5, first-seen order, <unk> last; written in the released json format."""
    folder = shared_data / "rsitmd" / "rsitmd_precomp"
    caps = [ln for s in ("train", "test") for ln in (folder / f"{s}_caps.txt").read_text().splitlines()]
    Vocab.build(caps, min_count=5, stopwords="unk", order="first_seen").to_amfmn_json(path)
    return path


def coordinate_array(r):
    """(r, r, 3) uint8: red = row, green = column (mod 256), so any rotation or transpose is visible."""
    ii, jj = np.meshgrid(np.arange(r), np.arange(r), indexing="ij")
    return (np.stack([ii, jj, np.zeros_like(ii)], -1) % 256).astype(np.uint8)


def is_unrotated_crop(x):
    """True when a normalised (3, s, s) augmentation of :func:`coordinate_array` is a plain crop."""
    pix = torch.round(denormalize(x) * 255)  # (3, s, s) back to the uint8 coordinates
    rows, cols = pix[0], pix[1]

    def step(a, dim):
        return torch.remainder(a.diff(dim=dim), 256)

    return bool((step(rows, 0) == 1).all() and (step(rows, 1) == 0).all()
                and (step(cols, 1) == 1).all() and (step(cols, 0) == 0).all())
