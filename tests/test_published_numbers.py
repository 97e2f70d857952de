"""A published score pair checked against every pooled confusion matrix it could come from.

MEGC 2019 (See et al., FG 2019; Liong et al.'s STSTNet, Table III) publishes LBP-TOP on SMIC-HS as UF1
0.2000 with UAR 0.5280. SMIC-HS has 164 clips in 3 classes (tests/data/megc2019_composite.csv: negative
70, positive 51, surprise 43). If both scores came from one confusion matrix pooled over all LOSO folds
(rows: truth, summing to the class counts), some 3x3 count matrix with those row sums would have UAR
rounding to 0.5280 and UF1 rounding to 0.2000. The search below is exhaustive and finds none: every such
matrix with UAR 0.5280 has UF1 at least 0.3983. The published pair cannot come from pooling all subjects'
predictions; it may be a mean of per-subject scores.

UAR depends only on the diagonal; of the 162,448 diagonals, 27 give UAR 0.5280 (an exact integer test,
no float rounding at the edges). For each, row i's off-diagonal remainder splits between the two other
columns, one free integer per row, so the 3 free integers span all matrices with that diagonal
(323,680 in all), scored at once with numpy.
"""

from __future__ import annotations

import csv
from fractions import Fraction
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"
CLASSES = ["negative", "positive", "surprise"]

# LBP-TOP on SMIC-HS as MEGC 2019 publishes it
PUBLISHED_UF1, PUBLISHED_UAR = 0.2000, 0.5280
LOWEST_UF1 = 3667 / 9207                    # 0.3983, the least UF1 of any pooled matrix with UAR 0.5280
LOWEST_MATRIX = [[2, 33, 35], [0, 39, 12], [0, 9, 34]]


def smic_class_counts() -> list[int]:
    with open(DATA / "megc2019_composite.csv", newline="") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    labels = [row["label"] for row in rows if row["dataset"] == "smic"]
    return [labels.count(c) for c in CLASSES]


def diagonals_with_uar(n: list[int], uar: float) -> np.ndarray:
    """Every diagonal (d1, d2, d3), 0 <= d_k <= n_k, whose UAR rounds to `uar` at 4 decimals.

    UAR = N / D with N an integer (D = 3 * lcm(n)), so the rounding test is exact in integers:
    uar - 0.00005 <= N / D < uar + 0.00005.
    """
    lcm = int(np.lcm.reduce(n))
    grids = np.meshgrid(*(np.arange(k + 1) for k in n), indexing="ij")
    d = np.stack([g.ravel() for g in grids], axis=1)
    N = d @ np.array([lcm // k for k in n])
    D, target = 3 * lcm, round(uar * 10_000)
    keep = (20_000 * N >= (2 * target - 1) * D) & (20_000 * N < (2 * target + 1) * D)
    return d[keep]


def lowest_uf1(n: list[int], d: np.ndarray) -> tuple[float, np.ndarray]:
    """The least UF1 over all matrices with diagonal d and row sums n, and a matrix that has it.

    a = C[0,1], b = C[1,0], c = C[2,0]; the rest of each row is fixed by its sum. F1_k = 2 TP_k / (n_k + colsum_k).
    """
    r = [int(k - x) for k, x in zip(n, d, strict=True)]
    a = np.arange(r[0] + 1)[:, None, None]
    b = np.arange(r[1] + 1)[None, :, None]
    c = np.arange(r[2] + 1)[None, None, :]
    cols = [d[0] + b + c, d[1] + a + r[2] - c, d[2] + r[0] - a + r[1] - b]
    uf1 = sum(2 * d[k] / (n[k] + cols[k]) for k in range(3)) / 3
    i, j, k = np.unravel_index(np.argmin(uf1), uf1.shape)
    matrix = np.array([[d[0], i, r[0] - i], [j, d[1], r[1] - j], [k, r[2] - k, d[2]]])
    return float(uf1[i, j, k]), matrix


def exact_scores(matrix: np.ndarray) -> tuple[Fraction, Fraction]:
    tp, rows, cols = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)
    uar = sum(Fraction(int(t), int(s)) for t, s in zip(tp, rows, strict=True)) / 3
    uf1 = sum(Fraction(2 * int(t), int(s) + int(c)) for t, s, c in zip(tp, rows, cols, strict=True)) / 3
    return uar, uf1


def test_lbptops_published_smic_scores_fit_no_pooled_confusion_matrix():
    """No pooled SMIC-HS confusion matrix scores UAR 0.5280 with UF1 0.2000: with UAR 0.5280, UF1 >= 0.3983."""
    n = smic_class_counts()
    assert n == [70, 51, 43]

    diagonals = diagonals_with_uar(n, PUBLISHED_UAR)
    assert len(diagonals) == 27
    lowest, matrix = min((lowest_uf1(n, d) for d in diagonals), key=lambda found: found[0])

    uar, uf1 = exact_scores(matrix)
    assert matrix.sum(axis=1).tolist() == n and (matrix >= 0).all()
    assert round(float(uar), 4) == PUBLISHED_UAR and uf1 == Fraction(3667, 9207)
    assert matrix.tolist() == LOWEST_MATRIX and abs(lowest - LOWEST_UF1) < 1e-12
    assert round(lowest, 4) == 0.3983 > PUBLISHED_UF1
    # hence UF1 0.2000 is out of reach of every matrix with UAR 0.5280
    assert round(lowest, 4) != PUBLISHED_UF1 and lowest > PUBLISHED_UF1 + 0.00005
