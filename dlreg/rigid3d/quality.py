"""The paper's registration quality metrics on 3D volumes (Eqs. 1-6), plus MI.

Overlap metrics compare the fixed head mask x with the registered moving head mask y:
DSC = 2|x&y| / (|x|+|y|), JSC = |x&y| / |x|y|, registration precision Rp = |x&y| / |y|,
registration sensitivity Rs = |x&y| / |x|, CMS = 2 Rp Rs / (Rp + Rs). SSIM and MI are
`dlreg.metrics.ssim` (3D, scikit-image) and `dlreg.metrics.mutual_information` (normalised,
0..1) of the normalised intensities.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from dlreg.metrics import mutual_information, ssim


def overlap_metrics(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """DSC, JSC, Rp, Rs, CMS of two boolean masks (0 where undefined)."""
    x, y = np.asarray(x, bool), np.asarray(y, bool)
    inter, nx, ny = float(np.logical_and(x, y).sum()), float(x.sum()), float(y.sum())
    union = float(np.logical_or(x, y).sum())
    rp = inter / ny if ny else 0.0
    rs = inter / nx if nx else 0.0
    return {"DSC": 2 * inter / (nx + ny) if nx + ny else 0.0, "JSC": inter / union if union else 0.0,
            "Rp": rp, "Rs": rs, "CMS": 2 * rp * rs / (rp + rs) if rp + rs else 0.0}


def quality_metrics(fixed: sitk.Image, fixed_mask: sitk.Image, registered: sitk.Image,
                    registered_mask: sitk.Image) -> dict[str, float]:
    """All metrics of a registered moving image on the fixed grid."""
    x = sitk.GetArrayViewFromImage(fixed_mask) > 0
    y = sitk.GetArrayViewFromImage(registered_mask) > 0
    out = overlap_metrics(x, y)
    f, r = sitk.GetArrayViewFromImage(fixed), sitk.GetArrayViewFromImage(registered)
    out["SSIM"] = ssim(f, r)
    out["MI"] = mutual_information(f, r)
    return out
