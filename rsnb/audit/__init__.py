"""Dataset hygiene for image-caption retrieval data (``python -m rsnb audit``, notebook 08).

* :mod:`rsnb.audit.hashing`: pHash/dHash of every image under the 8 rotations/flips, thumbnails.
* :mod:`rsnb.audit.index`: multi-index Hamming search (and the brute-force reference).
* :mod:`rsnb.audit.images`: near-duplicate pairs within a dataset and between two, leak summary.
* :mod:`rsnb.audit.captions`: blank, duplicate, near-duplicate and cross-class captions.
* :mod:`rsnb.audit.pairs`: captions a trained model ranks far from their own image.
* :mod:`rsnb.audit.report`: CSVs, markdown report, figures, de-duplicated split json.
"""
