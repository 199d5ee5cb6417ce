"""Augmentation against shortcuts: field of view, resolution, noise, bias, intensity, orientation.

Each function takes and returns a SimpleITK image at (or near) native resolution;
`augment` chains them with one numpy Generator so a seed fixes the result. `ood_volume`
makes out-of-distribution volumes (smooth noise, blobs, stacked textures, a limb-like
cylinder, and PET-, DWI- and PD-like brains painted from a T1) for outlier exposure: the
network learns to spread its probability on them.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from dlreg.training.modality.native import reslice

MAX_ROTATION = np.deg2rad(15.0)
# MR gamma range: mild, so that the GM/WM contrast that tells T1 from FLAIR survives.
GAMMA = (0.85, 1.18)


def rotate(image: sitk.Image, rng: np.random.Generator, fill: float = 0.0) -> sitk.Image:
    """Resample the voxels on a grid tilted by up to MAX_ROTATION (the classifier reads voxel
    axes, not the header, so a rotation must move the voxels). Axis orders and flips are
    drawn while training, on the canonical cube."""
    return reslice(image, rng, thickness=max(image.GetSpacing()), tilt=rng.uniform(0.0, MAX_ROTATION),
                   fill=fill)


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
    return rotate(image, rng, fill=-1000.0 if is_ct else 0.0)


OOD_KINDS = ("smooth noise", "blobs", "drifting texture", "limb", "PET-like", "DWI-like", "PD-like")


def ood_volume(rng: np.random.Generator, size: int = 96, spacing: float = 2.0,
               template: sitk.Image | None = None, kind: str | None = None) -> sitk.Image:
    """One synthetic out-of-distribution volume of a random (or the given) kind of OOD_KINDS;
    the brain-like kinds need a T1 `template`."""
    kinds = OOD_KINDS if template is not None else OOD_KINDS[:4]
    kind = kinds[rng.integers(len(kinds))] if kind is None else kind
    shape = (size,) * 3
    if kind in ("PET-like", "DWI-like", "PD-like"):
        return _painted_brain(template, kind, rng)
    if kind == "smooth noise":
        a = _smooth(rng.normal(size=shape), rng.uniform(1.0, 4.0))
    elif kind == "blobs":
        a = _blobs(shape, rng)
    elif kind == "drifting texture":   # a 2D texture that drifts slowly through the slices
        plane = _smooth(rng.normal(size=shape[1:]), rng.uniform(1.0, 6.0))
        drift = np.linspace(0.0, 1.0, size)[:, None, None] * _smooth(rng.normal(size=shape[1:]), 8.0)
        a = plane[None] + drift
    else:                              # a limb: bone core, marrow, muscle, fat ring, skin
        a = _limb(shape, rng)
    a = (a - a.min()).astype(np.float32)
    image = sitk.GetImageFromArray(a)
    image.SetSpacing([spacing] * 3)
    return image


# Brain levels (CSF, GM, WM) of the painted OOD contrasts, and their blur (FWHM mm) and noise.
_PAINTED = {"PET-like": ((0.1, 1.0, 0.35), (6.0, 10.0), 0.05),
            "DWI-like": ((0.15, 0.6, 0.48), (3.0, 5.0), 0.12),
            "PD-like": ((0.95, 0.85, 0.72), (0.0, 2.0), 0.02)}


def _painted_brain(t1: sitk.Image, kind: str, rng: np.random.Generator) -> sitk.Image:
    """A brain of another contrast painted from a T1's tissue scale, blurred and noisy."""
    a = sitk.GetArrayFromImage(t1).astype(np.float32)
    brain = a > 0.02 * np.percentile(a, 99.5)
    lo, hi = np.percentile(a[brain], [2, 98])
    t = np.clip((a - lo) / max(hi - lo, 1e-6), 0, 1)
    (csf, gm, wm), (blur_lo, blur_hi), noise = _PAINTED[kind]
    levels = np.array([csf, gm, wm]) * rng.uniform(0.9, 1.1, 3)
    painted = np.where(brain, np.interp(t, (0.0, 0.55, 1.0), levels), 0.0).astype(np.float32)
    image = sitk.GetImageFromArray(painted)
    image.CopyInformation(t1)
    fwhm = rng.uniform(blur_lo, blur_hi)
    if fwhm > 0:
        image = sitk.SmoothingRecursiveGaussian(image, fwhm / 2.355)
    out = sitk.GetArrayFromImage(image)
    sd = noise * float(out.max())
    out = np.hypot(out + rng.normal(0.0, sd, out.shape), rng.normal(0.0, sd, out.shape))
    result = sitk.GetImageFromArray(out.astype(np.float32))
    result.CopyInformation(t1)
    return result


def _limb(shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """A cylinder along the first axis: bone, marrow, muscle, fat and skin rings."""
    _, y, x = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in shape], indexing="ij")
    r = np.hypot(x / rng.uniform(0.6, 0.9), y / rng.uniform(0.6, 0.9))
    levels = rng.uniform(0.1, 1.0, 5)
    edges = np.sort(rng.uniform(0.1, 1.0, 4))
    a = np.select([r < edges[0], r < edges[1], r < edges[2], r < edges[3]], levels[:4].tolist(), 0.0)
    return _smooth(a + rng.normal(0, 0.03, shape), 1.0)


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
