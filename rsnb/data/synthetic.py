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
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw
from tqdm import tqdm

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
_WATER_C = ("blue", "dark blue", "dark green")
# kind -> (band, length range as canvas fraction, width/length, surfaces it may stand on, colours, nouns)
KINDS = {
    "car": ("small", (0.022, 0.04), 0.5, (PAVED,), ("white", "red", "blue", "black", "grey", "yellow"),
            ("car", "vehicle")),
    "boat": ("small", (0.03, 0.07), 0.35, (WATER,), ("white", "red", "blue", "yellow"), ("boat", "yacht")),
    "tank": ("small", (0.04, 0.09), 1.0, (GROUND,), ("white", "grey"), ("storage tank", "oil tank", "tank")),
    "tree": ("small", (0.025, 0.055), 1.0, (GROUND,), ("green", "dark green"), ("tree",)),
    "container": ("small", (0.03, 0.05), 0.4, (PAVED,), ("red", "blue", "orange", "white"), ("container",)),
    "umbrella": ("small", (0.018, 0.03), 1.0, (SAND,), ("red", "blue", "yellow", "white"),
                 ("umbrella", "parasol")),
    "pool": ("small", (0.04, 0.075), 0.6, (GROUND,), ("blue", "light blue"), ("swimming pool", "pool")),
    "house": ("medium", (0.08, 0.13), 0.7, (GROUND,), ("red", "grey", "brown", "white", "orange"),
              ("house", "villa")),
    "building": ("medium", (0.12, 0.28), 0.6, (GROUND,), ("white", "grey", "blue", "dark grey"),
                 ("building", "warehouse", "factory")),
    "court": ("medium", (0.12, 0.18), 0.5, (GROUND,), ("green", "blue", "red"),
              ("tennis court", "basketball court", "court")),
    "ship": ("medium", (0.15, 0.32), 0.2, (WATER,), ("white", "grey", "red", "black"),
             ("ship", "cargo ship", "vessel")),
    "plane": ("medium", (0.12, 0.22), 1.0, (PAVED,), ("white", "grey"), ("plane", "airplane", "aircraft")),
    "pier": ("medium", None, None, None, ("grey", "white"), ("pier", "wharf", "dock")),
    "runway": ("large", None, None, None, ("grey", "dark grey"), ("runway", "airstrip")),
    "road": ("large", None, None, None, ("grey", "dark grey", "brown"), ("road", "street")),
    "bridge": ("large", None, None, None, ("grey", "white"), ("bridge",)),
    "river": ("large", None, None, None, _WATER_C, ("river",)),
    "lake": ("large", None, None, None, _WATER_C, ("lake", "pond")),
    "sea": ("large", None, None, None, _WATER_C, ("sea", "ocean")),
    "beach": ("large", None, None, None, ("beige", "yellow"), ("beach", "sandy beach")),
    "field": ("large", None, None, None, ("green", "yellow", "brown", "dark green"), ("field", "farmland")),
    "forest": ("large", None, None, None, ("dark green", "green"), ("forest", "woodland")),
    "parking lot": ("large", None, None, None, ("grey", "dark grey"), ("parking lot", "parking area")),
    "track": ("large", None, None, None, ("red", "orange", "blue"), ("running track", "track")),
    "bareland": ("large", None, None, None, ("brown", "beige", "yellow"), ("bare land", "wasteland")),
}


def _plural(w: str) -> str:
    if w.endswith("aircraft") or w.endswith("land"):
        return w
    if w.endswith("y") and w[-2] not in "aeiou":
        return w[:-1] + "ies"
    return w + ("es" if w.endswith(("ch", "sh", "s", "x")) else "s")


#: every noun form (singular and plural) that names each object kind in a caption
OBJECT_NOUNS = {k: tuple(sorted({f for n in v[5] for f in (n, _plural(n))})) for k, v in KINDS.items()}
_NOUN_RE = {k: re.compile(r"\b(" + "|".join(map(re.escape, v)) + r")\b") for k, v in OBJECT_NOUNS.items()}
SCENE_PHRASES = {
    "airport": ("an airport", "an airfield"), "bareland": ("a piece of bare land", "a wasteland", "a barren area"),
    "beach": ("a beach", "a seaside beach", "a coast"), "bridge": ("a bridge over a river", "a river crossing"),
    "farmland": ("farmland", "an agricultural area", "a rural area"),
    "forest": ("a forest", "a dense forest", "a wooded area"),
    "industrial": ("an industrial area", "an industrial zone", "a factory district"),
    "parking": ("a parking lot", "a large parking area"),
    "playground": ("a playground", "a sports ground", "a school playground"),
    "pond": ("a pond", "a small pond", "a park with a pond"), "port": ("a port", "a harbour", "a busy harbour"),
    "residential": ("a residential area", "a neighbourhood", "a housing estate"),
    "river": ("a river", "a winding river", "a riverside area"),
    "storagetanks": ("an oil depot", "a tank farm", "a storage tank area"),
}
_CLASS_KEYWORD = {"storagetanks": "storage tanks", "parking": "parking lot",
                  "industrial": "industrial area", "residential": "residential area"}
_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
            "eleven", "twelve")
_VERBS = {"car": ("parked",), "boat": ("moored", "anchored"), "tree": ("growing", "planted"),
          "container": ("stacked",), "umbrella": ("set up",)}
_INSIDE = {"river": ("on", "in"), "sea": ("on", "in"), "lake": ("on", "in"), "road": ("on",),
           "parking lot": ("in",), "runway": ("on",), "field": ("in",), "forest": ("in",),
           "bareland": ("on",), "beach": ("on",), "bridge": ("on",), "pier": ("on",)}
# PIL transpose ops and the matching map of continuous canvas points (x, y) -> (x', y')
_DIHEDRAL = ((None, lambda x, y, s: (x, y)),
             (Image.Transpose.FLIP_LEFT_RIGHT, lambda x, y, s: (s - x, y)),
             (Image.Transpose.FLIP_TOP_BOTTOM, lambda x, y, s: (x, s - y)),
             (Image.Transpose.ROTATE_90, lambda x, y, s: (y, s - x)),
             (Image.Transpose.ROTATE_180, lambda x, y, s: (s - x, s - y)),
             (Image.Transpose.ROTATE_270, lambda x, y, s: (s - y, x)),
             (Image.Transpose.TRANSPOSE, lambda x, y, s: (y, x)),
             (Image.Transpose.TRANSVERSE, lambda x, y, s: (s - y, s - x)))


def _rot(cx, cy, a, pts):
    """Rotate local (u, v) points by angle ``a`` and move them to (cx, cy); returns [(x, y), ...]."""
    c, s = math.cos(a), math.sin(a)
    return [(cx + u * c - v * s, cy + u * s + v * c) for u, v in pts]


def _rect(length, width, du=0.0, dv=0.0):
    h, w = length / 2, width / 2
    return [(du - h, dv - w), (du + h, dv - w), (du + h, dv + w), (du - h, dv + w)]


def _poly(pts):
    pts = [tuple(map(float, p)) for p in pts]
    return lambda d, f: d.polygon(pts, fill=f)


def _line(pts, width):
    pts = [tuple(map(float, p)) for p in pts]
    return lambda d, f: d.line(pts, fill=f, width=max(1, round(width)), joint="curve")


def _along(pts, step, offsets=(0.0,)):
    """Slots (x, y, angle) every ``step`` px along a polyline, at the given lateral offsets."""
    out = []
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        a, n = math.atan2(y1 - y0, x1 - x0), math.hypot(x1 - x0, y1 - y0)
        for s in np.arange(step / 2, n, step):
            out += [(x0 + math.cos(a) * s - math.sin(a) * o, y0 + math.sin(a) * s + math.cos(a) * o, a)
                    for o in offsets]
    return out


def _grid(x0, y0, x1, y1, step, a=0.0, sy=None):
    sy = sy or step
    return [(x, y, a) for y in np.arange(y0 + sy / 2, y1 - sy / 4, sy) for x in np.arange(x0 + step / 2, x1 - step / 4, step)]


class _Scene:
    """Canvas, label map (area index per pixel) and object/group bookkeeping for one image."""

    def __init__(self, rng: np.random.Generator, size: int):
        self.rng, self.S = rng, size
        self.img = Image.new("RGB", (size, size))
        self.draw = ImageDraw.Draw(self.img)
        self.label = Image.new("L", (size, size), 0)
        self.ldraw = ImageDraw.Draw(self.label)
        self.surf, self.area_group = [GROUND], [None]  # per area index: surface type, group id
        self.objects, self.groups = [], []
        self.occ = np.zeros((size, size), bool)  # pixels covered by placed small/medium boxes

    def u(self, lo, hi):
        return float(self.rng.uniform(lo, hi)) * self.S

    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def texture(self, rgb, amp=16, cells=6, fine=0, wh=None) -> Image.Image:
        """RGB texture of size ``wh`` (default the canvas): base colour + smooth noise.

        Built on a grid 4x coarser than the output and upsampled once (bilinear); ``fine`` adds
        per-cell blobs (tree crowns).
        """
        r, (w, h) = self.rng, wh or (self.S, self.S)
        m = (max(2, w // 4), max(2, h // 4))

        def octave(c):  # (mh, mw) smooth noise in [-1, 1]
            small = Image.fromarray((r.random((c, c)) * 255).astype(np.uint8))
            return np.asarray(small.resize(m, Image.Resampling.BICUBIC), np.float32) / 128 - 1

        noise = octave(cells) * amp + octave(max(4, self.S // 10)) * (amp / 2)
        if fine:
            noise += np.maximum(r.random(m[::-1], np.float32) * 2 - 1, -0.3) * fine
        base = np.asarray(rgb, np.float32) + r.integers(-8, 9, 3)  # (3,)
        small = np.clip(base + noise[..., None], 0, 255).astype(np.uint8)  # (mh, mw, 3)
        return Image.fromarray(small).resize((w, h), Image.Resampling.BILINEAR)

    def ground(self, name, amp=18):
        self.img.paste(self.texture(GROUNDS[name], amp))

    def area(self, kind, colour, shape, surf, role="anchor", group=None, amp=14, cells=6, rgb=None, fine=0):
        """Paint a region (textured when ``amp`` > 8, else flat) and register it as one object of
        ``kind`` (``None``: unlisted ground-like area). ``shape(draw, fill)`` draws the region."""
        if group is not None:
            colour = self.groups[group]["colour"]
        rgb = rgb or COLOURS[colour]
        mask = Image.new("L", (self.S, self.S), 0)
        shape(ImageDraw.Draw(mask), 255)
        box = mask.getbbox()
        if box is not None and amp <= 8:
            shape(self.draw, tuple(int(v) + int(self.rng.integers(-6, 7)) for v in rgb))
        elif box is not None:
            tex = self.texture(rgb, amp, cells, fine, (box[2] - box[0], box[3] - box[1]))
            self.img.paste(tex, box[:2], mask.crop(box))
        self.surf.append(surf)
        shape(self.ldraw, len(self.surf) - 1)
        if kind is None or box is None:
            self.area_group.append(None)
            return group
        group = self._add(kind, colour, list(box), 0.5, None, role, group)
        self.area_group.append(group)
        return group

    def _add(self, kind, colour, box, t, on, role, group):
        if group is None:
            self.groups.append({"kind": kind, "colour": colour, "idx": [], "role": role})
            group = len(self.groups) - 1
        self.groups[group]["idx"].append(len(self.objects))
        self.objects.append({"kind": kind, "box": box, "t": t, "on": on})
        return group

    def place(self, kind, n, region=None, slots=None, angle=None, jitter=0.15, surf=None, role="main"):
        """Place up to ``n`` objects of one colour (new group) on allowed surfaces; returns group or None."""
        _, (lo, hi), asp, surfs, cols, _ = KINDS[kind]
        r, S, n = self.rng, self.S, int(n)
        used = {g["colour"] for g in self.groups if g["kind"] == kind}
        free = [c for c in cols if c not in used]
        if n <= 0 or not free:
            return None
        colour, group, tg = self.pick(free), None, r.random()
        lab, ok = np.asarray(self.label), [v in (surf or surfs) for v in self.surf]
        x0, y0, x1, y1 = region or (0, 0, S, S)
        order = r.permutation(len(slots)) if slots else range(10 * n + 10)
        for k in order:
            if group is not None and len(self.groups[group]["idx"]) >= n:
                break
            if slots:
                cx, cy, a = slots[k]
                a += r.normal(0, 0.03)
            else:
                cx, cy = r.uniform(x0, x1), r.uniform(y0, y1)
                a = r.uniform(0, math.pi) if angle is None else angle + r.normal(0, jitter)
            a = 0.0 if kind in ("tank", "tree", "umbrella") else a  # circles: tight axis-aligned box
            t = min(1.0, max(0.0, tg + r.normal(0, 0.08)))
            ln = max(2.0, S * (lo + t * (hi - lo)))
            pts = _rot(cx, cy, a, _rect(ln, max(1.5, ln * asp)))
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            if min(xs) < 0 or min(ys) < 0 or max(xs) >= S or max(ys) >= S:
                continue
            if not all(ok[lab[int(y), int(x)]] for x, y in pts + [(cx, cy)]):
                continue
            box = [math.floor(min(xs)), math.floor(min(ys)), math.ceil(max(xs)), math.ceil(max(ys))]
            if self.occ[box[1]:box[3], box[0]:box[2]].any():
                continue
            self._draw_obj(kind, cx, cy, ln, max(1.5, ln * asp), a, colour)
            self.occ[box[1]:box[3], box[0]:box[2]] = True
            group = self._add(kind, colour, box, t, self.area_group[lab[int(cy), int(cx)]], role, group)
        return group

    def _draw_obj(self, kind, cx, cy, ln, w, a, colour):
        d, r = self.draw, self.rng
        rgb = tuple(min(255, max(0, v + int(j))) for v, j in zip(COLOURS[colour], r.integers(-12, 13, 3)))
        dark = tuple(int(v * 0.72) for v in rgb)
        light = tuple(min(255, int(v * 1.15 + 20)) for v in rgb)
        shadow, o = (40, 44, 40), max(1.0, ln * 0.12)

        def poly(pts, fill, du=0.0):
            d.polygon(_rot(cx + du, cy + du, a, pts), fill=fill)

        if kind in ("tank", "tree", "umbrella"):
            rad = ln / 2
            if kind != "umbrella":
                d.ellipse((cx - rad + o, cy - rad + o, cx + rad + o, cy + rad + o), fill=shadow)
            d.ellipse((cx - rad, cy - rad, cx + rad, cy + rad), fill=rgb)
            if kind == "tank" and rad >= 3:
                q = rad * 0.7
                d.ellipse((cx - q, cy - q, cx + q, cy + q), outline=dark)
            elif kind == "tree" and rad >= 2:
                q = rad * 0.45
                d.ellipse((cx - q - rad / 4, cy - q - rad / 4, cx + q - rad / 4, cy + q - rad / 4), fill=light)
        elif kind in ("boat", "ship"):
            hull = [(-ln / 2, -w / 2), (ln / 4, -w / 2), (ln / 2, 0), (ln / 4, w / 2), (-ln / 2, w / 2)]
            if kind == "boat":
                d.line(_rot(cx, cy, a, [(-ln / 2, 0), (-ln * 1.4, 0)]), fill=(200, 210, 215),
                       width=max(1, round(w / 2)))
            poly(hull, shadow, o / 2)
            poly(hull, rgb)
            if kind == "ship":
                poly(_rect(ln * 0.14, w * 0.8, du=-ln * 0.33), light)
                for k in range(3):
                    poly(_rect(ln * 0.12, w * 0.6, du=ln * (k * 0.17 - 0.15)), self.pick(list(COLOURS.values())))
        elif kind == "plane":
            parts = [_rect(ln, ln * 0.12), [(-ln * 0.02, 0), (ln * 0.12, -ln / 2), (ln * 0.2, -ln / 2), (ln * 0.14, 0),
                                            (ln * 0.2, ln / 2), (ln * 0.12, ln / 2)], _rect(ln * 0.1, ln * 0.38, du=-ln * 0.42)]
            for p in parts:
                poly(p, shadow, o)
            for p in parts:
                poly(p, rgb)
        else:  # rectangular kinds: car, container, pool, house, building, court
            if kind in ("house", "building"):
                poly(_rect(ln, w), shadow, o)
            poly(_rect(ln, w), rgb)
            if kind == "car":
                poly(_rect(ln * 0.45, w * 0.7, du=-ln * 0.05), dark)
            elif kind == "house":
                poly(_rect(ln, w / 2, dv=w / 4), dark)
            elif kind == "building":
                poly(_rect(ln * 0.86, w * 0.8), light)
            elif kind in ("court", "pool", "container") and w >= 4:
                d.polygon(_rot(cx, cy, a, _rect(ln, w)), outline=(235, 235, 235)
                          if kind != "container" else dark)
                if kind == "court":
                    d.line(_rot(cx, cy, a, [(0, -w / 2), (0, w / 2)]), fill=(235, 235, 235))

    def clutter(self, kinds):
        """Add 1-2 groups of kinds absent from the scene; no caption will mention them."""
        present = {g["kind"] for g in self.groups}
        cand = [k for k in kinds if k not in present]
        for i in self.rng.permutation(len(cand))[: int(self.rng.integers(1, 3))]:
            self.place(cand[i], self.rng.integers(1, 5), role="clutter")


# ------------------------------------------------------------------ scene layouts (one per class)
def _wave(sc, y0, amp, slope=0.0, n=13):
    S, r = sc.S, sc.rng
    xs = np.linspace(-0.1 * S, 1.1 * S, n)
    ys = y0 + slope * (xs - S / 2) + amp * np.sin(2 * math.pi * r.uniform(0.5, 1.5) * xs / S + r.uniform(0, 6.3))
    return [(float(x), float(y)) for x, y in zip(xs, ys)]


def _water_line(sc, pts, w):
    sc.area(None, None, _line(pts, w + sc.u(0.02, 0.05)), GROUND, rgb=GROUNDS["sand"], amp=6)  # bank
    return sc.area("river", sc.pick(_WATER_C), _line(pts, w), WATER, amp=10, cells=4)


def _road(sc, pts, w, group=None):
    return sc.area("road", sc.pick(KINDS["road"][4]), _line(pts, w), PAVED, "main", group, amp=8)


def _airport(sc):
    S, r = sc.S, sc.rng
    sc.ground("grass")
    y, w, a = sc.u(0.62, 0.76), sc.u(0.1, 0.14), r.normal(0, 0.04)
    sc.area("runway", sc.pick(("grey", "dark grey")), _poly(_rot(S / 2, y, a, _rect(1.8 * S, w))), PAVED, amp=6)
    for u in np.arange(-0.9 * S, 0.9 * S, 0.12 * S):
        sc.draw.polygon(_rot(S / 2, y, a, _rect(0.06 * S, max(1, w * 0.06), du=u)), fill=(230,) * 3)
    x0, x1, ya = sc.u(0.03, 0.2), sc.u(0.8, 0.97), y - w / 2 - sc.u(0.07, 0.1)
    yt = ya - sc.u(0.24, 0.3)
    sc.area(None, None, _poly([(x0, yt), (x1, yt), (x1, ya), (x0, ya)]), PAVED, rgb=(165, 165, 160), amp=6)
    xt = sc.u(0.3, 0.7)
    sc.area(None, None, _line([(xt, ya - 2), (xt, y)], 0.03 * S), PAVED, rgb=(150, 150, 146), amp=4)
    sc.place("plane", r.integers(1, 5), slots=_grid(x0, yt, x1, ya, 0.25 * S, math.pi / 2, sy=ya - yt))
    sc.place("building", 1, region=(x0, 0, x1, yt), angle=0, jitter=0.02)
    sc.place("car", r.integers(2, 7), region=(x0, yt, x1, ya))
    return ("tree", "house", "pool")


def _bareland(sc):
    S, r = sc.S, sc.rng
    sc.area("bareland", sc.pick(KINDS["bareland"][4]), _poly([(0, 0), (S, 0), (S, S), (0, S)]), GROUND,
            amp=30, cells=10)
    rw, road = sc.u(0.03, 0.05), _wave(sc, sc.u(0.2, 0.8), sc.u(0, 0.1), r.normal(0, 0.3))
    if r.random() < 0.7:
        _road(sc, road, rw)
        sc.place("car", r.integers(1, 4), slots=_along(road, 0.05 * S, (-rw / 4, rw / 4)))
    sc.place("tree", r.integers(1, 6))
    sc.place("building", r.integers(0, 2), angle=0, jitter=0.3)
    return ("house", "tank", "container")


def _beach(sc):
    S, r = sc.S, sc.rng
    sc.ground(sc.pick(("grass", "urban")))
    coast, sandw = _wave(sc, sc.u(0.55, 0.72), sc.u(0.01, 0.05)), sc.u(0.16, 0.3)
    inland = [(x, y - sandw + r.normal(0, 0.01 * S)) for x, y in coast]
    sc.area("beach", sc.pick(KINDS["beach"][4]), _poly(inland + coast[::-1]), SAND, amp=12)
    sc.area("sea", sc.pick(_WATER_C), _poly(coast + [(1.1 * S, 1.1 * S), (-0.1 * S, 1.1 * S)]), WATER, amp=14, cells=4)
    sc.draw.line(coast, fill=(225, 230, 225), width=max(1, S // 100), joint="curve")  # surf
    ymin = min(y for _, y in inland)
    sc.place("umbrella", r.integers(3, 12), region=(0, ymin, S, max(y for _, y in coast)))
    sc.place("boat", r.integers(1, 6))
    sc.place("tree", r.integers(2, 8), region=(0, 0, S, ymin))
    return ("house", "car", "pool", "building")


def _bridge(sc):
    S, r = sc.S, sc.rng
    sc.ground(sc.pick(("grass", "soil")))
    w, river = sc.u(0.13, 0.2), _wave(sc, sc.u(0.4, 0.6), sc.u(0, 0.05), r.normal(0, 0.15))
    _water_line(sc, river, w)
    xb, a, rw = sc.u(0.3, 0.7), math.pi / 2 + r.normal(0, 0.2), sc.u(0.04, 0.06)
    yb = float(np.interp(xb, [p[0] for p in river], [p[1] for p in river]))
    road = _rot(xb, yb, a, [(-0.8 * S, 0), (0.8 * S, 0)])
    _road(sc, road, rw)
    span = w * 1.3 + 0.2 * S
    sc.draw.polygon(_rot(xb + rw / 2, yb + rw / 2, a, _rect(span * 0.8, rw * 1.3)), fill=(30, 42, 48))
    sc.area("bridge", sc.pick(KINDS["bridge"][4]), _poly(_rot(xb, yb, a, _rect(span, rw * 1.4))), PAVED, amp=5)
    sc.place("car", r.integers(1, 6), slots=_along(road, 0.05 * S, (-rw / 4, rw / 4)))
    sc.place("boat", r.integers(0, 4), slots=_along(river, 0.06 * S, (-w / 4, w / 4)))
    sc.place("tree", r.integers(2, 9))
    sc.place("house", r.integers(0, 3))
    return ("building", "pool", "court")


def _farmland(sc):
    S, r = sc.S, sc.rng
    sc.ground("soil")
    nc, nr = int(r.integers(2, 4)), int(r.integers(1, 3))
    xs, ys = np.linspace(0, S, nc + 1), np.linspace(0, S, nr + 1)
    xs[1:-1] += r.uniform(-0.05, 0.05, nc - 1) * S
    ys[1:-1] += r.uniform(-0.05, 0.05, nr - 1) * S
    groups, step = {}, max(2, S // int(r.integers(40, 80)))
    for i in range(nc):
        for j in range(nr):
            c = sc.pick(KINDS["field"][4])
            b = (xs[i] + 1, ys[j] + 1, xs[i + 1] - 1, ys[j + 1] - 1)
            groups[c] = sc.area("field", c, _poly([b[:2], (b[2], b[1]), b[2:], (b[0], b[3])]), FIELD, "anchor",
                                groups.get(c), amp=14)
            stripe, vert = tuple(int(v * 0.85) for v in COLOURS[c]), r.random() < 0.5
            for s in np.arange(b[0] if vert else b[1], b[2] if vert else b[3], step):
                sc.draw.line([(s, b[1]), (s, b[3])] if vert else [(b[0], s), (b[2], s)], fill=stripe)
    cuts = [[(x, -1), (x, S + 1)] for x in xs[1:-1]] + [[(-1, y), (S + 1, y)] for y in ys[1:-1]]
    for c in cuts:
        sc.draw.line(c, fill=(120, 100, 75), width=max(1, S // 120))
    if r.random() < 0.4:
        _road(sc, cuts[0], sc.u(0.03, 0.045))
    slots = [s for c in cuts for s in _along(c, 0.05 * S, (-0.025 * S, 0.025 * S))]
    sc.place("tree", r.integers(3, 12), slots=slots, surf=(FIELD, GROUND))
    sc.place("house", r.integers(0, 3), surf=(FIELD,))
    return ("car", "building", "pool")


def _forest(sc):
    S, r = sc.S, sc.rng
    sc.ground("grass")
    edge = _wave(sc, sc.u(-0.1, 0.3), sc.u(0.02, 0.08))
    sc.area("forest", sc.pick(KINDS["forest"][4]), _poly(edge + [(1.1 * S, 1.1 * S), (-0.1 * S, 1.1 * S)]), WOOD,
            amp=20, fine=70)
    rw, road = sc.u(0.03, 0.05), _wave(sc, sc.u(0.35, 0.8), sc.u(0.03, 0.1), r.normal(0, 0.4))
    _road(sc, road, rw)
    sc.place("car", r.integers(1, 5), slots=_along(road, 0.05 * S, (-rw / 4, rw / 4)))
    sc.place("house", r.integers(0, 3), region=(0, 0, S, S / 2))
    return ("tree", "pool", "building")


def _industrial(sc):
    S, r = sc.S, sc.rng
    sc.ground("concrete")
    yr, rw = sc.u(0.3, 0.7), sc.u(0.04, 0.07)
    road = [(-0.1 * S, yr), (1.1 * S, yr + r.normal(0, 0.05) * S)]
    g = _road(sc, road, rw)
    if r.random() < 0.5:
        xr = sc.u(0.3, 0.7)
        _road(sc, [(xr, -0.1 * S), (xr, 1.1 * S)], rw, g)
    slots = _grid(0, 0, S, S, 0.3 * S)
    sc.place("building", r.integers(2, 5), slots=slots, role="anchor")
    sc.place("building", r.integers(0, 4), slots=slots)
    sc.place("car", r.integers(1, 7), slots=_along(road, 0.04 * S, (-rw / 4, rw / 4)))
    if r.random() < 0.4:
        sc.place("tank", r.integers(1, 5))
    return ("tree", "container", "pool")


def _parking(sc):
    S, r = sc.S, sc.rng
    sc.ground("urban")
    x0, y0 = sc.u(0.04, 0.2), sc.u(0.04, 0.2)
    x1, y1 = x0 + sc.u(0.55, 0.75), y0 + sc.u(0.5, 0.75)
    sc.area("parking lot", sc.pick(KINDS["parking lot"][4]), _poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)]),
            PAVED, amp=6)
    cl, cw, slots, y, k = 0.055 * S, 0.032 * S, [], y0 + 0.02 * S, 0
    while y + cl <= y1:
        for x in np.arange(x0 + 2, x1 - cw, cw):
            sc.draw.line([(x, y), (x, y + cl)], fill=(215, 215, 210))
            slots.append((x + cw / 2, y + cl / 2, math.pi / 2))
        y, k = y + cl * (1 if k % 2 == 0 else 2.1), k + 1
    n = int(len(slots) * r.uniform(0.25, 0.7))
    sc.place("car", n, slots=slots, role="anchor")
    sc.place("car", r.integers(1, max(2, n // 3)), slots=slots)
    rw = sc.u(0.035, 0.05)
    road = [(x1 + rw, -0.1 * S), (x1 + rw, 1.1 * S)] if x1 < 0.85 * S else [(-0.1 * S, y1 + rw), (1.1 * S, y1 + rw)]
    _road(sc, road, rw)
    sc.place("tree", r.integers(2, 8))
    sc.place("building", r.integers(0, 2), angle=0, jitter=0.05)
    return ("house", "pool", "court")


def _playground(sc):
    r = sc.rng
    sc.ground("grass")
    w = sc.u(0.55, 0.75)
    h, cx, cy = w * r.uniform(0.5, 0.62), sc.u(0.38, 0.62), sc.u(0.35, 0.6)
    box, lane = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), 0.11 * h
    sc.area("track", sc.pick(KINDS["track"][4]), lambda d, f: d.rounded_rectangle(box, h / 2, fill=f), SPORT, amp=8)
    inner = (box[0] + lane, box[1] + lane, box[2] - lane, box[3] - lane)
    sc.area(None, None, lambda d, f: d.rounded_rectangle(inner, h / 2 - lane, fill=f), SPORT, rgb=(80, 140, 70), amp=10)
    white = (235, 235, 230)
    sc.draw.rounded_rectangle([v + s * lane / 2 for v, s in zip(box, (1, 1, -1, -1))], h / 2 - lane / 2, outline=white)
    sc.draw.line([(cx, inner[1]), (cx, inner[3])], fill=white)
    sc.draw.ellipse((cx - h * 0.12, cy - h * 0.12, cx + h * 0.12, cy + h * 0.12), outline=white)
    sc.place("court", r.integers(1, 4), angle=sc.pick((0.0, math.pi / 2)), jitter=0.02)
    sc.place("tree", r.integers(2, 9))
    sc.place("building", r.integers(0, 2), angle=0, jitter=0.05)
    return ("car", "pool", "house")


def _pond(sc):
    S, r = sc.S, sc.rng
    sc.ground("grass")
    cx, cy, rad = sc.u(0.35, 0.65), sc.u(0.35, 0.65), sc.u(0.21, 0.3)
    ang = np.linspace(0, 2 * math.pi, 14, endpoint=False) + r.uniform(0, 0.4)
    rr = rad * (1 + r.uniform(-0.2, 0.2, 14))
    ring = lambda f: [(cx + f * q * math.cos(t), cy + f * q * math.sin(t)) for q, t in zip(rr, ang)]  # noqa: E731
    sc.area(None, None, _poly(ring(1.08)), GROUND, rgb=(80, 100, 60), amp=6)
    sc.area("lake", sc.pick(_WATER_C), _poly(ring(1.0)), WATER, amp=12, cells=4)
    sc.place("tree", r.integers(3, 12), slots=[(x, y, 0.0) for x, y in ring(1.25)] + _along(ring(1.45), 0.06 * S))
    sc.place("boat", r.integers(0, 4))
    sc.place("house", r.integers(0, 3))
    return ("car", "building", "court", "pool")


def _port(sc):
    S, r = sc.S, sc.rng
    sc.ground("urban")
    yc, quay = sc.u(0.38, 0.52), sc.u(0.1, 0.16)
    coast = [(-0.1 * S, yc), (1.1 * S, yc + r.normal(0, 0.03) * S)]
    cy = lambda x: float(np.interp(x, [coast[0][0], coast[1][0]], [coast[0][1], coast[1][1]]))  # noqa: E731
    sc.area(None, None, _poly([(p[0], p[1] - quay) for p in coast] + coast[::-1]), PAVED, rgb=(150, 150, 145), amp=6)
    sc.area("sea", sc.pick(_WATER_C), _poly(coast + [(1.1 * S, 1.1 * S), (-0.1 * S, 1.1 * S)]), WATER, amp=10, cells=4)
    k, pl, pw, g = int(r.integers(1, 4)), sc.u(0.2, 0.38), sc.u(0.04, 0.07), None
    for x in (np.arange(k) + 0.5) / k * S + r.uniform(-0.05, 0.05, k) * S:
        b = (x - pw / 2, cy(x) - 2, x + pw / 2, cy(x) + pl)
        g = sc.area("pier", sc.pick(KINDS["pier"][4]), _poly([b[:2], (b[2], b[1]), b[2:], (b[0], b[3])]), PAVED,
                    group=g, amp=6)
    sc.place("ship", r.integers(1, 4), region=(0, yc, S, S), angle=math.pi / 2, jitter=0.08)
    sc.place("boat", r.integers(0, 7), region=(0, yc, S, S))
    cs = _grid(0.02 * S, yc - quay, 0.98 * S, yc - 0.01 * S, 0.055 * S, 0.0, sy=0.03 * S)
    sc.place("container", r.integers(4, 16), slots=cs)
    sc.place("container", r.integers(0, 8), slots=cs)
    sc.place("building", r.integers(1, 4), region=(0, 0, S, yc - quay), angle=0, jitter=0.03)
    return ("tank", "car", "tree")


def _residential(sc):
    S, r = sc.S, sc.rng
    sc.ground(sc.pick(("grass", "urban")))
    rw, g, roads = sc.u(0.035, 0.05), None, []
    for y in [sc.u(0.25, 0.42), sc.u(0.68, 0.8)][: int(r.integers(1, 3))]:
        roads.append([(-0.1 * S, y), (1.1 * S, y)])
        g = _road(sc, roads[-1], rw, g)
    if r.random() < 0.6:
        xr = sc.u(0.3, 0.7)
        roads.append([(xr, -0.1 * S), (xr, 1.1 * S)])
        _road(sc, roads[-1], rw, g)
    off = rw / 2 + 0.08 * S
    hs = [s for p in roads for s in _along(p, 0.16 * S, (-off, off))]
    sc.place("house", r.integers(3, 9), slots=hs, role="anchor")
    sc.place("house", r.integers(0, 5), slots=hs)
    sc.place("tree", r.integers(3, 12))
    sc.place("car", r.integers(0, 5), slots=_along(roads[0], 0.05 * S, (-rw / 4, rw / 4)))
    sc.place("pool", r.integers(0, 4))
    return ("court", "building", "container")


def _river(sc):
    S, r = sc.S, sc.rng
    sc.ground(sc.pick(("grass", "soil")))
    w, pts = sc.u(0.08, 0.16), _wave(sc, sc.u(0.35, 0.65), sc.u(0.05, 0.15), r.normal(0, 0.3))
    _water_line(sc, pts, w)
    if r.random() < 0.4:
        y = sc.u(0.05, 0.2) if pts[6][1] > S / 2 else sc.u(0.8, 0.95)
        _road(sc, [(-0.1 * S, y), (1.1 * S, y)], sc.u(0.03, 0.045))
    sc.place("boat", r.integers(0, 5), slots=_along(pts, 0.06 * S, (-w / 4, 0, w / 4)))
    sc.place("tree", r.integers(3, 12), slots=_along(pts, 0.05 * S, (-(w / 2 + 0.05 * S), w / 2 + 0.05 * S)))
    sc.place("house", r.integers(0, 4))
    return ("car", "building", "pool")


def _storagetanks(sc):
    S, r = sc.S, sc.rng
    sc.ground(sc.pick(("concrete", "soil")))
    yr, rw = sc.u(0.15, 0.85), sc.u(0.035, 0.06)
    road = [(-0.1 * S, yr), (1.1 * S, yr)]
    _road(sc, road, rw)
    x0, x1 = sc.u(0.02, 0.25), sc.u(0.7, 0.98)
    y0, y1 = (sc.u(0.02, 0.1), yr - rw / 2 - 0.03 * S) if yr > S / 2 else (yr + rw / 2 + 0.03 * S, sc.u(0.9, 0.98))
    sc.area(None, None, _poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)]), GROUND, rgb=(172, 170, 162), amp=6)
    slots = _grid(x0, y0, x1, y1, S * KINDS["tank"][1][1] * 1.25)
    sc.place("tank", r.integers(4, 16), slots=slots, role="anchor")
    sc.place("tank", r.integers(0, 6), slots=slots)
    sc.place("building", r.integers(0, 3), angle=0, jitter=0.05)
    sc.place("car", r.integers(0, 5), slots=_along(road, 0.05 * S, (-rw / 4, rw / 4)))
    return ("tree", "container", "pool")


_LAYOUTS = {name: globals()[f"_{name}"] for name in SCENE_CLASSES}


# ------------------------------------------------------------------ captions and keywords
def _join(items):
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _sentence(s):
    return s[0].upper() + s[1:] + "."


class _Captioner:
    """Five distinct captions for a finished scene; records which groups they mention."""

    def __init__(self, sc, cls):
        self.sc, self.cls, self.r, G = sc, cls, sc.rng, sc.groups
        self.used: set[int] = set()
        kinds = [g["kind"] for g in G]
        self.multi = {k for k in kinds if kinds.count(k) > 1}
        cand = [i for i, g in enumerate(G) if g["role"] != "clutter"]
        for i in cand:  # demote some optional groups to unmentioned extras (keep one small group)
            small = [j for j in cand if KINDS[G[j]["kind"]][0] == "small" and G[j]["role"] != "extra"]
            if G[i]["role"] == "main" and self.r.random() < 0.2 and small != [i]:
                G[i]["role"] = "extra"
        self.cand = [i for i in cand if G[i]["role"] != "extra"]
        self.anchors = [i for i in self.cand if G[i]["role"] == "anchor"]
        self.others = [i for i in self.cand if i not in self.anchors] or self.anchors
        self.small = [i for i in self.cand if KINDS[G[i]["kind"]][0] == "small"]

    def box(self, i):
        b = np.asarray([self.sc.objects[j]["box"] for j in self.sc.groups[i]["idx"]], np.float64)
        return b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()

    def pick(self, pool, exclude=()):
        pool = [i for i in pool if i not in exclude]
        fresh = [i for i in pool if i not in self.used]
        return self.sc.pick(fresh or pool) if pool else None

    def np_(self, i, definite=False):
        """Noun phrase, e.g. 'three small white cars' or 'the grey road'."""
        g, r = self.sc.groups[i], self.r
        n, band = len(g["idx"]), KINDS[g["kind"]][0]
        words = []
        t = float(np.mean([self.sc.objects[j]["t"] for j in g["idx"]]))
        if band != "large" and (t > 0.72 or t < 0.28) and r.random() < 0.6:
            words.append(self.sc.pick(("large", "big") if t > 0.72 else ("small", "little")))
        if g["kind"] in self.multi or r.random() < 0.8:
            words.append(g["colour"])
        noun = self.sc.pick(KINDS[g["kind"]][5])
        words.append(noun if n == 1 else _plural(noun))
        if definite:
            det = "the" + (f" {_NUMBERS[n]}" if 1 < n <= 12 and r.random() < 0.4 else "")
        elif n == 1:
            det = "one" if band != "large" and r.random() < 0.15 else ("an" if words[0][0] in "aeiou" else "a")
        else:
            det = _NUMBERS[n] if n <= 12 else self.sc.pick(("many", "lots of", "a large number of"))
        self.used.add(i)
        return f"{det} {' '.join(words)}"

    def be(self, i):
        return "is" if len(self.sc.groups[i]["idx"]) == 1 else "are"

    def rel(self, a, b):
        """Spatial relation of group a to group b ('next to', 'on', 'to the left of', ...)."""
        S, G, objs = self.sc.S, self.sc.groups, self.sc.objects
        if all(objs[j]["on"] == b for j in G[a]["idx"]) and G[b]["kind"] in _INSIDE:
            return self.sc.pick(_INSIDE[G[b]["kind"]])
        (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = self.box(a), self.box(b)
        if max(bx0 - ax1, ax0 - bx1, by0 - ay1, ay0 - by1) < 0.06 * S:
            return self.sc.pick(("next to", "beside", "near", "close to"))
        dx, dy = (bx0 + bx1 - ax0 - ax1) / 2, (by0 + by1 - ay0 - ay1) / 2
        if abs(dx) > abs(dy):
            return self.sc.pick(("to the left of", "on the left side of", "west of") if dx > 0 else
                                ("to the right of", "on the right side of", "east of"))
        return self.sc.pick(("above", "north of") if dy > 0 else ("below", "south of"))

    def where(self, i):
        """Location of a group in the frame ('in the upper left corner', ...)."""
        x0, y0, x1, y1 = np.asarray(self.box(i)) / self.sc.S
        if x1 - x0 > 0.6 and y1 - y0 > 0.6:
            return self.sc.pick(("scattered across the image", "all over the picture"))
        col, row = min(2, int((x0 + x1) * 1.5)), min(2, int((y0 + y1) * 1.5))
        if row == 1 and col == 1:
            return self.sc.pick(("in the middle of the image", "in the centre of the picture"))
        if row != 1 and col != 1:
            return f"in the {('upper', '', 'lower')[row]} {('left', '', 'right')[col]} corner" + self.sc.pick(("", " of the image"))
        if row == 1:
            return f"on the {('left', '', 'right')[col]} side of the " + self.sc.pick(("image", "picture"))
        return f"at the {('top', '', 'bottom')[row]} of the " + self.sc.pick(("image", "picture"))

    def overview(self):
        G = self.sc.groups
        ok = [p for p in SCENE_PHRASES[self.cls]
              if all(any(G[i]["kind"] == k for i in self.cand) for k, rx in _NOUN_RE.items() if rx.search(p))]
        p = self.sc.pick(ok or ["this scene"])
        named = [i for i in self.cand if _NOUN_RE[G[i]["kind"]].search(p)]
        self.used.update(named)
        lst = [i for i in self.anchors if i not in named]
        for _ in range(int(self.r.integers(1, 3))):
            j = self.pick(self.others, lst + named)
            lst += [j] if j is not None else []
        if not lst:
            return f"this is {p}"
        j, be = _join([self.np_(i) for i in lst]), self.be(lst[0])
        return self.sc.pick((f"{p} with {j}", f"this is {p} with {j}", f"{j} can be seen {'at' if self.cls == 'bridge' else 'in'} {p}",
                             f"there {be} {j} in {p}"))

    def relation(self, pool=None):
        a = self.pick(pool or self.others)
        rank = {"small": 0, "medium": 1, "large": 2}
        big = [i for i in self.anchors + self.others
               if rank[KINDS[self.sc.groups[i]["kind"]][0]] >= rank[KINDS[self.sc.groups[a]["kind"]][0]]]
        b = self.pick(big, exclude=(a,)) if len(set(big) - {a}) else self.pick(self.cand, exclude=(a,))
        if b is None:
            return f"{self.np_(a)} {self.be(a)} {self.where(a)}"
        rel, be = self.rel(a, b), self.be(a)
        A, B = self.np_(a), self.np_(b, definite=True)
        return self.sc.pick((f"{A} {be} {rel} {B}", f"there {be} {A} {rel} {B}", f"{rel} {B} {be} {A}",
                             f"{A} {be} {self.where(a)}, {rel} {B}"))

    def small_only(self):
        s = self.pick(self.small)
        s2 = self.pick(self.small, exclude=(s,)) if self.r.random() < 0.5 else None
        verb = self.sc.pick(_VERBS[self.sc.groups[s]["kind"]]) + " " if self.sc.groups[s]["kind"] in _VERBS else ""
        be, loc = self.be(s), self.where(s)
        verb = "" if loc.startswith(("scattered", "all over")) else verb
        if s2 is not None:
            return f"{self.np_(s)} {be} {self.rel(s, s2)} {self.np_(s2, definite=True)}"
        return self.sc.pick((f"{self.np_(s)} {be} {verb}{loc}", f"there {be} {self.np_(s)} {loc}"))

    def listing(self):
        lst = []
        for _ in range(int(self.r.integers(2, 4))):
            j = self.pick(self.cand, lst)
            lst += [j] if j is not None else []
        j = _join([self.np_(i) for i in lst])
        return self.sc.pick((f"we can see {j}", f"the image shows {j}", f"{j} can be seen in the picture"))

    def captions(self):
        makers = [self.overview, self.relation, self.small_only if self.small else self.relation,
                  self.relation, self.listing]
        caps = []
        for k, make in enumerate(makers):
            for attempt in range(40):
                s = _sentence(make() if attempt < 20 else self.sc.pick(makers)())
                if s not in caps:
                    break
            else:  # practically unreachable: make the last candidate unique
                s = s[:-1] + f" in image {k}."
            caps.append(s)
        return caps


def _keywords(cls, sc, mentioned, rng):
    kw = [f"- {_CLASS_KEYWORD.get(cls, cls)}"]
    for i in rng.permutation(sorted(mentioned)):
        g = sc.groups[int(i)]
        noun = KINDS[g["kind"]][5][0]
        phrase = f"{g['colour']} {noun if len(g['idx']) == 1 else _plural(noun)}"
        if phrase not in kw:
            kw.append(phrase)
    return kw[: int(rng.integers(1, 6))]


def render_scene(rng_or_seed, size: int = 256, cls: str | None = None) -> tuple[Image.Image, dict]:
    """Draw one synthetic aerial scene and describe it.

    Args:
        rng_or_seed: a ``numpy.random.Generator`` or an int seed (same seed -> identical output).
        size: side of the square RGB canvas in pixels (>= 32).
        cls: scene class from :data:`SCENE_CLASSES`; drawn at random when None.

    Returns:
        ``(image, meta)``: a ``size x size`` RGB PIL image and a dict with ``class``, ``objects``
        (each ``{"name", "scale", "box": [x0, y0, x1, y1] (pixel edges, x1/y1 exclusive), "colour",
        "mentioned"}``), ``captions`` (5 distinct strings) and ``keywords`` (1-5 phrases).
    """
    rng = rng_or_seed if isinstance(rng_or_seed, np.random.Generator) else np.random.default_rng(rng_or_seed)
    if int(size) < 32:
        raise ValueError(f"render_scene: size must be >= 32 px, got {size}")
    if cls is None:
        cls = SCENE_CLASSES[int(rng.integers(len(SCENE_CLASSES)))]
    if cls not in _LAYOUTS:
        raise ValueError(f"render_scene: unknown scene class {cls!r}; expected one of {', '.join(SCENE_CLASSES)}")
    sc = _Scene(rng, int(size))
    sc.clutter(_LAYOUTS[cls](sc))
    op, fmap = _DIHEDRAL[int(rng.integers(8))]  # random flip/rotation: same class, new layout
    img = sc.img.transpose(op) if op is not None else sc.img
    grain = Image.fromarray(rng.integers(0, 11, (sc.S, sc.S), dtype=np.uint8))  # sensor noise, over objects too
    img = ImageChops.add(img, Image.merge("RGB", [grain] * 3), offset=-5)
    for o in sc.objects:
        (a, b), (c, d) = fmap(*o["box"][:2], sc.S), fmap(*o["box"][2:], sc.S)
        o["box"] = [min(a, c), min(b, d), max(a, c), max(b, d)]
    cap = _Captioner(sc, cls)
    captions = cap.captions()
    objects = [{"name": g["kind"], "scale": KINDS[g["kind"]][0], "box": [int(v) for v in sc.objects[j]["box"]],
                "colour": g["colour"], "mentioned": gi in cap.used}
               for gi, g in enumerate(sc.groups) for j in g["idx"]]
    return img, {"class": cls, "objects": objects, "captions": captions,
                 "keywords": _keywords(cls, sc, cap.used, rng)}


# ------------------------------------------------------------------ dataset folder
def _tokens(raw: str) -> list[str]:
    return re.findall(r"[a-z]+", raw.lower())


def _plan(n: int, seed: int, splits) -> tuple[list[str], list[str]]:
    """Balanced class per image and a split stratified by class (largest-deficit interleave)."""
    rng = np.random.default_rng([seed, 0xFFFFFFFF, 7])
    classes = [SCENE_CLASSES[int(j) % len(SCENE_CLASSES)] for j in rng.permutation(n)]
    keys = rng.random(n)
    order = sorted(range(n), key=lambda i: (classes[i], keys[i]))
    out, counts = [""] * n, [0, 0, 0]
    for pos, i in enumerate(order):
        s = max(range(3), key=lambda k: (pos + 1) * splits[k] - counts[k])
        counts[s] += 1
        out[i] = SPLITS[s]
    return classes, out


def _make_one(i: int, cls: str, seed: int, size: int, img_dir: str) -> dict:
    img, meta = render_scene(np.random.default_rng([seed, i]), size, cls)
    img.save(os.path.join(img_dir, f"{i:06d}.png"), format="PNG", compress_level=1)
    return meta


def generate(out_dir, n_images: int, size: int = 256, seed: int = 0, splits=(0.8, 0.1, 0.1),
             workers: int = 1, progress: bool = True) -> Path:
    """Render ``n_images`` scenes into ``out_dir/images/NNNNNN.png`` plus ``out_dir/dataset.json``.

    The json is Karpathy style (``images[*].filename/imgid/split/sentences[*].raw|tokens``) plus
    ``class``, ``keywords`` and ``objects`` per image and ``meta`` (size, seed, generator). Classes are
    balanced; the split is stratified by class. Output is identical for any ``workers``.

    Args:
        out_dir: folder to create or overwrite.
        n_images: number of images (>= 1).
        size: image side in pixels (>= 32).
        seed: dataset seed; image ``i`` uses ``np.random.default_rng([seed, i])``.
        splits: train/val/test fractions (non-negative, summing to 1).
        workers: processes rendering images in parallel (1: in this process).
        progress: show a tqdm bar.

    Returns:
        Path to the written ``dataset.json``.
    """
    if int(n_images) < 1:
        raise ValueError(f"generate: n_images must be >= 1, got {n_images}")
    if int(size) < 32:
        raise ValueError(f"generate: size must be >= 32 px, got {size}")
    splits = tuple(float(f) for f in splits)
    if len(splits) != 3 or min(splits) < 0 or abs(sum(splits) - 1) > 1e-6:
        raise ValueError(f"generate: splits must be 3 non-negative fractions summing to 1, got {splits}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    n, classes_split = int(n_images), _plan(int(n_images), int(seed), splits)
    classes, split_of = classes_split
    job = partial(_make_one, seed=int(seed), size=int(size), img_dir=str(out / "images"))
    if workers > 1:
        with ProcessPoolExecutor(int(workers)) as ex:
            metas = list(tqdm(ex.map(job, range(n), classes, chunksize=8), total=n, disable=not progress, desc="synth"))
    else:
        metas = [job(i, c) for i, c in tqdm(enumerate(classes), total=n, disable=not progress, desc="synth")]
    images = []
    for i, m in enumerate(metas):
        sents = [{"raw": c, "tokens": _tokens(c), "sentid": 5 * i + k, "imgid": i} for k, c in enumerate(m["captions"])]
        images.append({"filename": f"{i:06d}.png", "imgid": i, "split": split_of[i], "class": m["class"],
                       "sentences": sents, "sentids": [s["sentid"] for s in sents], "keywords": m["keywords"],
                       "objects": m["objects"]})
    doc = {"dataset": "synthetic", "images": images, "meta": {"size": int(size), "seed": int(seed), "generator": GENERATOR}}
    path, tmp = out / "dataset.json", out / "dataset.json.tmp"
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)
    return path


def build_parser() -> argparse.ArgumentParser:
    """Parser of ``rsnb synth`` (every option has a help text)."""
    p = argparse.ArgumentParser(prog="rsnb synth", description="Write a synthetic aerial image-caption dataset.")
    p.add_argument("--out", required=True, help="output folder (dataset.json + images/)")
    p.add_argument("--images", type=int, default=1000, help="number of images (default 1000)")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    p.add_argument("--splits", default="0.8,0.1,0.1", help="train,val,test fractions (default 0.8,0.1,0.1)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--plant-duplicates", type=int, default=0,
                   help="replace N test images by near copies of training images (rsnb.data.plant; default 0)")
    p.add_argument("--plant-swaps", type=int, default=0,
                   help="swap the captions of N pairs of test images of different classes (default 0)")
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m rsnb synth --out DIR --images N --size S --seed K [--workers W]``."""
    p = build_parser()
    a = p.parse_args(argv)
    try:
        splits = tuple(float(v) for v in a.splits.split(","))
    except ValueError:
        p.error(f"--splits: expected three comma-separated numbers, got {a.splits!r}")
    path = generate(a.out, a.images, a.size, a.seed, splits, a.workers, not a.no_progress)
    print(f"wrote {a.images} images to {path.parent} ({path})")
    if a.plant_duplicates or a.plant_swaps:
        from rsnb.data.plant import plant_problems

        truth = plant_problems(a.out, a.plant_duplicates, a.plant_swaps, seed=a.seed)
        print(f"planted {len(truth['duplicates'])} near-duplicates and {len(truth['swaps'])} caption swaps "
              f"(ground truth: {path.parent / 'planted.json'})")
    return 0
