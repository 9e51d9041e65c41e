"""Procedural synthetic remote-sensing image-caption data (RSITMD-like), drawn with numpy + PIL.

Every image is a top-down aerial scene of one of :data:`SCENE_CLASSES` on a textured ground, with
objects at three scale bands: *small* (cars, boats, tanks, trees: a few pixels), *medium* (houses,
buildings, courts, ships, planes, piers) and *large* (runways, roads, rivers, lakes, sea, fields:
much of the frame). Scenes of one class share their layout; counts, colours, sizes and positions
differ. Some objects are clutter that no caption mentions (``mentioned: false``). Each image gets
five distinct captions built from its own object list (counts, colours, sizes, spatial relations),
one of which mentions only small targets when the scene has any, and 1-5 RSITMD-style keywords
("white tanks", "- port"). Image ``i`` of a dataset draws from ``np.random.default_rng([seed, i])``
alone, so the output does not depend on the number of workers.
Shown in notebooks/01_data_exploration.ipynb.

Modules: :mod:`.kinds` (vocabulary and object kinds), :mod:`.scene` (canvas and geometry),
:mod:`.layouts` (one layout per class), :mod:`.captions` (captions and keywords), :mod:`.writer`
(:func:`render_scene`, :func:`generate`, ``rsnb synth``).
"""

from rsnb.data.synthetic.captions import SCENE_PHRASES
from rsnb.data.synthetic.kinds import (
                                       BAND_LIMITS,
                                       COLOURS,
                                       GENERATOR,
                                       GROUNDS,
                                       KINDS,
                                       OBJECT_NOUNS,
                                       SCENE_CLASSES,
                                       SPLITS,
                                       Kind,
)
from rsnb.data.synthetic.writer import build_parser, generate, main, render_scene

__all__ = ["BAND_LIMITS", "COLOURS", "GENERATOR", "GROUNDS", "KINDS", "OBJECT_NOUNS", "SCENE_CLASSES",
           "SCENE_PHRASES", "SPLITS", "Kind", "build_parser", "generate", "main", "render_scene"]
