"""Image similarity metrics shared by all pipelines (numpy only).

Before comparing, each image is scaled to [0, 1] by `unit_range` (0 at its minimum, 1 at
its 99.5th percentile, clipped), so the numbers do not depend on scanner units.
- dice: Dice of foreground masks (pixels above 10% of the unit range), 2|F&M| / (|F| + |M|).
- ssim: mean SSIM with an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, L = 1.
- mi: normalised mutual information 2 I(F;M) / (H(F) + H(M)) (the symmetric uncertainty,
  in [0, 1]) from a 32x32-bin joint histogram.
- mse: mean squared difference of the unit-range images.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

FOREGROUND_LEVEL = 0.1
MI_BINS = 32


def unit_range(image: np.ndarray) -> np.ndarray:
    """Scale to [0, 1]: minimum -> 0, 99.5th percentile -> 1, clipped; constant -> 0."""
    a = np.asarray(image, dtype=np.float64)
    lo, hi = float(a.min()), float(np.percentile(a, 99.5))
    if hi <= lo:
        hi = float(a.max())
    if hi <= lo:
        return np.zeros_like(a)
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0)


def foreground(image: np.ndarray) -> np.ndarray:
    """Boolean foreground mask: unit-range intensity above 10%."""
    return unit_range(image) > FOREGROUND_LEVEL


def dice(fixed: np.ndarray, moving: np.ndarray) -> float:
    """Dice overlap of the two foreground masks (1.0 when both are empty)."""
    f, m = foreground(fixed), foreground(moving)
    total = f.sum() + m.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(f, m).sum() / total)


@lru_cache(maxsize=8)
def _gaussian_matrix(n: int, sigma: float = 1.5, radius: int = 5) -> np.ndarray:
    """n x n matrix applying a truncated, zero-padded 1D Gaussian."""
    d = np.arange(n)[:, None] - np.arange(n)[None, :]
    k = np.where(np.abs(d) <= radius, np.exp(-0.5 * (d / sigma) ** 2), 0.0)
    return k / np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2).sum()


def _gaussian_filter(a: np.ndarray) -> np.ndarray:
    rows, cols = _gaussian_matrix(a.shape[0]), _gaussian_matrix(a.shape[1])
    return rows @ a @ cols.T


def ssim(fixed: np.ndarray, moving: np.ndarray) -> float:
    """Mean structural similarity of the unit-range images (Wang et al. 2004)."""
    f, m = unit_range(fixed), unit_range(moving)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu_f, mu_m = _gaussian_filter(f), _gaussian_filter(m)
    var_f = _gaussian_filter(f * f) - mu_f ** 2
    var_m = _gaussian_filter(m * m) - mu_m ** 2
    cov = _gaussian_filter(f * m) - mu_f * mu_m
    s = ((2 * mu_f * mu_m + c1) * (2 * cov + c2)) / ((mu_f ** 2 + mu_m ** 2 + c1) * (var_f + var_m + c2))
    return float(s.mean())


def _bin_indices(image: np.ndarray, bins: int) -> np.ndarray:
    return np.minimum((unit_range(image).ravel() * bins).astype(np.int64), bins - 1)


def mutual_information(fixed: np.ndarray, moving: np.ndarray, bins: int = MI_BINS) -> float:
    """Normalised MI, 2 I / (H(F) + H(M)), in [0, 1]; 0 when either image is constant."""
    return _normalised_mi(_bin_indices(fixed, bins), _bin_indices(moving, bins), bins)


def mutual_information_to(fixed: np.ndarray, movings: list[np.ndarray], bins: int = MI_BINS) -> list[float]:
    """`mutual_information(fixed, m)` for every m, the fixed image binned once."""
    fi = _bin_indices(fixed, bins)
    return [_normalised_mi(fi, _bin_indices(m, bins), bins) for m in movings]


def _normalised_mi(fi: np.ndarray, mi: np.ndarray, bins: int) -> float:
    joint = np.bincount(fi * bins + mi, minlength=bins * bins).reshape(bins, bins).astype(np.float64)
    p = joint / joint.sum()
    pf, pm = p.sum(axis=1), p.sum(axis=0)

    def entropy(q: np.ndarray) -> float:
        q = q[q > 0]
        return float(-(q * np.log(q)).sum())

    hf, hm, hfm = entropy(pf), entropy(pm), entropy(p.ravel())
    if hf + hm <= 0:
        return 0.0
    return float(np.clip(2.0 * (hf + hm - hfm) / (hf + hm), 0.0, 1.0))


def mse(fixed: np.ndarray, moving: np.ndarray) -> float:
    """Mean squared difference of the unit-range images."""
    return float(np.mean((unit_range(fixed) - unit_range(moving)) ** 2))


def all_metrics(fixed: np.ndarray, moving: np.ndarray) -> dict[str, float]:
    """dice, ssim, mi, mse of two same-shape images."""
    if np.shape(fixed) != np.shape(moving):
        raise ValueError(f"metrics need same-shape images, got {np.shape(fixed)} and {np.shape(moving)}")
    return {"dice": dice(fixed, moving), "ssim": ssim(fixed, moving),
            "mi": mutual_information(fixed, moving), "mse": mse(fixed, moving)}
