"""Analysis behind the notebooks, one module per part of the papers.

* :mod:`.paper_tables`: the reported numbers (AMFMN Tables II, III, V);
* :mod:`.mvsa_probe`: gate mass per scale band / clutter, MVSA variants (notebook 02);
* :mod:`.loss_probe`: prior by pair type, active triplets and gradients per loss (notebook 03);
* :mod:`.retrieval`: rank histograms, failure breakdowns, galleries (notebooks 04, 05);
* :mod:`.embeddings`: encoded splits, AMFMN's image-guided text vectors, UMAP (notebook 05);
* :mod:`.runs`: the cached synthetic runs shared by notebooks 04, 05 and 08;
* :mod:`.msa_probe`: per-scale MSCMAT matrices, re-ranking extension (notebook 06).

The names of paper_tables, retrieval, embeddings and runs are importable from ``rsnb.analysis``.
"""

from rsnb.analysis.embeddings import embed_2d, encode_split, guided_text_vectors
from rsnb.analysis.paper_tables import PAPER_TABLE_II, PAPER_TABLE_III, PAPER_TABLE_V, paper_rows
from rsnb.analysis.retrieval import (
                                     caption_kinds,
                                     caption_scale_groups,
                                     chance_rank_histogram,
                                     class_confusion,
                                     frequent_keywords,
                                     grouped_recall,
                                     phrase_relevance,
                                     pick_examples,
                                     rank_buckets,
                                     rank_histogram,
                                     scale_group,
                                     top_k,
)
from rsnb.analysis.runs import (
    VARIANT_SPECS,
    cached_run,
    evaluation_split,
    run_path,
    run_status,
    variant_config,
    variant_run,
    variant_run_dir,
)

__all__ = [
    "PAPER_TABLE_II", "PAPER_TABLE_III", "PAPER_TABLE_V", "cached_run", "caption_kinds", "caption_scale_groups",
    "chance_rank_histogram", "class_confusion", "embed_2d", "encode_split", "evaluation_split", "frequent_keywords",
    "grouped_recall", "guided_text_vectors", "paper_rows", "phrase_relevance", "pick_examples", "rank_buckets",
    "rank_histogram", "run_path", "run_status", "scale_group", "top_k", "variant_config", "variant_run",
    "variant_run_dir", "VARIANT_SPECS",
]
