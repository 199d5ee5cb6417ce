"""Image similarity metrics shared by all pipelines.

Before comparing, each image is scaled to [0, 1] by `unit_range` (0 at its minimum, 1 at
its 99.5th percentile, clipped), so the numbers do not depend on scanner units.
- dice: Dice of foreground masks (pixels above 10% of the unit range), 2|F&M| / (|F| + |M|).
- ssim: mean SSIM (Wang et al. 2004) as scikit-image computes it: Gaussian window sigma 1.5,
  K1 = 0.01, K2 = 0.03, L = 1, population covariances, the window's half-width cropped at
  the border; 2D or 3D.
- mi: normalised mutual information 2 I(F;M) / (H(F) + H(M)) (the symmetric uncertainty,
  in [0, 1]) from a 32x32-bin joint histogram. scikit-image's normalized_mutual_information
  Y = (H(F) + H(M)) / H(F, M) gives the same number as 2 (1 - 1/Y) to 1e-15, but takes 3-5x
  longer (np.histogramdd), and this MI runs in the pre-alignment's candidate search.
- mse: mean squared difference of the unit-range images.
"""

from __future__ import annotations

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


def ssim(fixed: np.ndarray, moving: np.ndarray) -> float:
    """Mean structural similarity of the unit-range images (2D or 3D)."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(unit_range(fixed), unit_range(moving), data_range=1.0,
                                       gaussian_weights=True, sigma=1.5, use_sample_covariance=False))


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
