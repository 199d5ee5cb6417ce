"""Augmentation against shortcuts: field of view, resolution, noise, bias, intensity, orientation.

Each function takes and returns a SimpleITK image at (or near) native resolution;
`augment` chains them with one numpy Generator so a seed fixes the result. `ood_volume`
makes out-of-distribution volumes (smooth noise, blobs, PET-like blur, stacked
textures) for outlier exposure: the network learns to spread its probability on them.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from dlreg.imaging.geometry import rotation_matrix

MAX_ROTATION = np.deg2rad(15.0)
# MR gamma range: mild, so that the GM/WM contrast that tells T1 from FLAIR survives.
GAMMA = (0.85, 1.18)


def reorient(image: sitk.Image, rng: np.random.Generator, p_permute: float = 0.3) -> sitk.Image:
    """Rotate the direction matrix a little; sometimes also permute and flip the axes."""
    rotation = rotation_matrix(*rng.uniform(-MAX_ROTATION, MAX_ROTATION, 3))
    if rng.random() < p_permute:
        signed = np.eye(3)[rng.permutation(3)] * rng.choice([-1.0, 1.0], 3)
        rotation = rotation @ signed
    out = sitk.Image(image)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    out.SetDirection((rotation @ direction).ravel().tolist())
    out.SetOrigin((rotation @ np.asarray(image.GetOrigin())).tolist())
    return out


def crop_fov(image: sitk.Image, rng: np.random.Generator, min_keep: float = 0.6) -> sitk.Image:
    """Keep a random box of min_keep..1 of each axis."""
    size = np.asarray(image.GetSize())
    keep = np.maximum((size * rng.uniform(min_keep, 1.0, 3)).astype(int), 8)
    start = (rng.random(3) * (size - keep + 1)).astype(int)
    return sitk.RegionOfInterest(image, keep.tolist(), start.tolist())


def resample_resolution(image: sitk.Image, rng: np.random.Generator) -> sitk.Image:
    """Anti-aliased resampling to 1-2.5 mm in plane and 1-5 mm slices along a random axis."""
    spacing = np.full(3, rng.uniform(1.0, 2.5))
    spacing[rng.integers(3)] = rng.uniform(1.0, 5.0)
    spacing = np.maximum(spacing, image.GetSpacing())
    native = np.asarray(image.GetSpacing())
    # Gaussian of the missing resolution (FWHM^2 adds); the recursive filter needs sigma > 0.
    sigma = np.maximum(np.sqrt(np.maximum(spacing ** 2 - native ** 2, 0.0)) / 2.355, 0.3 * native)
    smooth = sitk.SmoothingRecursiveGaussian(image, sigma.tolist())
    extent = np.asarray(image.GetSize()) * np.asarray(image.GetSpacing())
    size = np.maximum(np.round(extent / spacing).astype(int), 8)
    return sitk.Resample(smooth, size.tolist(), sitk.Transform(), sitk.sitkLinear, image.GetOrigin(),
                         spacing.tolist(), image.GetDirection(), 0.0, sitk.sitkFloat32)


def intensity(image: sitk.Image, rng: np.random.Generator, is_ct: bool) -> sitk.Image:
    """MR: bias field, gamma, global scale, magnitude noise. CT: small HU shift and noise."""
    a = sitk.GetArrayFromImage(image).astype(np.float32)
    if is_ct:
        a = a * rng.uniform(0.97, 1.03) + rng.uniform(-10, 10)
        a = a + rng.normal(0.0, rng.uniform(0.0, 12.0), a.shape).astype(np.float32)
    else:
        top = max(float(np.percentile(a, 99.5)), 1e-6)
        a = np.clip(a / top, 0, None) ** rng.uniform(*GAMMA)
        a = a * _bias_field(a.shape, rng)
        sd = rng.uniform(0.0, 0.05)
        a = np.abs(a + rng.normal(0.0, sd, a.shape)).astype(np.float32)
        a = a * np.float32(10 ** rng.uniform(-1, 3))
    out = sitk.GetImageFromArray(a)
    out.CopyInformation(image)
    return out


def augment(image: sitk.Image, rng: np.random.Generator, is_ct: bool) -> sitk.Image:
    """The full chain, each step applied with a probability."""
    if rng.random() < 0.5:
        image = crop_fov(image, rng)
    if rng.random() < 0.8:
        image = resample_resolution(image, rng)
    image = intensity(image, rng, is_ct)
    return reorient(image, rng)


def ood_volume(rng: np.random.Generator, size: int = 96, spacing: float = 2.0,
               template: sitk.Image | None = None) -> sitk.Image:
    """One synthetic out-of-distribution volume of a random kind."""
    kind = rng.integers(4) if template is not None else rng.integers(3)
    shape = (size,) * 3
    if kind == 0:      # smooth noise
        a = _smooth(rng.normal(size=shape), rng.uniform(1.0, 4.0))
    elif kind == 1:    # random ellipsoid blobs
        a = _blobs(shape, rng)
    elif kind == 2:    # a 2D texture that drifts slowly through the slices (not a repeat)
        plane = _smooth(rng.normal(size=shape[1:]), rng.uniform(1.0, 6.0))
        drift = np.linspace(0.0, 1.0, size)[:, None, None] * _smooth(rng.normal(size=shape[1:]), 8.0)
        a = plane[None] + drift
    else:              # PET-like: a brain image blurred far beyond any MR resolution
        blurred = sitk.SmoothingRecursiveGaussian(template, float(rng.uniform(6.0, 10.0)))
        out = sitk.GetArrayFromImage(blurred)
        out = out + rng.normal(0.0, 0.05 * out.max(), out.shape)
        image = sitk.GetImageFromArray(np.clip(out, 0, None).astype(np.float32))
        image.CopyInformation(template)
        return image
    a = (a - a.min()).astype(np.float32)
    image = sitk.GetImageFromArray(a)
    image.SetSpacing([spacing] * 3)
    return image


def _bias_field(shape: tuple, rng: np.random.Generator) -> np.ndarray:
    grids = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in shape], indexing="ij")
    field = sum(rng.uniform(-0.1, 0.1) * g + rng.uniform(-0.05, 0.05) * g * g for g in grids)
    return np.exp(field).astype(np.float32)


def _smooth(a: np.ndarray, sigma: float) -> np.ndarray:
    image = sitk.GetImageFromArray(a.astype(np.float32))
    return sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(image, float(sigma)))


def _blobs(shape: tuple, rng: np.random.Generator) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    a = np.zeros(shape, np.float32)
    for _ in range(rng.integers(1, 6)):
        centre = rng.uniform(0.2, 0.8, 3) * np.asarray(shape)
        radii = rng.uniform(0.05, 0.35, 3) * np.asarray(shape)
        inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii)) < 1
        a[inside] += rng.uniform(0.2, 1.0)
    return _smooth(a + rng.normal(0, 0.02, shape), 1.0)
