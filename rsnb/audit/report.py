"""Files written by ``python -m rsnb audit``: CSVs, ``summary.json``, ``report.md``, figures, and the
de-duplicated Karpathy json of ``--dedupe``."""

from __future__ import annotations

import csv
import json
import os
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from rsnb.audit.captions import normalise
from rsnb.data.corpus import Corpus
from rsnb.data.dataset import load_image


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    """Write dict rows (lists become ``;``-joined) with a header; an empty list writes the header only."""
    columns = columns or (list(rows[0]) if rows else ["empty"])
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ";".join(map(str, v)) if isinstance(v, (list, tuple)) else v for k, v in r.items()})
    return path


def duplicates_to_drop(image_pairs: list[dict], against_pairs: list[dict], split: str = "test",
                       within: str = "train") -> dict[int, str]:
    """Images of ``split`` with a confirmed near-duplicate in ``within`` (or anywhere in the other dataset).

    Returns:
        ``{image index: "file of the partner (split)"}`` of the audited dataset.
    """
    drop: dict[int, str] = {}
    for r in image_pairs:
        if not r["confirmed"]:
            continue
        for me, other in (("a", "b"), ("b", "a")):
            if r[f"split_{me}"] == split and r[f"split_{other}"] == within:
                drop.setdefault(r[f"index_{me}"], f"{r[f'file_{other}']} ({within})")
    for r in against_pairs:
        if r["confirmed"] and r["split_a"] == split:
            drop.setdefault(r["index_a"], f"{r['dataset_b']}:{r['file_b']} ({r['split_b']})")
    return drop


def write_karpathy(corpus: Corpus, path: str | Path, drop=()) -> Path:
    """Write a corpus (minus the image indices in ``drop``) as a Karpathy-style json.

    Image folders are stored as ``filepath`` relative to the json, so
    :func:`rsnb.data.formats.load_corpus` reads the file back with its images; blank captions
    (a corpus read with ``blank="keep"``) stay in place.
    """
    path = Path(path)
    drop = set(drop)
    images = []
    for i, r in enumerate(corpus.images):
        if i in drop:
            continue
        sents = [{"raw": c, "tokens": normalise(c).split(), "imgid": i, "sentid": 5 * i + k}
                 for k, c in enumerate(r.captions)]
        entry = {"filename": r.filename, "filepath": os.path.relpath(Path(r.path).parent, path.parent),
                 "imgid": i, "split": r.split, "class": r.cls, "sentences": sents,
                 "sentids": [s["sentid"] for s in sents]}
        if r.keywords:
            entry["keywords"] = list(r.keywords)
        for k, v in (r.meta or {}).items():
            if k != "dataset":
                entry[k] = v
        images.append(entry)
    doc = {"dataset": corpus.name, "images": images,
           "meta": {"deduplicated_by": "rsnb audit --dedupe", "dropped": len(drop)}}
    path.write_text(json.dumps(doc))
    return path


# ------------------------------------------------------------------------------------ figures
def save(fig, path: Path) -> Path | None:
    """Write a figure (None: nothing to draw) as PNG and close it."""
    if fig is None:
        return None
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_pairs(rows: list[dict], corpora: dict[str, Corpus], n: int = 8):
    """Confirmed near-duplicate pairs side by side (None when there are none)."""
    shown = [r for r in rows if r["confirmed"]][:n]
    if not shown:
        return None
    fig, axes = plt.subplots(len(shown), 2, figsize=(5.2, 2.6 * len(shown)), squeeze=False)
    for ax_row, r in zip(axes, shown):
        for ax, side in zip(ax_row, ("a", "b")):
            rec = corpora[r[f"dataset_{side}"]].images[r[f"index_{side}"]]
            ax.imshow(load_image(rec.path))
            ax.set_title(f"{r[f'dataset_{side}']}/{r[f'split_{side}']}: {rec.filename}", fontsize=7)
            ax.axis("off")
        ax_row[1].text(0, -0.16, f"{r['transform']}, pHash {r.get('phash')}, dHash {r.get('dhash')}, "
                                 f"corr {r['corr']:.2f}", transform=ax_row[1].transAxes, fontsize=7)
    return fig


def plot_distances(rows: list[dict], hash: str, threshold: int):
    """Hash distances of candidate pairs, confirmed vs rejected, and their thumbnail correlation."""
    if not rows:
        return None
    d = np.array([r[hash] for r in rows])
    c = np.array([r["corr"] for r in rows])
    ok = np.array([r["confirmed"] for r in rows])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
    bins = np.arange(-0.5, threshold + 1.5, 1)
    a1.hist([d[ok], d[~ok]], bins=bins, stacked=True, label=["confirmed", "rejected"], color=["C3", "C7"])
    a1.set_xlabel(f"{hash} Hamming distance (best of 8 transforms)")
    a1.set_ylabel("pairs")
    a1.legend()
    a2.scatter(d[~ok], c[~ok], s=6, color="C7", label="rejected")
    a2.scatter(d[ok], c[ok], s=10, color="C3", label="confirmed")
    a2.set_xlabel(f"{hash} distance")
    a2.set_ylabel("thumbnail correlation")
    a2.legend()
    return fig


def plot_distinct_captions(summaries: dict[str, dict]):
    """Share of images with 1..5 distinct captions, per dataset (caption summaries by name)."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    width = 0.8 / max(1, len(summaries))
    for k, (name, s) in enumerate(summaries.items()):
        hist = {int(key): v for key, v in s["distinct_per_image"].items()}
        xs = np.arange(0, max(hist) + 1)
        share = [100.0 * hist.get(int(x), 0) / max(1, s["images"]) for x in xs]
        ax.bar(xs + k * width - 0.4 + width / 2, share, width, label=name)
    ax.set_xlabel("distinct captions per image (after normalisation)")
    ax.set_ylabel("% of images")
    ax.legend()
    return fig


def plot_suspicious(rows: list[dict], n: int = 6):
    """Suspicious captions with their own image and the image they ranked first."""
    shown = rows[:n]
    if not shown:
        return None
    fig, axes = plt.subplots(len(shown), 2, figsize=(6, 2.9 * len(shown)), squeeze=False)
    for (a1, a2), r in zip(axes, shown):
        for ax, key, title in ((a1, "path", f"own image {r['file']} ({r['class']})"),
                               (a2, "top1_path", f"ranked first: {r['top1_file']} ({r['top1_class']})")):
            try:
                ax.imshow(load_image(r[key]))
            except (OSError, ValueError):
                ax.text(0.5, 0.5, "image missing", ha="center")
            ax.set_title(title, fontsize=7)
            ax.axis("off")
        a1.text(0, -0.2, "\n".join(textwrap.wrap(f"rank {r['rank']}: \"{r['caption']}\"", 80)),
                transform=a1.transAxes, fontsize=7, va="top")
    return fig


# ------------------------------------------------------------------------------------ markdown
def _table(rows: list[dict], columns: list[str], limit: int = 10) -> str:
    if not rows:
        return "_none_\n"
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows[:limit]:
        cells = [r.get(c, "") for c in columns]
        out.append("| " + " | ".join(str(";".join(map(str, v)) if isinstance(v, list) else v).replace("|", "/")
                                     for v in cells) + " |")
    if len(rows) > limit:
        out.append(f"\n({len(rows) - limit} more in the CSV)")
    return "\n".join(out) + "\n"


def leak_sentences(summary: dict, within: bool) -> list[str]:
    """"x % of test images have a near-duplicate in train"-style lines from an image summary."""
    lines = []
    for row in summary["leaks"]:
        if within and row["in"] == row["split"]:
            what = f"another {row['split']} image"
        else:
            what = row["in"].replace("against:", "the other dataset's ").replace("against", "the other dataset")
        if row["images"]:
            lines.append(f"{row['percent']:.1f} % of {row['split']} images ({row['with_duplicate']} of "
                         f"{row['images']}) have a near-duplicate in {what}")
    return lines


def markdown(result: dict) -> str:
    """The ``report.md`` text of one audit (``result`` as built by :func:`rsnb.audit.cli.run_audit`)."""
    md = [f"# Dataset audit: {result['name']}", "", f"Command: `{result['command']}`", ""]
    if result["summary"].get("missing_images"):
        md += [f"**{result['summary']['missing_images']} image files are missing or unreadable** "
               "(`images_missing.csv`); the image checks cover the readable ones only.", ""]
    for key, title in (("images", "Near-duplicate images within the dataset"),
                       ("against_images", "Near-duplicate images shared with the other dataset")):
        s = result["summary"].get(key)
        if not s:
            continue
        md += [f"## {title}", "", f"{s['hashed']} images hashed"
               + (f" (and {s['hashed_against']} of the other dataset)" if s.get("hashed_against") is not None else "")
               + f"; candidates within {s['threshold']} bits of {s['hash']} under one of the 8 rotations/flips, "
               f"confirmed when the other hash is within {s['other_threshold']} bits and the thumbnail correlation "
               f"is >= {s['min_corr']}: {s['candidate_pairs']} candidates, {s['confirmed_pairs']} confirmed.", ""]
        md += [f"- {line}" for line in leak_sentences(s, key == "images")] + [""]
        md += [_table([r for r in result[key] if r["confirmed"]],
                      ["file_a", "split_a", "file_b", "split_b", "transform", s["hash"], "corr"]), ""]
    for key, title in (("captions", "Captions"), ("against_captions", "Captions of the other dataset")):
        c = result.get(key)
        if not c:
            continue
        s = c["summary"]
        md += [f"## {title}", "", f"- {s['captions']} captions of {s['images']} images; "
               f"{s['unique_percent']:.1f} % unique after normalisation ({s['unique_captions']} distinct)",
               f"- blank: {s['blank']} (in {s['images_with_blank']} images); near-empty (< {s['min_words']} words): "
               f"{s['near_empty']}",
               f"- images whose captions are all one sentence: {s['identical_caption_images']} "
               f"({s['identical_caption_percent']:.1f} %); distinct captions per image: {s['distinct_per_image']}",
               f"- sentences used more than once: {s['duplicate_groups']}, covering "
               f"{s['captions_in_duplicate_groups']} captions",
               "- shared by images of different classes: " + ("no classes known" if s["cross_class_groups"] is None
                                                            else f"{s['cross_class_groups']} sentences, "
                                                            f"{s['cross_class_captions']} captions"),
               "- near-duplicate pairs (word-set Jaccard >= " + (f"{s['jaccard']}): {s['near_duplicate_pairs']}"
                                                               if s["jaccard"] else "off)"), ""]
        md += ["Most repeated sentences:", "", _table(c["groups"], ["caption", "count", "images", "classes"], 8)]
        if c["cross_class"]:
            md += ["Sentences shared across classes:", "", _table(c["cross_class"], ["caption", "count", "classes"], 8)]
        if c["short"]:
            md += ["Blank and near-empty captions:", "", _table(c["short"], ["file", "split", "position", "kind", "caption"])]
    if result.get("suspicious") is not None:
        s = result["summary"]["suspicious"]
        md += ["## Suspicious pairs", "", f"Run `{s['run']}` on the {s['split']} split ({s['images']} images): "
               f"{s['suspicious']} of {s['captions']} captions ({s['suspicious_percent']:.1f} %) rank their own image "
               f"beyond {s['threshold']}; {s['images_all_suspicious']} images have every caption beyond it; "
               f"median rank {s['median_rank']:.0f}; mR {s['metrics']['mR']:.2f}.", "",
               _table(result["suspicious"], ["rank", "file", "class", "top1_file", "top1_class", "caption"])]
    if result.get("dedupe"):
        d = result["dedupe"]
        md += ["## De-duplicated split", "", f"`{d['json']}`: {d['dropped']} test images dropped "
               f"(listed in `{d['csv']}`).", ""]
    if result.get("figures"):
        md += ["## Figures", ""] + [f"![{Path(p).stem}]({Path(p).relative_to(result['out'])})" for p in result["figures"]]
    return "\n".join(md) + "\n"
