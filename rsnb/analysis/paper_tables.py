"""The papers' reported numbers, R@K in percent: AMFMN Table II (sentence <-> image), Table III
(keywords <-> image, RSITMD) and Table V (the loss ablation, RSITMD), for context beside our runs."""

from __future__ import annotations

from rsnb.evaluate import TABLE_KEYS

_TABLE_II = {
    "RSICD": {"VSE++": (3.38, 9.51, 17.46, 2.82, 11.32, 18.10, 10.43),
              "AMFMN-soft": (5.05, 14.53, 21.57, 5.05, 19.74, 31.04, 16.02),
              "AMFMN-fusion": (5.39, 15.08, 23.40, 4.90, 18.28, 31.44, 16.42),
              "AMFMN-sim": (5.21, 14.72, 21.57, 4.08, 17.00, 30.60, 15.53)},
    "RSITMD": {"VSE++": (10.38, 27.65, 39.60, 7.79, 24.87, 38.67, 24.83),
               "AMFMN-soft": (11.06, 25.88, 39.82, 9.82, 33.94, 51.90, 28.74),
               "AMFMN-fusion": (11.06, 29.20, 38.72, 9.96, 34.03, 52.96, 29.32),
               "AMFMN-sim": (10.63, 24.78, 41.81, 11.51, 34.69, 54.87, 29.72)},
    "UCM": {"VSE++": (12.38, 44.76, 65.71, 10.10, 31.80, 56.85, 36.93),
            "AMFMN-soft": (12.86, 51.90, 66.67, 14.19, 51.71, 78.48, 45.97),
            "AMFMN-fusion": (16.67, 45.71, 68.57, 12.86, 53.24, 79.43, 46.08),
            "AMFMN-sim": (14.76, 49.52, 68.10, 13.43, 51.81, 76.48, 45.68)},
    "Sydney": {"VSE++": (24.14, 53.45, 67.24, 6.21, 33.56, 51.03, 39.27),
               "AMFMN-soft": (20.69, 51.72, 74.14, 15.17, 58.62, 80.00, 50.06),
               "AMFMN-fusion": (24.14, 51.72, 75.86, 14.83, 56.55, 77.89, 50.17),
               "AMFMN-sim": (29.31, 58.62, 67.24, 13.45, 60.00, 81.72, 51.72)},
}
#: Paper Table II (sentence <-> image, test split): ``{dataset: {method: metrics}}``. Kept as printed,
#: including RSICD AMFMN-soft, whose mR (16.02) is not the mean of its recalls (16.16).
PAPER_TABLE_II = {d: {m: dict(zip(TABLE_KEYS, v)) for m, v in rows.items()} for d, rows in _TABLE_II.items()}
#: Paper Table III (keywords <-> image, RSITMD): i2t = image -> keywords ("K"), t2i = keywords -> image ("I").
PAPER_TABLE_III = {m: dict(zip(TABLE_KEYS, v)) for m, v in {
    "VSE++": (2.43, 8.63, 13.27, 5.31, 18.54, 29.38, 12.93),
    "AMFMN": (7.52, 18.14, 24.34, 8.27, 26.41, 40.13, 20.80)}.items()}


def paper_rows(dataset: str = "RSITMD", methods=("AMFMN-soft", "AMFMN-fusion", "AMFMN-sim")) -> dict:
    """Rows of paper Table II labelled ``"paper <dataset> <method>"``, ready for ``format_table``.

    Raises:
        KeyError: unknown dataset or method (the message lists the known ones).
    """
    if dataset not in PAPER_TABLE_II:
        raise KeyError(f"paper_rows: dataset {dataset!r} not in {sorted(PAPER_TABLE_II)}")
    table = PAPER_TABLE_II[dataset]
    for m in methods:
        if m not in table:
            raise KeyError(f"paper_rows: method {m!r} not in {sorted(table)}")
    return {f"paper {dataset} {m}": dict(table[m]) for m in methods}


def _row(loss: str, gamma: float, beta: float | None, *values: float) -> dict:
    return {"loss": loss, "gamma": gamma, "beta": beta, **dict(zip(TABLE_KEYS, values, strict=True))}


PAPER_TABLE_V: list[dict] = [
    # loss, margin (alpha for the fixed triplet, gamma for L_ct), beta, S R@1/5/10, I R@1/5/10, mR
    _row("fixed", 0.4, None, 11.50, 26.11, 38.05, 10.49, 32.65, 48.41, 27.87),
    _row("fixed", 0.6, None, 14.82, 28.98, 37.61, 9.12, 31.68, 46.90, 28.19),
    _row("fixed", 0.8, None, 12.39, 27.88, 40.49, 10.49, 32.65, 46.86, 28.46),
    _row("dynamic", 0.4, 3, 9.29, 26.11, 40.93, 9.47, 34.47, 52.65, 28.82),
    _row("dynamic", 0.4, 5, 12.17, 26.77, 38.94, 11.02, 35.97, 52.43, 29.55),
    _row("dynamic", 0.4, 7, 11.50, 26.55, 40.04, 10.97, 34.25, 51.46, 29.13),
    _row("dynamic", 0.6, 3, 10.18, 25.88, 38.94, 9.56, 34.42, 52.26, 28.54),
    _row("dynamic", 0.6, 5, 10.63, 24.78, 41.81, 11.51, 34.69, 54.87, 29.72),
    _row("dynamic", 0.6, 7, 11.28, 27.21, 38.05, 11.28, 35.27, 52.08, 29.20),
    _row("dynamic", 0.8, 3, 8.63, 25.22, 39.16, 10.71, 35.71, 53.41, 28.81),
    _row("dynamic", 0.8, 5, 8.41, 24.78, 40.04, 11.64, 36.99, 54.60, 29.41),
    _row("dynamic", 0.8, 7, 8.41, 28.10, 40.49, 10.88, 36.37, 52.92, 29.53),
]
"""Paper Table V (AMFMN, RSITMD test set, sentence input), as reported in the paper.

One dict per row: ``loss`` (``"fixed"`` triplet or ``"dynamic"`` L_ct), ``gamma`` (the fixed margin
alpha, or the maximum dynamic margin), ``beta`` (None for the fixed margin), the six recalls and ``mR``.
"""
