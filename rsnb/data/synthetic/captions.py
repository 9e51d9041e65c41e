"""Captions and keywords of a finished scene: five distinct sentences built from its own object list
(counts, colours, sizes, spatial relations) and 1-5 RSITMD-style keyword phrases."""

from __future__ import annotations

import numpy as np

from rsnb.data.synthetic.kinds import KINDS, NOUN_RE, plural

#: how a caption may name the whole scene, per class
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
CLASS_KEYWORD = {"storagetanks": "storage tanks", "parking": "parking lot",
                 "industrial": "industrial area", "residential": "residential area"}
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
           "eleven", "twelve")
VERBS = {"car": ("parked",), "boat": ("moored", "anchored"), "tree": ("growing", "planted"),
         "container": ("stacked",), "umbrella": ("set up",)}
INSIDE = {"river": ("on", "in"), "sea": ("on", "in"), "lake": ("on", "in"), "road": ("on",),
          "parking lot": ("in",), "runway": ("on",), "field": ("in",), "forest": ("in",),
          "bareland": ("on",), "beach": ("on",), "bridge": ("on",), "pier": ("on",)}


def join_words(items):
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def sentence(s):
    """Capitalise and end with a full stop."""
    return s[0].upper() + s[1:] + "."


class Captioner:
    """Five distinct captions for a finished scene; records which groups they mention."""

    def __init__(self, sc, cls):
        self.sc, self.cls, self.r, G = sc, cls, sc.rng, sc.groups
        self.used: set[int] = set()
        kinds = [g["kind"] for g in G]
        self.multi = {k for k in kinds if kinds.count(k) > 1}
        cand = [i for i, g in enumerate(G) if g["role"] != "clutter"]
        for i in cand:  # demote some optional groups to unmentioned extras (keep one small group)
            small = [j for j in cand if KINDS[G[j]["kind"]].band == "small" and G[j]["role"] != "extra"]
            if G[i]["role"] == "main" and self.r.random() < 0.2 and small != [i]:
                G[i]["role"] = "extra"
        self.cand = [i for i in cand if G[i]["role"] != "extra"]
        self.anchors = [i for i in self.cand if G[i]["role"] == "anchor"]
        self.others = [i for i in self.cand if i not in self.anchors] or self.anchors
        self.small = [i for i in self.cand if KINDS[G[i]["kind"]].band == "small"]

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
        n, band = len(g["idx"]), KINDS[g["kind"]].band
        words = []
        t = float(np.mean([self.sc.objects[j]["t"] for j in g["idx"]]))
        if band != "large" and (t > 0.72 or t < 0.28) and r.random() < 0.6:
            words.append(self.sc.pick(("large", "big") if t > 0.72 else ("small", "little")))
        if g["kind"] in self.multi or r.random() < 0.8:
            words.append(g["colour"])
        noun = self.sc.pick(KINDS[g["kind"]].nouns)
        words.append(noun if n == 1 else plural(noun))
        if definite:
            det = "the" + (f" {NUMBERS[n]}" if 1 < n <= 12 and r.random() < 0.4 else "")
        elif n == 1:
            det = "one" if band != "large" and r.random() < 0.15 else ("an" if words[0][0] in "aeiou" else "a")
        else:
            det = NUMBERS[n] if n <= 12 else self.sc.pick(("many", "lots of", "a large number of"))
        self.used.add(i)
        return f"{det} {' '.join(words)}"

    def be(self, i):
        return "is" if len(self.sc.groups[i]["idx"]) == 1 else "are"

    def rel(self, a, b):
        """Spatial relation of group a to group b ('next to', 'on', 'to the left of', ...)."""
        S, G, objs = self.sc.S, self.sc.groups, self.sc.objects
        if all(objs[j]["on"] == b for j in G[a]["idx"]) and G[b]["kind"] in INSIDE:
            return self.sc.pick(INSIDE[G[b]["kind"]])
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
              if all(any(G[i]["kind"] == k for i in self.cand) for k, rx in NOUN_RE.items() if rx.search(p))]
        p = self.sc.pick(ok or ["this scene"])
        named = [i for i in self.cand if NOUN_RE[G[i]["kind"]].search(p)]
        self.used.update(named)
        lst = [i for i in self.anchors if i not in named]
        for _ in range(int(self.r.integers(1, 3))):
            j = self.pick(self.others, lst + named)
            lst += [j] if j is not None else []
        if not lst:
            return f"this is {p}"
        j, be = join_words([self.np_(i) for i in lst]), self.be(lst[0])
        return self.sc.pick((f"{p} with {j}", f"this is {p} with {j}", f"{j} can be seen {'at' if self.cls == 'bridge' else 'in'} {p}",
                             f"there {be} {j} in {p}"))

    def relation(self, pool=None):
        a = self.pick(pool or self.others)
        rank = {"small": 0, "medium": 1, "large": 2}
        big = [i for i in self.anchors + self.others
               if rank[KINDS[self.sc.groups[i]["kind"]].band] >= rank[KINDS[self.sc.groups[a]["kind"]].band]]
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
        verb = self.sc.pick(VERBS[self.sc.groups[s]["kind"]]) + " " if self.sc.groups[s]["kind"] in VERBS else ""
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
        j = join_words([self.np_(i) for i in lst])
        return self.sc.pick((f"we can see {j}", f"the image shows {j}", f"{j} can be seen in the picture"))

    def captions(self):
        makers = [self.overview, self.relation, self.small_only if self.small else self.relation,
                  self.relation, self.listing]
        caps = []
        for k, make in enumerate(makers):
            for attempt in range(40):
                s = sentence(make() if attempt < 20 else self.sc.pick(makers)())
                if s not in caps:
                    break
            else:  # practically unreachable: make the last candidate unique
                s = s[:-1] + f" in image {k}."
            caps.append(s)
        return caps


def keywords_of(cls, sc, mentioned, rng):
    kw = [f"- {CLASS_KEYWORD.get(cls, cls)}"]
    for i in rng.permutation(sorted(mentioned)):
        g = sc.groups[int(i)]
        noun = KINDS[g["kind"]].nouns[0]
        phrase = f"{g['colour']} {noun if len(g['idx']) == 1 else plural(noun)}"
        if phrase not in kw:
            kw.append(phrase)
    return kw[: int(rng.integers(1, 6))]
