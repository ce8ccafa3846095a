"""Built-in evaluation metrics, ``metric(y_true, y_score) -> float``, registered by name.

Scores are what the model returns: one probability per row for binary classifiers (a (N, 2)
softmax uses its second column), or one row of class scores per sample for multi-class ones.
The same names are declared as ``hepbundle.evaluators`` entry points in ``pyproject.toml``, the
group experiments use to add their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import DataError

__all__ = ["BUILTIN", "accuracy", "auc", "logloss", "mse"]

Arr = npt.NDArray[Any]


def _binary(y: Arr, s: Arr, what: str) -> tuple[Arr, npt.NDArray[np.float64]]:
    s = np.asarray(s, dtype=np.float64)
    if s.ndim == 2 and s.shape[1] == 2:
        s = s[:, 1]
    if s.ndim != 1:
        raise DataError(f"{what} needs one score per sample, got scores of shape {s.shape}")
    y = np.asarray(y).reshape(len(y))
    if not np.isin(y, (0, 1)).all():
        raise DataError(f"{what} needs labels 0/1, got values {np.unique(y)[:5].tolist()}")
    return y.astype(bool), s


def auc(y: Arr, s: Arr) -> float:
    """Area under the ROC curve: the Mann-Whitney statistic with tied scores sharing ranks.
    For class scores (N, C > 2) with integer labels: the macro average of one-vs-rest AUCs."""
    s = np.asarray(s)
    if s.ndim == 2 and s.shape[1] > 2:
        labels = np.asarray(y).reshape(len(y))
        present = [k for k in range(s.shape[1]) if 0 < np.sum(labels == k) < len(labels)]
        if not present:
            raise DataError("auc needs at least two classes among the labels")
        return float(np.mean([_auc(labels == k, s[:, k]) for k in present]))
    return _auc(*_binary(y, s, "auc"))


def _auc(pos: npt.NDArray[np.bool_], score: npt.NDArray[Any]) -> float:
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise DataError("auc needs both classes among the labels")
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    # average rank of each distinct score (1-based), then per sample
    ends = np.cumsum(counts)
    avg_rank = ends - (counts - 1) / 2.0
    ranks = avg_rank[inverse]
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def accuracy(y: Arr, s: Arr) -> float:
    """Fraction correct: score ≥ 0.5 for binary scores, the arg-max class for class scores."""
    s = np.asarray(s)
    y = np.asarray(y).reshape(len(y))
    if s.ndim == 2 and s.shape[1] > 1:
        return float(np.mean(np.argmax(s, axis=1) == y))
    return float(np.mean((s.reshape(len(s)) >= 0.5) == (y == 1)))


def logloss(y: Arr, s: Arr) -> float:
    """Binary cross-entropy of probabilities clipped to [1e-7, 1 − 1e-7]."""
    pos, p = _binary(y, s, "logloss")
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(np.where(pos, np.log(p), np.log(1 - p))))


def mse(y: Arr, s: Arr) -> float:
    """Mean squared error (regression outputs)."""
    s = np.asarray(s, dtype=np.float64)
    return float(np.mean((s.reshape(len(s), -1) - np.asarray(y).reshape(len(s), -1)) ** 2))


BUILTIN: dict[str, Callable[[Arr, Arr], float]] = {
    "auc": auc,
    "accuracy": accuracy,
    "logloss": logloss,
    "mse": mse,
}
