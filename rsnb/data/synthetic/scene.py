"""One synthetic scene being drawn: canvas, label map of surfaces, objects and their groups, plus the
geometry helpers the layouts use and the eight dihedral transforms applied at the end."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from rsnb.data.synthetic.kinds import COLOURS, GROUND, GROUNDS, KINDS

# PIL transpose ops and the matching map of continuous canvas points (x, y) -> (x', y')
DIHEDRAL = ((None, lambda x, y, s: (x, y)),
             (Image.Transpose.FLIP_LEFT_RIGHT, lambda x, y, s: (s - x, y)),
             (Image.Transpose.FLIP_TOP_BOTTOM, lambda x, y, s: (x, s - y)),
             (Image.Transpose.ROTATE_90, lambda x, y, s: (y, s - x)),
             (Image.Transpose.ROTATE_180, lambda x, y, s: (s - x, s - y)),
             (Image.Transpose.ROTATE_270, lambda x, y, s: (s - y, x)),
             (Image.Transpose.TRANSPOSE, lambda x, y, s: (y, x)),
             (Image.Transpose.TRANSVERSE, lambda x, y, s: (s - y, s - x)))



def rot(cx, cy, a, pts):
    """Rotate local (u, v) points by angle ``a`` and move them to (cx, cy); returns [(x, y), ...]."""
    c, s = math.cos(a), math.sin(a)
    return [(cx + u * c - v * s, cy + u * s + v * c) for u, v in pts]


def rect(length, width, du=0.0, dv=0.0):
    h, w = length / 2, width / 2
    return [(du - h, dv - w), (du + h, dv - w), (du + h, dv + w), (du - h, dv + w)]


def polygon(pts):
    pts = [tuple(map(float, p)) for p in pts]
    return lambda d, f: d.polygon(pts, fill=f)


def polyline(pts, width):
    pts = [tuple(map(float, p)) for p in pts]
    return lambda d, f: d.line(pts, fill=f, width=max(1, round(width)), joint="curve")


def along(pts, step, offsets=(0.0,)):
    """Slots (x, y, angle) every ``step`` px along a polyline, at the given lateral offsets."""
    out = []
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        a, n = math.atan2(y1 - y0, x1 - x0), math.hypot(x1 - x0, y1 - y0)
        for s in np.arange(step / 2, n, step):
            out += [(x0 + math.cos(a) * s - math.sin(a) * o, y0 + math.sin(a) * s + math.cos(a) * o, a)
                    for o in offsets]
    return out


def grid(x0, y0, x1, y1, step, a=0.0, sy=None):
    sy = sy or step
    return [(x, y, a) for y in np.arange(y0 + sy / 2, y1 - sy / 4, sy) for x in np.arange(x0 + step / 2, x1 - step / 4, step)]


class Scene:
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
        spec = KINDS[kind]
        (lo, hi), asp, surfs, cols = spec.length, spec.aspect, spec.surfaces, spec.colours
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
            pts = rot(cx, cy, a, rect(ln, max(1.5, ln * asp)))
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
            d.polygon(rot(cx + du, cy + du, a, pts), fill=fill)

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
                d.line(rot(cx, cy, a, [(-ln / 2, 0), (-ln * 1.4, 0)]), fill=(200, 210, 215),
                       width=max(1, round(w / 2)))
            poly(hull, shadow, o / 2)
            poly(hull, rgb)
            if kind == "ship":
                poly(rect(ln * 0.14, w * 0.8, du=-ln * 0.33), light)
                for k in range(3):
                    poly(rect(ln * 0.12, w * 0.6, du=ln * (k * 0.17 - 0.15)), self.pick(list(COLOURS.values())))
        elif kind == "plane":
            parts = [rect(ln, ln * 0.12), [(-ln * 0.02, 0), (ln * 0.12, -ln / 2), (ln * 0.2, -ln / 2), (ln * 0.14, 0),
                                            (ln * 0.2, ln / 2), (ln * 0.12, ln / 2)], rect(ln * 0.1, ln * 0.38, du=-ln * 0.42)]
            for p in parts:
                poly(p, shadow, o)
            for p in parts:
                poly(p, rgb)
        else:  # rectangular kinds: car, container, pool, house, building, court
            if kind in ("house", "building"):
                poly(rect(ln, w), shadow, o)
            poly(rect(ln, w), rgb)
            if kind == "car":
                poly(rect(ln * 0.45, w * 0.7, du=-ln * 0.05), dark)
            elif kind == "house":
                poly(rect(ln, w / 2, dv=w / 4), dark)
            elif kind == "building":
                poly(rect(ln * 0.86, w * 0.8), light)
            elif kind in ("court", "pool", "container") and w >= 4:
                d.polygon(rot(cx, cy, a, rect(ln, w)), outline=(235, 235, 235)
                          if kind != "container" else dark)
                if kind == "court":
                    d.line(rot(cx, cy, a, [(0, -w / 2), (0, w / 2)]), fill=(235, 235, 235))

    def clutter(self, kinds):
        """Add 1-2 groups of kinds absent from the scene; no caption will mention them."""
        present = {g["kind"] for g in self.groups}
        cand = [k for k in kinds if k not in present]
        for i in self.rng.permutation(len(cand))[: int(self.rng.integers(1, 3))]:
            self.place(cand[i], self.rng.integers(1, 5), role="clutter")

