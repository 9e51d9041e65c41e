"""Scene layouts, one per class of :data:`SCENE_CLASSES`: each paints the ground and the large areas,
places the objects and returns the kinds it may add as clutter."""

from __future__ import annotations

import math

import numpy as np

from rsnb.data.synthetic.kinds import (
    COLOURS,
    FIELD,
    GROUND,
    GROUNDS,
    KINDS,
    PAVED,
    SAND,
    SCENE_CLASSES,
    SPORT,
    WATER,
    WATER_COLOURS,
    WOOD,
)
from rsnb.data.synthetic.scene import along, grid, polygon, polyline, rect, rot


def _wave(sc, y0, amp, slope=0.0, n=13):
    S, r = sc.S, sc.rng
    xs = np.linspace(-0.1 * S, 1.1 * S, n)
    ys = y0 + slope * (xs - S / 2) + amp * np.sin(2 * math.pi * r.uniform(0.5, 1.5) * xs / S + r.uniform(0, 6.3))
    return [(float(x), float(y)) for x, y in zip(xs, ys)]


def _water_line(sc, pts, w):
    sc.area(None, None, polyline(pts, w + sc.u(0.02, 0.05)), GROUND, rgb=GROUNDS["sand"], amp=6)  # bank
    return sc.area("river", sc.pick(WATER_COLOURS), polyline(pts, w), WATER, amp=10, cells=4)


def _road(sc, pts, w, group=None):
    return sc.area("road", sc.pick(KINDS["road"].colours), polyline(pts, w), PAVED, "main", group, amp=8)


def _airport(sc):
    S, r = sc.S, sc.rng
    sc.ground("grass")
    y, w, a = sc.u(0.62, 0.76), sc.u(0.1, 0.14), r.normal(0, 0.04)
    sc.area("runway", sc.pick(("grey", "dark grey")), polygon(rot(S / 2, y, a, rect(1.8 * S, w))), PAVED, amp=6)
    for u in np.arange(-0.9 * S, 0.9 * S, 0.12 * S):
        sc.draw.polygon(rot(S / 2, y, a, rect(0.06 * S, max(1, w * 0.06), du=u)), fill=(230,) * 3)
    x0, x1, ya = sc.u(0.03, 0.2), sc.u(0.8, 0.97), y - w / 2 - sc.u(0.07, 0.1)
    yt = ya - sc.u(0.24, 0.3)
    sc.area(None, None, polygon([(x0, yt), (x1, yt), (x1, ya), (x0, ya)]), PAVED, rgb=(165, 165, 160), amp=6)
    xt = sc.u(0.3, 0.7)
    sc.area(None, None, polyline([(xt, ya - 2), (xt, y)], 0.03 * S), PAVED, rgb=(150, 150, 146), amp=4)
    sc.place("plane", r.integers(1, 5), slots=grid(x0, yt, x1, ya, 0.25 * S, math.pi / 2, sy=ya - yt))
    sc.place("building", 1, region=(x0, 0, x1, yt), angle=0, jitter=0.02)
    sc.place("car", r.integers(2, 7), region=(x0, yt, x1, ya))
    return ("tree", "house", "pool")


def _bareland(sc):
    S, r = sc.S, sc.rng
    sc.area("bareland", sc.pick(KINDS["bareland"].colours), polygon([(0, 0), (S, 0), (S, S), (0, S)]), GROUND,
            amp=30, cells=10)
    rw, road = sc.u(0.03, 0.05), _wave(sc, sc.u(0.2, 0.8), sc.u(0, 0.1), r.normal(0, 0.3))
    if r.random() < 0.7:
        _road(sc, road, rw)
        sc.place("car", r.integers(1, 4), slots=along(road, 0.05 * S, (-rw / 4, rw / 4)))
    sc.place("tree", r.integers(1, 6))
    sc.place("building", r.integers(0, 2), angle=0, jitter=0.3)
    return ("house", "tank", "container")


def _beach(sc):
    S, r = sc.S, sc.rng
    sc.ground(sc.pick(("grass", "urban")))
    coast, sandw = _wave(sc, sc.u(0.55, 0.72), sc.u(0.01, 0.05)), sc.u(0.16, 0.3)
    inland = [(x, y - sandw + r.normal(0, 0.01 * S)) for x, y in coast]
    sc.area("beach", sc.pick(KINDS["beach"].colours), polygon(inland + coast[::-1]), SAND, amp=12)
    sc.area("sea", sc.pick(WATER_COLOURS), polygon(coast + [(1.1 * S, 1.1 * S), (-0.1 * S, 1.1 * S)]), WATER, amp=14, cells=4)
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
    road = rot(xb, yb, a, [(-0.8 * S, 0), (0.8 * S, 0)])
    _road(sc, road, rw)
    span = w * 1.3 + 0.2 * S
    sc.draw.polygon(rot(xb + rw / 2, yb + rw / 2, a, rect(span * 0.8, rw * 1.3)), fill=(30, 42, 48))
    sc.area("bridge", sc.pick(KINDS["bridge"].colours), polygon(rot(xb, yb, a, rect(span, rw * 1.4))), PAVED, amp=5)
    sc.place("car", r.integers(1, 6), slots=along(road, 0.05 * S, (-rw / 4, rw / 4)))
    sc.place("boat", r.integers(0, 4), slots=along(river, 0.06 * S, (-w / 4, w / 4)))
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
            c = sc.pick(KINDS["field"].colours)
            b = (xs[i] + 1, ys[j] + 1, xs[i + 1] - 1, ys[j + 1] - 1)
            groups[c] = sc.area("field", c, polygon([b[:2], (b[2], b[1]), b[2:], (b[0], b[3])]), FIELD, "anchor",
                                groups.get(c), amp=14)
            stripe, vert = tuple(int(v * 0.85) for v in COLOURS[c]), r.random() < 0.5
            for s in np.arange(b[0] if vert else b[1], b[2] if vert else b[3], step):
                sc.draw.line([(s, b[1]), (s, b[3])] if vert else [(b[0], s), (b[2], s)], fill=stripe)
    cuts = [[(x, -1), (x, S + 1)] for x in xs[1:-1]] + [[(-1, y), (S + 1, y)] for y in ys[1:-1]]
    for c in cuts:
        sc.draw.line(c, fill=(120, 100, 75), width=max(1, S // 120))
    if r.random() < 0.4:
        _road(sc, cuts[0], sc.u(0.03, 0.045))
    slots = [s for c in cuts for s in along(c, 0.05 * S, (-0.025 * S, 0.025 * S))]
    sc.place("tree", r.integers(3, 12), slots=slots, surf=(FIELD, GROUND))
    sc.place("house", r.integers(0, 3), surf=(FIELD,))
    return ("car", "building", "pool")


def _forest(sc):
    S, r = sc.S, sc.rng
    sc.ground("grass")
    edge = _wave(sc, sc.u(-0.1, 0.3), sc.u(0.02, 0.08))
    sc.area("forest", sc.pick(KINDS["forest"].colours), polygon(edge + [(1.1 * S, 1.1 * S), (-0.1 * S, 1.1 * S)]), WOOD,
            amp=20, fine=70)
    rw, road = sc.u(0.03, 0.05), _wave(sc, sc.u(0.35, 0.8), sc.u(0.03, 0.1), r.normal(0, 0.4))
    _road(sc, road, rw)
    sc.place("car", r.integers(1, 5), slots=along(road, 0.05 * S, (-rw / 4, rw / 4)))
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
    slots = grid(0, 0, S, S, 0.3 * S)
    sc.place("building", r.integers(2, 5), slots=slots, role="anchor")
    sc.place("building", r.integers(0, 4), slots=slots)
    sc.place("car", r.integers(1, 7), slots=along(road, 0.04 * S, (-rw / 4, rw / 4)))
    if r.random() < 0.4:
        sc.place("tank", r.integers(1, 5))
    return ("tree", "container", "pool")


def _parking(sc):
    S, r = sc.S, sc.rng
    sc.ground("urban")
    x0, y0 = sc.u(0.04, 0.2), sc.u(0.04, 0.2)
    x1, y1 = x0 + sc.u(0.55, 0.75), y0 + sc.u(0.5, 0.75)
    sc.area("parking lot", sc.pick(KINDS["parking lot"].colours), polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)]),
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
    sc.area("track", sc.pick(KINDS["track"].colours), lambda d, f: d.rounded_rectangle(box, h / 2, fill=f), SPORT, amp=8)
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
    sc.area(None, None, polygon(ring(1.08)), GROUND, rgb=(80, 100, 60), amp=6)
    sc.area("lake", sc.pick(WATER_COLOURS), polygon(ring(1.0)), WATER, amp=12, cells=4)
    sc.place("tree", r.integers(3, 12), slots=[(x, y, 0.0) for x, y in ring(1.25)] + along(ring(1.45), 0.06 * S))
    sc.place("boat", r.integers(0, 4))
    sc.place("house", r.integers(0, 3))
    return ("car", "building", "court", "pool")


def _port(sc):
    S, r = sc.S, sc.rng
    sc.ground("urban")
    yc, quay = sc.u(0.38, 0.52), sc.u(0.1, 0.16)
    coast = [(-0.1 * S, yc), (1.1 * S, yc + r.normal(0, 0.03) * S)]
    cy = lambda x: float(np.interp(x, [coast[0][0], coast[1][0]], [coast[0][1], coast[1][1]]))  # noqa: E731
    sc.area(None, None, polygon([(p[0], p[1] - quay) for p in coast] + coast[::-1]), PAVED, rgb=(150, 150, 145), amp=6)
    sc.area("sea", sc.pick(WATER_COLOURS), polygon(coast + [(1.1 * S, 1.1 * S), (-0.1 * S, 1.1 * S)]), WATER, amp=10, cells=4)
    k, pl, pw, g = int(r.integers(1, 4)), sc.u(0.2, 0.38), sc.u(0.04, 0.07), None
    for x in (np.arange(k) + 0.5) / k * S + r.uniform(-0.05, 0.05, k) * S:
        b = (x - pw / 2, cy(x) - 2, x + pw / 2, cy(x) + pl)
        g = sc.area("pier", sc.pick(KINDS["pier"].colours), polygon([b[:2], (b[2], b[1]), b[2:], (b[0], b[3])]), PAVED,
                    group=g, amp=6)
    sc.place("ship", r.integers(1, 4), region=(0, yc, S, S), angle=math.pi / 2, jitter=0.08)
    sc.place("boat", r.integers(0, 7), region=(0, yc, S, S))
    cs = grid(0.02 * S, yc - quay, 0.98 * S, yc - 0.01 * S, 0.055 * S, 0.0, sy=0.03 * S)
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
    hs = [s for p in roads for s in along(p, 0.16 * S, (-off, off))]
    sc.place("house", r.integers(3, 9), slots=hs, role="anchor")
    sc.place("house", r.integers(0, 5), slots=hs)
    sc.place("tree", r.integers(3, 12))
    sc.place("car", r.integers(0, 5), slots=along(roads[0], 0.05 * S, (-rw / 4, rw / 4)))
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
    sc.place("boat", r.integers(0, 5), slots=along(pts, 0.06 * S, (-w / 4, 0, w / 4)))
    sc.place("tree", r.integers(3, 12), slots=along(pts, 0.05 * S, (-(w / 2 + 0.05 * S), w / 2 + 0.05 * S)))
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
    sc.area(None, None, polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)]), GROUND, rgb=(172, 170, 162), amp=6)
    slots = grid(x0, y0, x1, y1, S * KINDS["tank"].length[1] * 1.25)
    sc.place("tank", r.integers(4, 16), slots=slots, role="anchor")
    sc.place("tank", r.integers(0, 6), slots=slots)
    sc.place("building", r.integers(0, 3), angle=0, jitter=0.05)
    sc.place("car", r.integers(0, 5), slots=along(road, 0.05 * S, (-rw / 4, rw / 4)))
    return ("tree", "container", "pool")


LAYOUTS = {name: globals()[f"_{name}"] for name in SCENE_CLASSES}
