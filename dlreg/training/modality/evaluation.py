"""The paper's classification metrics (its equations 7-12) from a confusion matrix.

Per class, one-vs-rest: accuracy, sensitivity, specificity, precision, F-measure and
G-mean; the macro average over classes that occur; overall accuracy = trace / total.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """counts[t, p]; predicted may use index n_classes for "unknown" (an extra column)."""
    counts = np.zeros((n_classes, n_classes + 1), dtype=int)
    for t, p in zip(np.asarray(true, int), np.asarray(predicted, int)):
        counts[t, p] += 1
    return counts


def class_metrics(counts: np.ndarray, names: list[str]) -> dict:
    """Per-class and macro-averaged metrics of a confusion matrix (rows: true classes)."""
    total = counts.sum()
    per_class = {}
    for i, name in enumerate(names):
        tp = counts[i, i]
        fn = counts[i].sum() - tp
        fp = counts[:, i].sum() - tp
        tn = total - tp - fn - fp
        if tp + fn == 0:
            continue
        sens = _ratio(tp, tp + fn)
        spec = _ratio(tn, tn + fp)
        prec = _ratio(tp, tp + fp)
        per_class[name] = {
            "support": int(tp + fn), "accuracy": _ratio(tp + tn, total), "sensitivity": sens,
            "specificity": spec, "precision": prec,
            "f_measure": 0.0 if sens + prec == 0 else 2 * sens * prec / (sens + prec),
            "g_mean": float(np.sqrt(sens * spec)),
        }
    keys = ("accuracy", "sensitivity", "specificity", "precision", "f_measure", "g_mean")
    macro = {k: float(np.mean([m[k] for m in per_class.values()])) for k in keys}
    return {"overall_accuracy": _ratio(np.trace(counts[:, :len(names)]), total),
            "macro": macro, "per_class": per_class}


def _ratio(a, b) -> float:
    return float(a) / float(b) if b else 0.0
