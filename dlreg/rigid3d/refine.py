"""Fast deterministic mutual-information refinement of a rigid fixed->moving transform.

SimpleITK Mattes MI (32 bins) on the ~2 mm normalised working images, restricted to the
fixed head mask, 3-level pyramid (8, 4, 2 mm), regular-step gradient descent over an
Euler3D transform centred on the fixed head. Sampling is random but seeded (25% of the
masked voxels), so the same inputs and seed give the same result.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from dlreg.imaging.geometry import matrix_to_rigid, rigid_to_matrix

SAMPLING = 0.25
ITERATIONS = 60


def refine_rigid(fixed: sitk.Image, moving: sitk.Image, matrix: np.ndarray, center: np.ndarray, *,
                 fixed_mask: sitk.Image | None = None, seed: int = 0,
                 shrink_factors: tuple[int, ...] = (4, 2, 1), iterations: int = ITERATIONS) -> np.ndarray:
    """Refine a fixed->moving 4x4 by Mattes MI; returns the refined 4x4."""
    params = matrix_to_rigid(matrix, center)
    transform = sitk.Euler3DTransform()
    transform.SetCenter([float(c) for c in center])
    transform.SetParameters([float(p) for p in params])
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(SAMPLING, seed + 1)  # SimpleITK: seed 0 = clock
    if fixed_mask is not None:
        reg.SetMetricFixedMask(sitk.BinaryDilate(fixed_mask, [2, 2, 2]))
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0, minStep=0.01, numberOfIterations=iterations, relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(list(shrink_factors))
    reg.SetSmoothingSigmasPerLevel([0.5 * (f - 1) for f in shrink_factors])
    reg.SetInitialTransform(transform, inPlace=True)
    reg.Execute(fixed, moving)
    return rigid_to_matrix(np.asarray(transform.GetParameters()), center)
