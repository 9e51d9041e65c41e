"""``python -m rsnb audit``: the dataset audit as one command.

Examples::

    python -m rsnb audit --data /data/rsitmd --out audit/rsitmd
    python -m rsnb audit --data /data/rsitmd --against /data/rsicd --out audit/rsitmd-vs-rsicd --dedupe
    python -m rsnb audit --data /data/rsitmd --run runs/rsitmd --out audit/rsitmd
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path


def add_parser(sub) -> None:
    """Register the ``audit`` sub-command on an argparse sub-parser collection."""
    a = sub.add_parser("audit", help="near-duplicate images, caption problems and suspicious pairs of a dataset")
    a.add_argument("--data", required=True, help="dataset json / folder / precomp folder to audit")
    a.add_argument("--image-dir", help="image folder of --data when not beside the json")
    a.add_argument("--against", help="second dataset: near-duplicate images between the two")
    a.add_argument("--against-image-dir", help="image folder of --against")
    a.add_argument("--run", help="trained run folder: list captions of --data that rank their own image far down")
    a.add_argument("--split", default="test", choices=("train", "val", "test"), help="split scored with --run")
    a.add_argument("--rank-threshold", type=int, help="suspicious when the own image ranks beyond this (default N/2)")
    a.add_argument("--out", required=True, help="output folder (CSVs, summary.json, report.md, figures/)")
    a.add_argument("--hash", default="phash", choices=("phash", "dhash"), help="hash searched (default phash)")
    a.add_argument("--threshold", type=int, default=12, help="Hamming radius of the searched hash (default 12 of 64)")
    a.add_argument("--other-threshold", type=int, default=14, help="radius on the other hash to confirm (default 14)")
    a.add_argument("--min-corr", type=float, default=0.8, help="thumbnail correlation to confirm (default 0.8)")
    a.add_argument("--jaccard", type=float, default=0.8, help="near-duplicate captions: word-set Jaccard (0: off)")
    a.add_argument("--min-words", type=int, default=3, help="captions with fewer words are near-empty (default 3)")
    a.add_argument("--no-images", action="store_true", help="skip the image checks (captions only)")
    a.add_argument("--dedupe", action="store_true",
                   help="write dataset_dedup.json without the test images that have a near-duplicate in train")
    a.add_argument("--workers", type=int, default=1, help="processes hashing images (default 1)")
    a.add_argument("--device", default="auto", help="device for --run (auto, cpu, cuda ...)")
    a.add_argument("--no-progress", action="store_true", help="hide progress bars")
    a.set_defaults(fn=main)


def _check(a) -> None:
    from rsnb.errors import ConfigError as Bad

    if not 0 <= a.threshold <= 64 or not 0 <= a.other_threshold <= 64:
        raise Bad(f"--threshold/--other-threshold: a Hamming distance in 0..64, got {a.threshold}/{a.other_threshold}")
    if not -1 <= a.min_corr <= 1:
        raise Bad(f"--min-corr: a correlation in [-1, 1], got {a.min_corr}")
    if not 0 <= a.jaccard <= 1:
        raise Bad(f"--jaccard: a similarity in [0, 1] (0 switches it off), got {a.jaccard}")
    if a.min_words < 0 or a.workers < 1:
        raise Bad(f"--min-words must be >= 0 and --workers >= 1, got {a.min_words} and {a.workers}")
    if a.rank_threshold is not None and a.rank_threshold < 1:
        raise Bad(f"--rank-threshold: a rank >= 1, got {a.rank_threshold}")
    if a.dedupe and a.no_images:
        raise Bad("--dedupe needs the image checks; drop --no-images")


def _load(path, image_dir):
    import warnings

    from rsnb.data.formats import load_corpus

    with warnings.catch_warnings():  # blank captions are kept and reported, not warned about
        warnings.simplefilter("ignore")
        return load_corpus(path, image_dir=image_dir, blank="keep")


def command_line(a) -> str:
    """The ``python -m rsnb audit ...`` line of parsed arguments (for the report)."""
    words = ["python", "-m", "rsnb", "audit"]
    for key, value in vars(a).items():
        if key in ("fn", "cmd") or value is None or value is False:
            continue
        words += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return " ".join(shlex.quote(w) for w in words)


def run_audit(a) -> dict:
    """Run every check the arguments ask for and write the outputs; return the result dict."""
    from rsnb.audit import captions as cap
    from rsnb.audit import report

    _check(a)
    out = Path(a.out)
    corpus = _load(a.data, a.image_dir)
    against = _load(a.against, a.against_image_dir) if a.against else None
    if against is not None and against.name == corpus.name:
        against.name = f"{against.name}-against"
    out.mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(exist_ok=True)
    progress = not a.no_progress
    res: dict = {"name": corpus.name + (f" vs {against.name}" if against else ""), "out": out, "summary": {},
                 "command": command_line(a),
                 "figures": [], "images": [], "against_images": []}
    corpora = {corpus.name: corpus, **({against.name: against} if against else {})}
    res["captions"] = cap.caption_audit(corpus, a.min_words, a.jaccard or None)
    if against is not None:
        res["against_captions"] = cap.caption_audit(against, a.min_words, a.jaccard or None)
        mine = {cap.normalise(c) for c in corpus.captions} - {""}
        theirs = {cap.normalise(c) for c in against.captions} - {""}
        res["summary"]["shared_sentences"] = len(mine & theirs)
    for key in ("captions", "against_captions"):
        if key in res:
            prefix = "" if key == "captions" else "against_"
            c = res[key]
            res["summary"][key] = c["summary"]
            report.write_csv(out / f"{prefix}captions_short.csv", c["short"])
            report.write_csv(out / f"{prefix}captions_duplicates.csv", c["groups"])
            report.write_csv(out / f"{prefix}captions_near_duplicates.csv", c["near"])
            report.write_csv(out / f"{prefix}captions_identical_images.csv", c["identical"])
            report.write_csv(out / f"{prefix}captions_cross_class.csv", c["cross_class"])
    res["figures"].append(report.save(report.plot_distinct_captions(
        {n: res[k]["summary"] for n, k in ((corpus.name, "captions"), (getattr(against, "name", ""), "against_captions"))
         if k in res}), out / "figures" / "distinct_captions.png"))
    if not a.no_images:
        from rsnb.audit.hashing import hash_images
        from rsnb.audit.images import audit_images

        kw = dict(hash=a.hash, threshold=a.threshold, other_threshold=a.other_threshold, min_corr=a.min_corr,
                  workers=a.workers, progress=progress)
        hashes = {"corpus": hash_images([r.path for r in corpus.images], workers=a.workers, progress=progress,
                                        desc=f"hashing {corpus.name}")}
        missing = hashes["corpus"].errors
        if hashes["corpus"].ok.any():
            within = audit_images(corpus, hashes=hashes, **kw)
            res["images"], res["summary"]["images"] = within.pairs, within.summary
            report.write_csv(out / "image_pairs.csv", within.pairs)
        if against is not None:
            hashes["against"] = hash_images([r.path for r in against.images], workers=a.workers, progress=progress,
                                            desc=f"hashing {against.name}")
            missing = missing + hashes["against"].errors
            if hashes["corpus"].ok.any() and hashes["against"].ok.any():
                cross = audit_images(corpus, against, hashes=hashes, **kw)
                res["against_images"], res["summary"]["against_images"] = cross.pairs, cross.summary
                report.write_csv(out / "image_pairs_against.csv", cross.pairs)
        res["summary"]["missing_images"] = len(missing)
        report.write_csv(out / "images_missing.csv", [{"problem": m} for m in missing], ["problem"])
        rows = res["images"] + res["against_images"]
        res["figures"].append(report.save(report.plot_pairs(rows, corpora), out / "figures" / "image_pairs.png"))
        res["figures"].append(report.save(report.plot_distances(rows, a.hash, a.threshold),
                                          out / "figures" / "hash_distances.png"))
        if a.dedupe:
            drop = report.duplicates_to_drop(res["images"], res["against_images"])
            path = report.write_karpathy(corpus, out / "dataset_dedup.json", drop)
            report.write_csv(out / "dedup_dropped.csv", [
                {"index": i, "file": corpus.images[i].filename, "split": corpus.images[i].split, "duplicate_of": why}
                for i, why in sorted(drop.items())], ["index", "file", "split", "duplicate_of"])
            res["dedupe"] = {"json": path.name, "csv": "dedup_dropped.csv", "dropped": len(drop)}
            res["summary"]["dedupe"] = res["dedupe"]
    if a.run:
        from rsnb.audit.pairs import suspicious_pairs

        rows, s, _ = suspicious_pairs(a.run, a.split, a.rank_threshold, data=a.data, device=a.device,
                                      image_dir=a.image_dir)
        res["suspicious"], res["summary"]["suspicious"] = rows, s
        report.write_csv(out / "suspicious_pairs.csv", rows)
        res["figures"].append(report.save(report.plot_suspicious(rows), out / "figures" / "suspicious_pairs.png"))
    res["figures"] = [p for p in res["figures"] if p is not None]
    (out / "summary.json").write_text(json.dumps(res["summary"], indent=2, default=str))
    (out / "report.md").write_text(report.markdown(res))
    return res


def _print(res: dict) -> None:
    from rsnb.audit.report import leak_sentences

    s = res["summary"]
    for key, label in (("captions", res["name"].split(" vs ")[0]), ("against_captions", "against")):
        if key in s:
            c = s[key]
            print(f"{label}: {c['captions']} captions, {c['unique_percent']:.1f} % unique, {c['blank']} blank, "
                  f"{c['near_empty']} near-empty; {c['identical_caption_images']} images whose captions are all "
                  f"one sentence")
    for key in ("images", "against_images"):
        if key in s:
            print(f"{key.replace('_', ' ')}: {s[key]['confirmed_pairs']} near-duplicate pairs of {s[key]['hashed']} hashed images")
            for line in leak_sentences(s[key], key == "images"):
                print("  " + line)
    if s.get("missing_images"):
        print(f"{s['missing_images']} image files missing or unreadable (images_missing.csv)")
    if "suspicious" in s:
        print(f"suspicious pairs: {s['suspicious']['suspicious']} captions rank their own image beyond "
              f"{s['suspicious']['threshold']}")
    if "dedupe" in s:
        print(f"dedupe: dropped {s['dedupe']['dropped']} test images -> {res['out'] / s['dedupe']['json']}")
    print(f"report: {res['out'] / 'report.md'}")


def main(a) -> int:
    """Entry point of the sub-command (bad input raises :class:`rsnb.errors.RsnbError` or
    ``FileNotFoundError``, which ``rsnb.cli.main`` prints as one ``rsnb: error: ...`` line)."""
    _print(run_audit(a))
    return 0
