"""Calibration of the modality classifier from held-out predictions.

Temperature scaling: one scalar T dividing the logits, fitted by minimising the negative
log-likelihood of out-of-fold predictions. The rejection threshold sits just above every
out-of-distribution confidence, within limits.
"""

from __future__ import annotations

import numpy as np
import torch

DEFAULT_THRESHOLD = 0.6


def fit_temperature(logits: np.ndarray, labels: np.ndarray, steps: int = 200) -> float:
    """Temperature minimising the NLL of held-out (logits, labels); in [0.05, 20]."""
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.1, max_iter=steps)

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(np.clip(np.exp(log_t.item()), 0.05, 20.0))


def choose_threshold(confidence_known: np.ndarray, confidence_ood: np.ndarray | None = None,
                     keep: float = 0.99, floor: float = DEFAULT_THRESHOLD) -> float:
    """Just above every OOD confidence, but never so high that fewer than `keep` of the
    known-class confidences pass, and never below `floor`."""
    known = np.asarray(confidence_known, float)
    ood = np.asarray(confidence_ood if confidence_ood is not None else [], float)
    if not ood.size:
        return floor
    upper = float(np.quantile(known, 1.0 - keep)) if known.size else 1.0
    return float(min(max(floor, min(float(ood.max()) + 1e-3, upper)), 0.99))
