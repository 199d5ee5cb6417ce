"""The paper's registration quality metrics on 3D volumes (Eqs. 1-6), plus MI.

Overlap metrics compare the fixed head mask x with the registered moving head mask y:
DSC = 2|x&y| / (|x|+|y|), JSC = |x&y| / |x|y|, registration precision Rp = |x&y| / |y|,
registration sensitivity Rs = |x&y| / |x|, CMS = 2 Rp Rs / (Rp + Rs). SSIM is the mean 3D
SSIM (recursive Gaussian window, sigma 1.5 voxels, C1 = 0.01^2, C2 = 0.03^2) of the normalised
intensities in [0, 1]; MI is `dlreg.metrics.mutual_information` (normalised, 0..1).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from dlreg.metrics import mutual_information


def overlap_metrics(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """DSC, JSC, Rp, Rs, CMS of two boolean masks (0 where undefined)."""
    x, y = np.asarray(x, bool), np.asarray(y, bool)
    inter, nx, ny = float(np.logical_and(x, y).sum()), float(x.sum()), float(y.sum())
    union = float(np.logical_or(x, y).sum())
    rp = inter / ny if ny else 0.0
    rs = inter / nx if nx else 0.0
    return {"DSC": 2 * inter / (nx + ny) if nx + ny else 0.0, "JSC": inter / union if union else 0.0,
            "Rp": rp, "Rs": rs, "CMS": 2 * rp * rs / (rp + rs) if rp + rs else 0.0}


def ssim_3d(a: sitk.Image, b: sitk.Image, sigma: float = 1.5) -> float:
    """Mean SSIM of two same-grid images with values in [0, 1]."""
    sigma_mm = [sigma * s for s in a.GetSpacing()]

    def blur(img: sitk.Image) -> np.ndarray:
        return sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(img, sigma_mm)).astype(np.float64)

    a, b = sitk.Cast(a, sitk.sitkFloat32), sitk.Cast(b, sitk.sitkFloat32)
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2, blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return float(s.mean())


def quality_metrics(fixed: sitk.Image, fixed_mask: sitk.Image, registered: sitk.Image,
                    registered_mask: sitk.Image) -> dict[str, float]:
    """All metrics of a registered moving image on the fixed grid."""
    x = sitk.GetArrayViewFromImage(fixed_mask) > 0
    y = sitk.GetArrayViewFromImage(registered_mask) > 0
    out = overlap_metrics(x, y)
    out["SSIM"] = ssim_3d(fixed, registered)
    out["MI"] = mutual_information(sitk.GetArrayViewFromImage(fixed), sitk.GetArrayViewFromImage(registered))
    return out
