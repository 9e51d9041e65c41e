"""Readers for the real dataset formats; each returns a :class:`~rsnb.data.corpus.Corpus`.

* :func:`read_karpathy_json`: Karpathy-style json (UCM ``dataset.json``, Sydney, RSICD
  ``dataset_rsicd.json``, RSITMD ``dataset_RSITMD.json`` with per-image ``keywords``) and the
  synthetic ``dataset.json`` written by :mod:`rsnb.data.synthetic`.
* :func:`read_precomp`: AMFMN ``*_precomp`` folders (``{split}_caps.txt`` +
  ``{split}_filename.txt``, either one file name per image or one per caption).
* :func:`load_corpus`: picks the right reader for a json file, a folder with a json, or a
  precomp folder; :func:`find_dataset` looks a dataset up under ``RSNB_DATA``.

Bad input raises :class:`~rsnb.data.corpus.DataFormatError` with a one-line message that names
the file and the line or index. Blank captions are skipped with one warning per file (or
raise, with ``blank="error"``). Image files are not opened here; :func:`verify_images` lists
missing or undecodable ones.
"""

from rsnb.data.formats.common import SPLITS, UCM_CLASSES, DataWarning, class_from_filename
from rsnb.data.formats.detect import find_dataset, load_corpus, verify_images
from rsnb.data.formats.karpathy import read_karpathy_json
from rsnb.data.formats.precomp import read_precomp

__all__ = ["SPLITS", "UCM_CLASSES", "DataWarning", "class_from_filename", "find_dataset", "load_corpus",
           "read_karpathy_json", "read_precomp", "verify_images"]
