"""Resample a moving image onto a fixed image's grid through a fixed->moving transform."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from dlreg.imaging.transforms import to_sitk_transform

INTERPOLATORS = {
    "linear": sitk.sitkLinear,
    "nearest": sitk.sitkNearestNeighbor,
    "bspline": sitk.sitkBSpline,
}


def resample_to(moving: sitk.Image, reference: sitk.Image, matrix: np.ndarray | None = None,
                interpolator: str = "linear", default_value: float = 0.0) -> sitk.Image:
    """Moving image sampled on the reference grid; `matrix` maps reference -> moving points."""
    if interpolator not in INTERPOLATORS:
        raise ValueError(f"unknown interpolator '{interpolator}': use one of {sorted(INTERPOLATORS)}")
    dim = moving.GetDimension()
    transform = to_sitk_transform(np.eye(dim + 1) if matrix is None else matrix)
    return sitk.Resample(moving, reference, transform, INTERPOLATORS[interpolator],
                         float(default_value), sitk.sitkFloat32)
