"""Synthetic CT-like and MR-contrast volumes from MR, for training and tests (never shipped as data).

Brain tissue in a head CT is nearly flat in Hounsfield units: CSF ~10, white matter ~30,
grey matter ~40, air -1000, bone ~700-1500. These functions paint those values from
tissue maps or a T1 image; they teach "CT" without needing many real CTs, and give
tests a CT/MR pair made only from bundled data. The same T1 tissue mapping paints
T2-like (CSF > GM > WM) and FLAIR-like (GM > WM > CSF) brains, so that every T1's
anatomy is also seen with the other contrasts' tissue ordering.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

AIR_HU = -1000.0
CSF_HU, WM_HU, GM_HU = 10.0, 30.0, 40.0
BONE_HU, FAT_HU = 1100.0, -80.0
NOISE_HU = 4.0


def pseudo_ct_from_tissue(gm: sitk.Image, wm: sitk.Image, *, seed: int = 0) -> sitk.Image:
    """Skull-less CT-like volume from grey- and white-matter probability maps (any scale)."""
    g, w = (_unit(sitk.GetArrayFromImage(m)) for m in (gm, wm))
    head = _filled(sitk.GetImageFromArray((g + w > 0.1).astype(np.uint8)))
    csf = np.clip(1 - g - w, 0, 1)
    hu = GM_HU * g + WM_HU * w + CSF_HU * csf
    return _finish(np.where(head, hu, AIR_HU), gm, seed)


# Positions on the T1 brain scale (0 = CSF .. 1 = WM) where the painted tissues change.
T1_KNOTS = (0.0, 0.3, 0.55, 0.8, 1.0)
# Brain intensity of a painted MR contrast at T1_KNOTS.
CONTRAST_LEVELS = {"MR-T2": (1.0, 0.9, 0.55, 0.3, 0.3), "MR-FLAIR": (0.08, 0.15, 0.7, 0.5, 0.5)}


def _t1_tissue_scale(t1: sitk.Image, brain_mask: sitk.Image | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """T1 array, brain (by intensity, or `brain_mask` for a T1 with skull) and each voxel's
    position on the brain's 2nd..98th percentile range, clipped to [0, 1]."""
    a = sitk.GetArrayFromImage(t1).astype(np.float32)
    brain = a > 0.02 * np.percentile(a, 99.5) if brain_mask is None else sitk.GetArrayFromImage(brain_mask) > 0
    lo, hi = np.percentile(a[brain], [2, 98])
    return a, brain, np.clip((a - lo) / max(hi - lo, 1e-6), 0, 1)


def pseudo_ct_from_t1(t1: sitk.Image, brain_mask: sitk.Image | None = None, *,
                      seed: int = 0) -> sitk.Image:
    """CT-like volume from a T1: brain by intensity; with `brain_mask` (T1 with skull)
    the rest of the head becomes bone (dark in T1) or fat/soft tissue (bright)."""
    a, brain, t = _t1_tissue_scale(t1, brain_mask)
    if brain_mask is None:
        head = np.zeros_like(brain)
    else:
        otsu = sitk.OtsuThreshold(t1, 0, 1)
        head = _filled(sitk.BinaryMorphologicalClosing(otsu, [3, 3, 3])) & ~brain
    # T1 CSF (dark) -> 10 HU, GM (mid) -> 40, WM (bright) -> 30.
    hu = np.interp(t, T1_KNOTS, [CSF_HU, CSF_HU + 5, GM_HU, WM_HU, WM_HU])
    out = np.where(brain, hu, AIR_HU)
    if head.any():
        dark = a < np.median(a[head])
        out = np.where(head & dark, BONE_HU, np.where(head, FAT_HU + 120 * t, out))
    return _finish(out, t1, seed)


def pseudo_mr_from_t1(t1: sitk.Image, contrast: str, brain_mask: sitk.Image | None = None, *,
                      seed: int = 0) -> sitk.Image:
    """Skull-stripped T2- or FLAIR-like volume (`contrast` "MR-T2" or "MR-FLAIR") painted from a
    T1 brain (with `brain_mask` for a T1 with skull); zero outside the brain."""
    if contrast not in CONTRAST_LEVELS:
        raise ValueError(f"cannot paint {contrast!r}: choose one of {sorted(CONTRAST_LEVELS)}")
    a, brain, t = _t1_tissue_scale(t1, brain_mask)
    level = np.interp(t, T1_KNOTS, CONTRAST_LEVELS[contrast])
    noisy = np.abs(level + np.random.default_rng(seed).normal(0.0, 0.01, a.shape))
    image = sitk.GetImageFromArray((1000.0 * np.where(brain, noisy, 0.0)).astype(np.float32))
    image.CopyInformation(t1)
    return image


def _unit(a: np.ndarray) -> np.ndarray:
    """A probability map scaled to [0, 1] (maps are stored as 0..1 or 0..255)."""
    a = np.clip(a.astype(np.float32), 0, None)
    return a / a.max() if a.max() > 1 else a


def _filled(mask: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.BinaryFillhole(sitk.Cast(mask, sitk.sitkUInt8))) > 0


def _finish(hu: np.ndarray, reference: sitk.Image, seed: int) -> sitk.Image:
    rng = np.random.default_rng(seed)
    noisy = hu + rng.normal(0.0, NOISE_HU, hu.shape)
    image = sitk.GetImageFromArray(np.clip(noisy, -1024, 3071).astype(np.float32))
    image.CopyInformation(reference)
    return image
