"""Recognition metrics on integer class labels: accuracy (the paper's Table 2), and the unweighted
F1 and unweighted average recall that MEGC uses for imbalanced micro-expression classes.

Labels are integers in 0..n_classes-1. The confusion matrix has the truth on its rows and the
prediction on its columns.
"""

from __future__ import annotations

import numpy as np


def _labels(y_true, y_pred, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{y_true.size} true labels but {y_pred.size} predictions")
    if y_true.size == 0:
        raise ValueError("no labels")
    for name, y in (("true", y_true), ("predicted", y_pred)):
        if y.min() < 0 or y.max() >= n_classes:
            raise ValueError(f"{name} labels must lie in 0..{n_classes - 1}, got {y.min()}..{y.max()}")
    return y_true, y_pred


def confusion(y_true, y_pred, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts: entry [t, p] = clips of class t predicted as p."""
    y_true, y_pred = _labels(y_true, y_pred, n_classes)
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, -1)


def accuracy(y_true, y_pred) -> float:
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"need equally many true and predicted labels, got {y_true.size} and {y_pred.size}")
    return float(np.mean(y_true == y_pred))


def uf1(y_true, y_pred, n_classes: int) -> float:
    """Unweighted F1: the mean over classes of F1 = 2 TP / (2 TP + FP + FN).

    A class absent from both truth and prediction has no F1 (0/0) and is left out of the mean, as
    in MEGC; a class predicted but never true (or true but never predicted) counts with F1 = 0.
    """
    return uf1_from_confusion(confusion(y_true, y_pred, n_classes))


def uar(y_true, y_pred, n_classes: int) -> float:
    """Unweighted average recall: the mean over classes present in the truth of TP / (TP + FN)."""
    return uar_from_confusion(confusion(y_true, y_pred, n_classes))


def confusion_by_group(groups: np.ndarray, y_true, y_pred, n_classes: int) -> dict[str, list[list[int]]]:
    """One confusion matrix per group (a test subject, a composite's source dataset), keyed by its name."""
    groups = np.asarray(groups).astype(str)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return {group: confusion(y_true[groups == group], y_pred[groups == group], n_classes).tolist()
            for group in sorted(set(groups))}


# --- from a confusion matrix: pooling the predictions of several folds (MEGC's LOSO scores) ----------

def accuracy_from_confusion(cm) -> float:
    cm = _square(cm)
    return float(np.trace(cm) / cm.sum())


def uf1_from_confusion(cm) -> float:
    """UF1 of the clips a confusion matrix counts (see `uf1`). Summing the folds' matrices and
    scoring the sum is MEGC's "all subjects' predictions pooled" score, which differs from the mean
    of the per-fold scores: a LOSO fold has one subject and often one or two classes."""
    cm = _square(cm)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    seen = (tp + fp + fn) > 0
    return float(np.mean(2 * tp[seen] / (2 * tp[seen] + fp[seen] + fn[seen])))


def uar_from_confusion(cm) -> float:
    cm = _square(cm)
    support = cm.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present]))


def _square(cm) -> np.ndarray:
    cm = np.asarray(cm, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.sum() == 0 or (cm < 0).any():
        raise ValueError(f"need a non-empty square matrix of counts, got shape {cm.shape}")
    return cm


def fold_interval(values, test_to_train: float, level: float = 0.95) -> tuple[float, float]:
    """A `level` confidence interval for the mean of per-fold scores from (repeated) cross-validation:
    the corrected resampled t interval (Nadeau & Bengio, Machine Learning 2003; Bouckaert & Frank,
    PAKDD 2004). Folds share training clips, so their scores are correlated and the plain t interval
    (variance s^2 / n) is too narrow; the correction widens the variance to (1/n + n_test/n_train) s^2,
    with t on n - 1 degrees of freedom. `test_to_train` is n_test / n_train of a fold (1/(k-1) for
    k-fold). Fewer than two folds: (nan, nan)."""
    from scipy.stats import t

    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n < 2:
        return float("nan"), float("nan")
    half = t.ppf(0.5 + level / 2, n - 1) * np.sqrt((1 / n + test_to_train) * values.var(ddof=1))
    return float(values.mean() - half), float(values.mean() + half)


# --- many confusion matrices at once: the subject bootstrap -------------------------------------------

def scores_of_confusions(cms) -> dict[str, np.ndarray]:
    """Accuracy, UF1 and UAR of each matrix of a stack (..., C, C), as `accuracy_from_confusion`,
    `uf1_from_confusion` and `uar_from_confusion` score one."""
    cms = np.asarray(cms, dtype=np.float64)
    tp = np.diagonal(cms, axis1=-2, axis2=-1)
    support, predicted = cms.sum(axis=-1), cms.sum(axis=-2)
    fp, fn = predicted - tp, support - tp
    seen, present = (tp + fp + fn) > 0, support > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(seen, 2 * tp / np.where(seen, 2 * tp + fp + fn, 1), 0.0)
        recall = np.where(present, tp / np.where(present, support, 1), 0.0)
        return {"accuracy": tp.sum(axis=-1) / cms.sum(axis=(-2, -1)),
                "uf1": f1.sum(axis=-1) / seen.sum(axis=-1),
                "uar": recall.sum(axis=-1) / present.sum(axis=-1)}


def subject_bootstrap(confusions, draws: int, seed: int, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile interval of the pooled scores when the subjects are drawn again with replacement.

    `confusions` is (seeds, subjects, C, C): each subject's confusion matrix under each training seed (the
    same subjects in every seed). A draw picks len(subjects) subjects with replacement; under each seed
    their matrices are summed (their predictions pooled, as MEGC scores leave-one-subject-out) and scored,
    and the draw's score is the mean over seeds, the same statistic as the headline. So the interval
    covers which subjects happened to be recorded and, through the mean, the seeds. metric ->
    (low, high) at `level`."""
    confusions = np.asarray(confusions, dtype=np.int64)
    n_subjects = confusions.shape[1]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n_subjects, size=(draws, n_subjects))
    counts = np.zeros((draws, n_subjects), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(draws), n_subjects), picks.ravel()), 1)
    pooled = np.einsum("bj,sjkl->bskl", counts, confusions)       # (draws, seeds, C, C)
    tail = (1 - level) / 2 * 100
    return {metric: (float(np.percentile(values.mean(axis=1), tail)),
                     float(np.percentile(values.mean(axis=1), 100 - tail)))
            for metric, values in scores_of_confusions(pooled).items()}
