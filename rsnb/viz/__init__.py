"""Plotting helpers shared by the notebooks, one module per part of the papers.

Every figure a notebook keeps goes through :func:`save_figure`, which writes
``figures/NAME.png`` (and ``figures/NAME.csv`` with the plotted numbers when given). In quick
mode (``RSNB_QUICK=1``) figures go to ``figures/quick/`` instead, so test runs never overwrite
the figures made with the paper settings.

Modules: :mod:`.core` (saving, grids, overlays, curves, heat maps, bars), :mod:`.data` (notebook 01),
:mod:`.mvsa` (02), :mod:`.loss` (03), :mod:`.retrieval` (04, 05). Every name is importable from
``rsnb.viz``.
"""

from rsnb.viz.core import (
                           denormalize,
                           figures_dir,
                           image_grid,
                           overlay_map,
                           plot_grouped_bars,
                           plot_history,
                           plot_matrix,
                           save_figure,
)
from rsnb.viz.data import (
                           SCALE_COLOURS,
                           draw_objects,
                           plot_scale_bands,
                           plot_similarity_groups,
                           plot_text_stats,
                           plot_top_words,
                           scene_grid,
)
from rsnb.viz.loss import plot_batch_margins, plot_loss_diagnostics, plot_margin_curves, plot_prior_groups
from rsnb.viz.mvsa import CATEGORY_COLOURS, map_panels, plot_mass_ratios, plot_ratio_history, scale_legend
from rsnb.viz.retrieval import (
                           plot_confusion,
                           plot_embedding_2d,
                           plot_i2t_lists,
                           plot_metric_bars,
                           plot_t2i_gallery,
)

__all__ = [
    "CATEGORY_COLOURS", "SCALE_COLOURS", "denormalize", "draw_objects", "figures_dir", "image_grid", "map_panels",
    "overlay_map", "plot_batch_margins", "plot_confusion", "plot_embedding_2d", "plot_grouped_bars", "plot_history",
    "plot_i2t_lists", "plot_loss_diagnostics", "plot_margin_curves", "plot_mass_ratios", "plot_matrix",
    "plot_metric_bars", "plot_prior_groups", "plot_ratio_history", "plot_scale_bands", "plot_similarity_groups",
    "plot_t2i_gallery", "plot_text_stats", "plot_top_words", "save_figure", "scale_legend", "scene_grid",
]
