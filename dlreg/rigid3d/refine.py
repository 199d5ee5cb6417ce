"""Fast deterministic mutual-information refinement of a rigid fixed->moving transform.

SimpleITK Mattes MI and regular-step gradient descent over an Euler3D transform centred on
the fixed head (physical-shift parameter scales), in two stages:

1. Coarse (capture range): the ~2 mm normalised working images of `preprocess.prepare`,
   restricted to the dilated fixed head mask, pyramid 8 / 4 / 2 mm, 32 bins, a seeded random
   10% of the voxels. It brings a start ~10 mm / 10 degrees off to within 1-3 mm.
2. Fine (accuracy): the input volumes bin-averaged to ~1 mm (`FINE_SPACING`), normalised the
   same way and cropped to each head's box plus `CROP_MARGIN_MM`, without a mask (the head
   outline is informative), 64 bins, a regular grid of ~`FINE_SAMPLES` points (seeded
   jitter), slow step relaxation (0.8) down to 0.002.

All sampling is seeded, so the same inputs and seed give the same matrix.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from dlreg.errors import InputImageError
from dlreg.imaging.geometry import matrix_to_rigid, physical_to_index, rigid_to_matrix
from dlreg.imaging.intensity import normalize
from dlreg.rigid3d.preprocess import Prepared, image_box_corners, shrink_to_working

COARSE_SHRINK = (4, 2, 1)      # on the ~2 mm working grid: 8, 4, 2 mm
COARSE_SAMPLING = 0.10
COARSE_BINS = 32
FINE_SPACING = 1.0
FINE_SAMPLES = 30_000
FINE_BINS = 64
CROP_MARGIN_MM = 8.0
ITERATIONS = 100


def _register(fixed: sitk.Image, moving: sitk.Image, matrix: np.ndarray, center: np.ndarray, *,
              bins: int, strategy: int, sampling: float, seed: int, shrink: tuple[int, ...],
              relaxation: float, min_step: float, mask: sitk.Image | None = None) -> np.ndarray:
    """One Mattes-MI gradient-descent registration started at `matrix`; returns the 4x4."""
    transform = sitk.Euler3DTransform()
    transform.SetCenter([float(c) for c in center])
    transform.SetParameters([float(p) for p in matrix_to_rigid(matrix, center)])
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=bins)
    reg.SetMetricSamplingStrategy(strategy)
    reg.SetMetricSamplingPercentage(sampling, seed + 1)  # SimpleITK: seed 0 = clock
    if mask is not None:
        reg.SetMetricFixedMask(mask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0, minStep=min_step, numberOfIterations=ITERATIONS, relaxationFactor=relaxation,
        gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(list(shrink))
    reg.SetSmoothingSigmasPerLevel([0.5 * (f - 1) for f in shrink])
    reg.SetInitialTransform(transform, inPlace=True)
    reg.Execute(fixed, moving)
    return rigid_to_matrix(np.asarray(transform.GetParameters()), center)


def fine_image(image: sitk.Image, modality: str, spacing: float = FINE_SPACING) -> sitk.Image:
    """`image` bin-averaged to ~`spacing` mm and normalised for `modality` (as `preprocess.prepare`)."""
    work = shrink_to_working(image, spacing)
    out = sitk.GetImageFromArray(normalize(sitk.GetArrayFromImage(work), modality))
    out.CopyInformation(work)
    return out


def crop_to_head(image: sitk.Image, prepared: Prepared, margin_mm: float = CROP_MARGIN_MM) -> sitk.Image:
    """`image` cropped to the box of `prepared`'s head mask plus `margin_mm`."""
    index = physical_to_index(image, image_box_corners(prepared.mask, prepared.mask))
    margin = margin_mm / np.asarray(image.GetSpacing())
    lo = np.maximum(np.floor(index.min(0) - margin), 0).astype(int)
    hi = np.minimum(np.ceil(index.max(0) + margin), np.asarray(image.GetSize()) - 1).astype(int)
    if np.any(hi - lo < 3):
        raise InputImageError("the head mask does not lie inside the image it was made from; cannot refine")
    return sitk.RegionOfInterest(image, (hi - lo + 1).tolist(), lo.tolist())


def refine_rigid(fixed: Prepared, moving: Prepared, matrix: np.ndarray, *,
                 fixed_image: sitk.Image | None = None, moving_image: sitk.Image | None = None,
                 seed: int = 0) -> np.ndarray:
    """Refine a fixed->moving 4x4 by Mattes MI (coarse on the working grids, fine at ~1 mm).

    `fixed_image`/`moving_image` are the input volumes for the fine stage; without them the
    fine stage runs on the working images.
    """
    center = fixed.centroid
    mask = sitk.BinaryDilate(fixed.mask, [2, 2, 2])
    matrix = _register(fixed.image, moving.image, matrix, center, bins=COARSE_BINS,
                       strategy=sitk.ImageRegistrationMethod.RANDOM, sampling=COARSE_SAMPLING, seed=seed,
                       shrink=COARSE_SHRINK, relaxation=0.7, min_step=0.01, mask=mask)
    fine_f = crop_to_head(fixed.image if fixed_image is None else fine_image(fixed_image, fixed.modality), fixed)
    fine_m = crop_to_head(moving.image if moving_image is None else fine_image(moving_image, moving.modality), moving)
    sampling = min(1.0, FINE_SAMPLES / float(np.prod(fine_f.GetSize())))
    return _register(fine_f, fine_m, matrix, center, bins=FINE_BINS, strategy=sitk.ImageRegistrationMethod.REGULAR,
                     sampling=sampling, seed=seed, shrink=(1,), relaxation=0.8, min_step=0.002)
