"""Ground truth for rigid pairs (paper, "Generation of ground truth data").

1. Each image is resampled to isotropic spacing, Otsu-thresholded to a head point cloud,
   and its principal axes give a symmetry frame F (symmetry coordinates -> LPS):
   origin at the cloud's mean, columns = principal axes by decreasing variance.
2. The sign of each axis is fixed by the cloud's skewness along it (third central moment
   made positive), for the two axes with the larger |skewness|; the third is their cross
   product, so F is a proper rotation and the choice depends on the head alone, not on
   how it lies in the scanner.
3. The two symmetry-aligned images are registered by (1+1)-evolutionary optimisation of
   Mattes mutual information with the paper's settings (growth factor 1.05, epsilon
   1.5e-6, initial radius 6.25e-3, 100 iterations, 50 bins). The paper's MATLAB metric
   lists 500 spatial samples but uses all pixels (UseAllPixels, MATLAB's default, and
   "we considered all pixel values"); `spatial_samples=None` does the same, a number
   samples that many voxels with a fixed seed.
4. T = F_mov @ T_reg @ F_fix^-1 maps fixed LPS points to moving LPS points (the paper's
   T_fix^-1 T_reg T_mov written in the resampling convention).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from dlreg.imaging.geometry import rigid_to_matrix
from dlreg.imaging.rigid import principal_frame
from dlreg.imaging.transforms import to_sitk_transform
from dlreg.rigid3d.preprocess import check_volume, prepare

EA_SETTINGS = {"growth_factor": 1.05, "epsilon": 1.5e-6, "initial_radius": 6.25e-3,
               "iterations": 100, "bins": 50}


def isotropic(image: sitk.Image, spacing: float | None = None) -> sitk.Image:
    """Resample to isotropic `spacing` (default: the image's finest spacing), same orientation."""
    old_spacing = np.asarray(image.GetSpacing(), float)
    spacing = float(spacing or old_spacing.min())
    size = [max(1, int(round(n * s / spacing))) for n, s in zip(image.GetSize(), old_spacing)]
    return sitk.Resample(image, size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(),
                         [spacing] * 3, image.GetDirection(), 0.0, sitk.sitkFloat32)


def symmetry_grid(points_sym: np.ndarray, spacing: float, margin: float = 10.0) -> sitk.Image:
    """An empty isotropic grid in symmetry coordinates covering the head's points (plus margin)."""
    half = np.abs(points_sym).max(axis=0) + margin
    size = [int(np.ceil(2 * h / spacing)) + 1 for h in half]
    ref = sitk.Image(size, sitk.sitkFloat32)
    ref.SetSpacing([spacing] * 3)
    ref.SetOrigin([-(n - 1) * spacing / 2.0 for n in size])
    return ref


def register_ea(fixed: sitk.Image, moving: sitk.Image, *, seed: int = 0,
                spatial_samples: int | None = None, settings: dict | None = None,
                shrink_factors: tuple[int, ...] = (4, 2, 1), radius_mm: float = 80.0) -> np.ndarray:
    """(1+1)-EA Mattes-MI rigid registration of two images; returns the fixed->moving 4x4.

    Euler3D parameters are searched in units of radians for rotations and `radius_mm`
    millimetres for translations (scales 1 and 1/radius_mm), so the paper's initial
    radius of 6.25e-3 is a 0.36 degree / 0.5 mm first step. As MATLAB's imregister, the
    optimiser runs `iterations` per level of a coarse-to-fine pyramid. SimpleITK reads a
    seed of 0 as "use the clock", so `seed + 1` is passed on.
    """
    s = {**EA_SETTINGS, **(settings or {})}
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=int(s["bins"]))
    if spatial_samples is None:
        reg.SetMetricSamplingStrategy(reg.NONE)
    else:
        n_voxels = float(np.prod(fixed.GetSize()))
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentage(min(1.0, spatial_samples / n_voxels), seed + 1)
    reg.SetOptimizerAsOnePlusOneEvolutionary(
        numberOfIterations=int(s["iterations"]), epsilon=float(s["epsilon"]),
        initialRadius=float(s["initial_radius"]), growthFactor=float(s["growth_factor"]), seed=seed + 1)
    reg.SetOptimizerScales([1.0, 1.0, 1.0] + [1.0 / radius_mm] * 3)
    reg.SetShrinkFactorsPerLevel(list(shrink_factors))
    reg.SetSmoothingSigmasPerLevel([0.5 * (f - 1) for f in shrink_factors])
    reg.SetInterpolator(sitk.sitkLinear)
    transform = sitk.Euler3DTransform()
    reg.SetInitialTransform(transform, inPlace=True)
    reg.Execute(fixed, moving)
    return rigid_to_matrix(np.asarray(transform.GetParameters()), transform.GetCenter())


def generate_ground_truth(fixed: sitk.Image, moving: sitk.Image, *, spacing: float = 2.0,
                          seed: int = 0, spatial_samples: int | None = None,
                          settings: dict | None = None) -> np.ndarray:
    """Fixed->moving LPS 4x4 by symmetry alignment followed by (1+1)-EA Mattes MI."""
    check_volume(fixed, "fixed image")
    check_volume(moving, "moving image")
    fixed_iso, moving_iso = isotropic(fixed, spacing), isotropic(moving, spacing)
    points = prepare(fixed_iso, "fixed image").points
    frame_fixed = principal_frame(points)
    frame_moving = principal_frame(prepare(moving_iso, "moving image").points)
    sym_points = (points - frame_fixed[:3, 3]) @ frame_fixed[:3, :3]
    grid = symmetry_grid(sym_points, spacing)
    fixed_sym = sitk.Resample(fixed_iso, grid, to_sitk_transform(frame_fixed), sitk.sitkLinear, 0.0)
    moving_sym = sitk.Resample(moving_iso, grid, to_sitk_transform(frame_moving), sitk.sitkLinear, 0.0)
    t_reg = register_ea(fixed_sym, moving_sym, seed=seed, spatial_samples=spatial_samples,
                        settings=settings)
    return frame_moving @ t_reg @ np.linalg.inv(frame_fixed)
