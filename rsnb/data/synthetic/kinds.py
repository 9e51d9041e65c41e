"""Scene vocabulary of the synthetic data: classes, splits, colours, grounds, surface types and
the object kinds (:class:`Kind`: scale band, size, aspect, surfaces, colours, nouns)."""

from __future__ import annotations

import re
from typing import NamedTuple

GENERATOR = "rsnb.synthetic v1"
SCENE_CLASSES = ("airport", "bareland", "beach", "bridge", "farmland", "forest", "industrial",
                 "parking", "playground", "pond", "port", "residential", "river", "storagetanks")
SPLITS = ("train", "val", "test")
#: longer box side as a fraction of the canvas side, per scale band (before pixel rounding)
BAND_LIMITS = {"small": (0.0, 0.1), "medium": (0.08, 0.45), "large": (0.3, 1.0)}
COLOURS = {"white": (228, 228, 222), "grey": (135, 135, 132), "dark grey": (80, 82, 84),
           "black": (36, 36, 40), "red": (172, 60, 50), "orange": (212, 120, 52),
           "yellow": (214, 190, 92), "beige": (204, 186, 146), "brown": (128, 94, 64),
           "green": (96, 138, 66), "dark green": (48, 80, 45), "blue": (58, 98, 150),
           "dark blue": (34, 60, 90), "light blue": (100, 178, 208)}
GROUNDS = {"grass": (104, 126, 74), "soil": (150, 128, 98), "concrete": (162, 160, 152),
           "urban": (128, 126, 118), "sand": (190, 172, 134)}
GROUND, WATER, PAVED, SAND, FIELD, SPORT, WOOD = range(7)  # surface types of the label map
WATER_COLOURS = ("blue", "dark blue", "dark green")


class Kind(NamedTuple):
    """One object kind of the synthetic scenes."""

    band: str  #: scale band: "small", "medium" or "large" (see BAND_LIMITS)
    length: tuple[float, float] | None  #: longer box side as a canvas fraction (None: drawn by a layout)
    aspect: float | None  #: width / length (None: drawn by a layout)
    surfaces: tuple[int, ...] | None  #: surface types it may stand on (None: drawn by a layout)
    colours: tuple[str, ...]  #: colour names it is painted in (keys of COLOURS)
    nouns: tuple[str, ...]  #: nouns that name it in a caption, the first one in keywords


#: kind -> :class:`Kind`
KINDS = {
    "car": Kind("small", (0.022, 0.04), 0.5, (PAVED,), ("white", "red", "blue", "black", "grey", "yellow"),
                ("car", "vehicle")),
    "boat": Kind("small", (0.03, 0.07), 0.35, (WATER,), ("white", "red", "blue", "yellow"), ("boat", "yacht")),
    "tank": Kind("small", (0.04, 0.09), 1.0, (GROUND,), ("white", "grey"), ("storage tank", "oil tank", "tank")),
    "tree": Kind("small", (0.025, 0.055), 1.0, (GROUND,), ("green", "dark green"), ("tree",)),
    "container": Kind("small", (0.03, 0.05), 0.4, (PAVED,), ("red", "blue", "orange", "white"), ("container",)),
    "umbrella": Kind("small", (0.018, 0.03), 1.0, (SAND,), ("red", "blue", "yellow", "white"),
                     ("umbrella", "parasol")),
    "pool": Kind("small", (0.04, 0.075), 0.6, (GROUND,), ("blue", "light blue"), ("swimming pool", "pool")),
    "house": Kind("medium", (0.08, 0.13), 0.7, (GROUND,), ("red", "grey", "brown", "white", "orange"),
                  ("house", "villa")),
    "building": Kind("medium", (0.12, 0.28), 0.6, (GROUND,), ("white", "grey", "blue", "dark grey"),
                     ("building", "warehouse", "factory")),
    "court": Kind("medium", (0.12, 0.18), 0.5, (GROUND,), ("green", "blue", "red"),
                  ("tennis court", "basketball court", "court")),
    "ship": Kind("medium", (0.15, 0.32), 0.2, (WATER,), ("white", "grey", "red", "black"),
                 ("ship", "cargo ship", "vessel")),
    "plane": Kind("medium", (0.12, 0.22), 1.0, (PAVED,), ("white", "grey"), ("plane", "airplane", "aircraft")),
    "pier": Kind("medium", None, None, None, ("grey", "white"), ("pier", "wharf", "dock")),
    "runway": Kind("large", None, None, None, ("grey", "dark grey"), ("runway", "airstrip")),
    "road": Kind("large", None, None, None, ("grey", "dark grey", "brown"), ("road", "street")),
    "bridge": Kind("large", None, None, None, ("grey", "white"), ("bridge",)),
    "river": Kind("large", None, None, None, WATER_COLOURS, ("river",)),
    "lake": Kind("large", None, None, None, WATER_COLOURS, ("lake", "pond")),
    "sea": Kind("large", None, None, None, WATER_COLOURS, ("sea", "ocean")),
    "beach": Kind("large", None, None, None, ("beige", "yellow"), ("beach", "sandy beach")),
    "field": Kind("large", None, None, None, ("green", "yellow", "brown", "dark green"), ("field", "farmland")),
    "forest": Kind("large", None, None, None, ("dark green", "green"), ("forest", "woodland")),
    "parking lot": Kind("large", None, None, None, ("grey", "dark grey"), ("parking lot", "parking area")),
    "track": Kind("large", None, None, None, ("red", "orange", "blue"), ("running track", "track")),
    "bareland": Kind("large", None, None, None, ("brown", "beige", "yellow"), ("bare land", "wasteland")),
}


def plural(w: str) -> str:
    """English plural of a noun as the captions write it (aircraft, bare land: unchanged)."""
    if w.endswith("aircraft") or w.endswith("land"):
        return w
    if w.endswith("y") and w[-2] not in "aeiou":
        return w[:-1] + "ies"
    return w + ("es" if w.endswith(("ch", "sh", "s", "x")) else "s")


#: every noun form (singular and plural) that names each object kind in a caption
OBJECT_NOUNS = {k: tuple(sorted({f for n in v.nouns for f in (n, plural(n))})) for k, v in KINDS.items()}
NOUN_RE = {k: re.compile(r"\b(" + "|".join(map(re.escape, v)) + r")\b") for k, v in OBJECT_NOUNS.items()}
