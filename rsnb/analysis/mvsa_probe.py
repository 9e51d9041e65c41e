"""Analysis helpers for looking inside AMFMN: where do MVSA's spatial maps put their weight?

The synthetic scenes of :mod:`rsnb.data.synthetic` know every object: its box, its scale band
(``small``/``medium``/``large``) and whether a caption mentions it (unmentioned objects are
*clutter*). That lets us ask a precise question of any non-negative spatial map (the MVSA gate
v(w), or ``|v(i) * v(w)|``):

    ratio(category) = (share of the map's mass inside the category's pixels)
                      / (share of the image area the category covers)

A ratio above 1 means the map prefers that category; 1 is "no preference". Because the map lives
on a coarse grid (8x8 at 128 px, 16x16 at 256 px) while boxes are in pixels, every grid cell is
split exactly by the area fraction that each category covers in it; the map is treated as constant
over a cell, so the ratio equals (mean map value over the category) / (mean map value over the image).

Every pixel gets exactly one category (see :func:`category_map`), so the categories partition the
image and both the mass shares and the area shares sum to one.

Shown in notebooks/02_mvsa_internals.ipynb.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from rsnb.models.mvsa import MVSA

BANDS = ("small", "medium", "large")
#: pixel categories, in label order: mentioned objects by band, unmentioned objects, nothing
CATEGORIES = ("small", "medium", "large", "clutter", "background")


def scene_objects(record) -> tuple[list[dict], int]:
    """Objects and source image side of a synthetic :class:`~rsnb.data.corpus.ImageRecord`.

    Args:
        record: an ImageRecord whose ``meta`` holds ``objects`` (as written by
            :func:`rsnb.data.synthetic.generate`) and ``dataset.size``.

    Returns:
        ``(objects, size)``: the object dicts and the side in pixels their boxes refer to.

    Raises:
        ValueError: the record carries no synthetic ground truth.
    """
    meta = record.meta or {}
    if "objects" not in meta:
        raise ValueError(f"{record.filename}: no meta['objects'] (only synthetic scenes carry object boxes)")
    size = (meta.get("dataset") or {}).get("size")
    if size is None:
        with Image.open(record.path) as im:
            size = im.size[0]
    return meta["objects"], int(size)


def category_map(objects: Sequence[Mapping], size: int) -> np.ndarray:
    """Label every pixel of a ``size x size`` scene with one index into :data:`CATEGORIES`.

    A pixel takes the category of the *smallest* box covering it (a car on a road counts as the car,
    a tree on a field as the tree); that object's scale band if a caption mentions it, ``clutter``
    otherwise. Pixels outside every box are ``background``.

    Args:
        objects: dicts with ``box`` ``[x0, y0, x1, y1]`` (pixel edges, x1/y1 exclusive), ``scale``
            in :data:`BANDS` and ``mentioned`` (bool, default True).
        size: side of the scene in pixels.

    Returns:
        (size, size) int array of category indices.

    Raises:
        ValueError: an object has a malformed box or an unknown scale (names its index).
    """
    labels = np.full((size, size), CATEGORIES.index("background"), dtype=np.int64)
    area = np.full((size, size), np.inf)
    for i, obj in enumerate(objects):
        box = obj.get("box")
        if box is None or len(box) != 4:
            raise ValueError(f"object {i}: box must be [x0, y0, x1, y1], got {box!r}")
        if obj.get("scale") not in BANDS:
            raise ValueError(f"object {i}: scale must be one of {BANDS}, got {obj.get('scale')!r}")
        x0, y0, x1, y1 = (int(round(float(v))) for v in box)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
        if x1 <= x0 or y1 <= y0:
            continue  # empty after clipping
        cat = CATEGORIES.index(obj["scale"] if obj.get("mentioned", True) else "clutter")
        a = float((x1 - x0) * (y1 - y0))
        win_area, win_lab = area[y0:y1, x0:x1], labels[y0:y1, x0:x1]
        smaller = a < win_area  # (h, w) pixels where this box is the most specific so far
        win_lab[smaller], win_area[smaller] = cat, a
    return labels


def _overlap_weights(size: int, cells: int) -> np.ndarray:
    """(cells, size) matrix: fraction of cell c's width covered by pixel p (rows sum to one)."""
    edges = np.linspace(0.0, size, cells + 1)  # cell edges in pixel units
    lo = np.maximum(edges[:-1, None], np.arange(size)[None])  # (cells, size)
    hi = np.minimum(edges[1:, None], np.arange(1, size + 1)[None])
    return np.clip(hi - lo, 0.0, None) / (size / cells)


def cell_fractions(labels: np.ndarray, grid: int | tuple[int, int]) -> np.ndarray:
    """Fraction of every grid cell's area that each category covers (exact area weighting).

    Args:
        labels: (S, S) category indices from :func:`category_map`.
        grid: side g of the map grid, or ``(h, w)``.

    Returns:
        (K, h, w) fractions, K = len(CATEGORIES); they sum to one over K in every cell.
    """
    h, w = (grid, grid) if isinstance(grid, int) else grid
    rows = _overlap_weights(labels.shape[0], h)  # (h, S)
    cols = _overlap_weights(labels.shape[1], w)  # (w, S)
    onehot = labels[None] == np.arange(len(CATEGORIES))[:, None, None]  # (K, S, S)
    return np.einsum("hy,kyx,wx->khw", rows, onehot.astype(np.float64), cols)


def _as_heat(heat) -> np.ndarray:
    arr = heat.detach().cpu().numpy() if hasattr(heat, "detach") else np.asarray(heat)
    arr = np.asarray(arr, dtype=np.float64)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"expected an (h, w) map (or (1, h, w)), got shape {arr.shape}")
    return arr


def gate_mass(heat, objects: Sequence[Mapping], size: int) -> dict[str, dict[str, float]]:
    """Share of a map's mass and of the image area per category, and their ratio, for one scene.

    Args:
        heat: (h, w) or (1, h, w) non-negative map (tensor or array), e.g. the MVSA gate.
        objects: the scene's object dicts (see :func:`category_map`).
        size: side in pixels the boxes refer to (the scene may be resized to any input size:
            boxes and grid are matched in relative coordinates).

    Returns:
        ``{category: {"mass", "area", "ratio"}}``; ``ratio`` is NaN where ``area`` is 0.

    Raises:
        ValueError: the map has negative values or no mass.
    """
    arr = _as_heat(heat)  # (h, w)
    if arr.min() < 0:
        raise ValueError(f"gate_mass needs a non-negative map (min {arr.min():.3g}); pass abs() or the gate")
    total = arr.sum()
    if not total > 0:
        raise ValueError("gate_mass: the map has zero mass")
    frac = cell_fractions(category_map(objects, size), arr.shape)  # (K, h, w)
    mass = (frac * arr).sum(axis=(1, 2)) / total  # (K,)
    area = frac.mean(axis=(1, 2))  # (K,): all cells have the same area
    out = {}
    for k, cat in enumerate(CATEGORIES):
        ratio = mass[k] / area[k] if area[k] > 0 else float("nan")
        out[cat] = {"mass": float(mass[k]), "area": float(area[k]), "ratio": float(ratio)}
    return out


def gate_mass_table(heats, scenes: Sequence) -> dict[str, dict[str, float]]:
    """:func:`gate_mass` pooled over many scenes (each scene weighs the same).

    The pooled ratio is (sum of mass shares) / (sum of area shares) over the scenes, so a category
    that covers a tiny area in one image cannot dominate the average.

    Args:
        heats: (N, h, w) or (N, 1, h, w) non-negative maps.
        scenes: N ImageRecords with synthetic ``meta`` or N ``(objects, size)`` pairs.

    Returns:
        ``{category: {"mass", "area", "ratio", "images"}}``: mean mass and area shares, the pooled
        ratio (NaN if the category never occurs) and the number of scenes containing the category.
    """
    if len(heats) != len(scenes):
        raise ValueError(f"gate_mass_table: {len(heats)} maps but {len(scenes)} scenes")
    if len(scenes) == 0:
        raise ValueError("gate_mass_table: no scenes")
    mass, area, count = np.zeros(len(CATEGORIES)), np.zeros(len(CATEGORIES)), np.zeros(len(CATEGORIES), int)
    for heat, scene in zip(heats, scenes):
        objects, size = scene if isinstance(scene, tuple) else scene_objects(scene)
        one = gate_mass(heat, objects, size)
        for k, cat in enumerate(CATEGORIES):
            mass[k] += one[cat]["mass"]
            area[k] += one[cat]["area"]
            count[k] += one[cat]["area"] > 0
    n = len(scenes)
    return {cat: {"mass": mass[k] / n, "area": area[k] / n,
                  "ratio": mass[k] / area[k] if area[k] > 0 else float("nan"), "images": int(count[k])}
            for k, cat in enumerate(CATEGORIES)}


def format_mass_tables(tables: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """Text table of several :func:`gate_mass_table` results: area share, then one ratio column each.

    Args:
        tables: ``{column label: table}``; the area column is taken from the first table.

    Returns:
        The formatted table (one row per category).
    """
    labels = list(tables)
    first = tables[labels[0]]
    width = max(12, *(len(s) + 2 for s in labels))
    lines = [f"{'category':<12}{'area %':>8}{'scenes':>8}" + "".join(f"{s:>{width}}" for s in labels)]
    for cat in CATEGORIES:
        row = f"{cat:<12}{100 * first[cat]['area']:>8.1f}{first[cat].get('images', 1):>8d}"
        row += "".join(f"{tables[s][cat]['ratio']:>{width}.3f}" for s in labels)
        lines.append(row)
    return "\n".join(lines)


def describe_tensors(tensors: Mapping[str, object]) -> str:
    """One line per tensor: name, shape, mean and standard deviation (for shape walk-throughs).

    Args:
        tensors: ``{name: tensor}``.

    Returns:
        The formatted table.
    """
    width = max(len(k) for k in tensors) + 2
    lines = [f"{'tensor':<{width}}{'shape':<24}{'mean':>10}{'std':>10}"]
    for name, t in tensors.items():
        x = t.detach().float() if hasattr(t, "detach") else np.asarray(t, dtype=np.float64)
        lines.append(f"{name:<{width}}{str(tuple(x.shape)):<24}{float(x.mean()):>10.4f}{float(x.std()):>10.4f}")
    return "\n".join(lines)


def mask_attribution(weight, gated, mask):
    """Project MVSA's salient mask back onto the grid (gradient x input, summed over mask channels).

    The mask is ``m = sigmoid(W g + b)`` with ``g`` the flattened gated map, so
    ``dm_d / dg_p = m_d (1 - m_d) W[d, p]`` and the attribution of grid cell p is
    ``|g_p| * sum_d m_d (1 - m_d) |W[d, p]|``: how strongly that cell moves the mask.

    Args:
        weight: (D, h*w) weight of ``MVSA.mask_fc``.
        gated: (B, 1, h, w) or (B, h, w) gated map v(i) * v(w).
        mask: (B, D) salient mask.

    Returns:
        (B, h, w) non-negative attribution.
    """
    g = gated.reshape(gated.shape[0], -1)  # (B, h*w)
    if weight.shape[1] != g.shape[1]:
        raise ValueError(f"mask_fc weight has {weight.shape[1]} inputs but the gated map has {g.shape[1]} cells")
    slope = mask * (1 - mask)  # (B, D)
    attr = g.abs() * (slope @ weight.abs())  # (B, h*w)
    return attr.reshape(gated.shape[0], *gated.shape[-2:])


def mvsa_variant(mvsa, form: str | None = None, grid_size: int | None = None):
    """A copy of an MVSA module in another form and/or for another grid, sharing every weight it can.

    The LF/HF/info/gate convolutions do not depend on the grid, so they are always copied (the
    paper form's PReLUs only when both modules have them). ``mask_fc`` is copied only when the grid
    is unchanged; for another grid its (h*w -> D) weight cannot be reused and stays freshly initialised.

    Args:
        mvsa: a :class:`rsnb.models.mvsa.MVSA`.
        form: ``"paper"`` or ``"code"`` (default: the same form).
        grid_size: side of the high-level grid (default: the same).

    Returns:
        The new MVSA (same device and dtype as ``mvsa``).
    """
    form = form or mvsa.form
    grid = grid_size or mvsa.grid_size
    new = MVSA(mvsa.lf_conv.in_channels, mvsa.hf_conv.in_channels, grid, mvsa.mask_fc.out_features,
               mvsa.lf_conv.out_channels, form)
    mine = new.state_dict()
    shared = {k: v for k, v in mvsa.state_dict().items() if k in mine and mine[k].shape == v.shape}
    new.load_state_dict(shared, strict=False)
    p = next(mvsa.parameters())
    return new.to(device=p.device, dtype=p.dtype)


def map_mass_tables(model, images, scenes, batch_size: int = 32) -> dict[str, dict]:
    """Gate-mass tables of a model's MVSA maps on probe images (eval mode, no gradients).

    Args:
        model: an AMFMN with MVSA (``model.mvsa_maps``).
        images: (N, 3, S, S) normalised probe images (moved to the model's device in batches).
        scenes: N ImageRecords (synthetic meta) or ``(objects, size)`` pairs.
        batch_size: images per forward pass.

    Returns:
        ``{"gate": table, "gated": table}``: :func:`gate_mass_table` of the gate v(w) and of
        ``|v(i) * v(w)|``. The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    gates, gated = [], []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            maps = model.mvsa_maps(images[i:i + batch_size].to(device))
            gates.append(maps["gate"].float().cpu())  # (b, 1, h, w)
            gated.append(maps["gated"].float().abs().cpu())
    model.train(was_training)
    return {"gate": gate_mass_table(torch.cat(gates), scenes), "gated": gate_mass_table(torch.cat(gated), scenes)}
