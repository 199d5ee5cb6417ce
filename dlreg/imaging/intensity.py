"""Intensity normalisation: robust percentiles for MR, a Hounsfield window for CT.

MR intensities have no absolute scale, so the 1st..99th percentiles of the
foreground (non-zero voxels; skull-stripped images have a zero background)
map to 0..1. CT is calibrated in HU, so a fixed window maps to 0..1 instead.
"""

from __future__ import annotations

import numpy as np

from dlreg.errors import InputImageError

# A head window wide enough to keep soft tissue and bone apart (HU).
CT_WINDOW = (-200.0, 1500.0)


def normalize_mr(array: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Map the foreground's [low, high] percentiles to [0, 1], clipping outside."""
    array = np.asarray(array, np.float32)
    foreground = array[array != 0]
    if foreground.size == 0:
        raise InputImageError("cannot normalise an image with no non-zero voxels")
    lo, hi = np.percentile(foreground, [low, high])
    if hi <= lo:
        lo, hi = float(foreground.min()), float(foreground.max())
    if hi <= lo:
        raise InputImageError("cannot normalise an image whose foreground has a single value")
    return np.clip((array - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def normalize_ct(array: np.ndarray, window: tuple[float, float] = CT_WINDOW) -> np.ndarray:
    """Map the HU window [lower, upper] to [0, 1], clipping outside."""
    lower, upper = window
    if upper <= lower:
        raise ValueError(f"invalid CT window {window}: upper must exceed lower")
    array = np.asarray(array, np.float32)
    return np.clip((array - lower) / (upper - lower), 0.0, 1.0).astype(np.float32)


def normalize(array: np.ndarray, modality: str = "MR") -> np.ndarray:
    """Normalise by modality family: 'CT' uses the HU window, anything else MR percentiles."""
    return normalize_ct(array) if modality.upper().startswith("CT") else normalize_mr(array)
