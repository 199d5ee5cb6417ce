"""The classifier's open-set training loss.

Known samples: cross-entropy weighted so that every class counts equally (total / count /
n_classes). Out-of-distribution samples (label OOD_LABEL): outlier exposure, OE_WEIGHT x the
cross-entropy to the uniform distribution, which teaches the network to spread its
probability on inputs of no class. Per-sample losses are averaged, so an OOD volume weighs
as much as a known one.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dlreg.modality.classes import CLASSES

OOD_LABEL = -1
OE_WEIGHT = 0.5


class OpenSetLoss:
    """loss(logits (B, C), labels (B,)) with the class weights of the training labels."""

    def __init__(self, training_labels: np.ndarray, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32, n_classes: int = len(CLASSES)) -> None:
        labels = np.asarray(training_labels)
        counts = np.bincount(labels[labels != OOD_LABEL], minlength=n_classes).astype(float)
        weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 0.0)
        self.weights = torch.tensor(weights, dtype=dtype, device=device)

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        known = labels != OOD_LABEL
        index = labels.clamp(min=0)
        log_p = F.log_softmax(logits, dim=1)
        per_sample = torch.where(known, -self.weights[index] * log_p.gather(1, index[:, None])[:, 0],
                                 -OE_WEIGHT * log_p.mean(dim=1))
        return per_sample.mean()
