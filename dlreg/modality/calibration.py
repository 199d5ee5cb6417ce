"""Calibrated confidence: the softmax of temperature-scaled logits.

A model's temperature (fitted in `dlreg.training.modality.calibration`) makes the softmax's
maximum a usable confidence; a volume whose calibrated confidence is below the model's
threshold is answered "unknown" instead of being forced into a class.
"""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of logits / temperature."""
    z = np.asarray(logits, np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
