"""Native-like variants: a preprocessed (skull-stripped, 1 mm, co-registered) volume made to
look like a series as it comes off the scanner.

Users load series that are not skull-stripped, have 4-7 mm slices, are cut obliquely, cover
part of the head, carry a bias field and each vendor's intensity scale. `native_like` chains:

1. `add_head` (skull-stripped MR only): a synthetic head around the brain mask, as layers at
   increasing distance from the brain surface (CSF, inner table, diploe, outer table, scalp fat,
   muscle and skin) whose thickness varies smoothly over the head; each layer gets the
   intensity it has in the volume's contrast, relative to the brain (T1: fat and marrow bright,
   cortical bone dark; T2: CSF bright, fat bright; FLAIR: CSF dark, fat fairly bright; T1C: as
   T1 plus an enhancing dura).
2. `bias_and_noise`: a strong smooth multiplicative field and Rician (magnitude) noise, so the
   background is noise instead of exact zeros.
3. `reslice`: thick slices (4-7 mm, slice profile = Gaussian of that FWHM) along a random axis,
   tilted up to 30 degrees (oblique), optionally covering only part of the head.
4. `vendor_scale`: a random global scale (brain at 100..4000), rounded to integers.

`ct_without_hu` makes a CT lose its Hounsfield signature (8-bit window export, skull-stripped
to zero): inputs that must not be called an MR contrast either. All functions take a
numpy Generator so that a seed fixes the result.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from dlreg.modality.classes import MR_FLAIR, MR_T1, MR_T1C, MR_T2

# Layer intensities as multiples of the brain's 95th percentile: (low, high) drawn uniformly.
# "csf" is a quantile of the brain itself (dark CSF: 3rd, bright CSF: 99th percentile).
HEAD_LEVELS = {
    MR_T1: {"csf": 0.03, "bone": (0.02, 0.1), "marrow": (0.7, 1.2), "fat": (1.1, 1.6), "muscle": (0.35, 0.6)},
    MR_T1C: {"csf": 0.03, "bone": (0.02, 0.1), "marrow": (0.8, 1.3), "fat": (1.1, 1.6), "muscle": (0.4, 0.65),
             "dura": (1.0, 1.5)},
    MR_T2: {"csf": 0.99, "bone": (0.02, 0.1), "marrow": (0.4, 0.8), "fat": (0.6, 1.1), "muscle": (0.15, 0.3)},
    MR_FLAIR: {"csf": 0.03, "bone": (0.02, 0.1), "marrow": (0.4, 0.8), "fat": (0.6, 1.1), "muscle": (0.2, 0.4)},
}
# Layer thickness in mm (low, high), from the brain surface outwards.
LAYERS = (("csf", (1.0, 3.0)), ("bone", (1.0, 2.0)), ("marrow", (1.5, 4.0)), ("bone", (1.0, 2.0)),
          ("fat", (2.0, 5.0)), ("muscle", (1.5, 3.0)))
PAD_MM = 24.0
MAX_TILT = np.deg2rad(30.0)


def add_head(image: sitk.Image, label: str, rng: np.random.Generator,
             brain_mask: sitk.Image | None = None) -> sitk.Image:
    """A skull-stripped MR `image` of class `label` with a synthetic skull and scalp around it."""
    spacing = image.GetSpacing()
    pad = [int(np.ceil(PAD_MM / s)) for s in spacing]
    image = sitk.ConstantPad(sitk.Cast(image, sitk.sitkFloat32), pad, pad, 0.0)
    a = sitk.GetArrayFromImage(image)
    if brain_mask is None:
        brain = sitk.BinaryFillhole(sitk.Cast(image > 0, sitk.sitkUInt8))
    else:
        brain = sitk.ConstantPad(sitk.Cast(brain_mask > 0, sitk.sitkUInt8), pad, pad, 0)
        brain.CopyInformation(image)
    inside = sitk.GetArrayFromImage(brain) > 0
    distance = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(
        brain, insideIsPositive=False, squaredDistance=False, useImageSpacing=True))
    levels = HEAD_LEVELS[label]
    top = float(np.percentile(a[inside], 95))
    variation = 1.0 + 0.35 * _smooth_field(a.shape, rng, 12.0)
    texture = 1.0 + 0.08 * _smooth_field(a.shape, rng, 1.5)
    out = a.copy()
    edge = np.zeros(a.shape, np.float32)
    for name, (low, high) in LAYERS:
        outer = edge + rng.uniform(low, high) * variation
        shell = ~inside & (distance > edge) & (distance <= outer)
        if name == "csf":
            value = float(np.quantile(a[inside], levels["csf"]))
        else:
            value = top * rng.uniform(*levels[name])
        out[shell] = value * texture[shell]
        if name == "csf" and "dura" in levels:
            dura = ~inside & (distance > outer - 1.0) & (distance <= outer)
            out[dura] = top * rng.uniform(*levels["dura"]) * texture[dura]
        edge = outer
    result = sitk.GetImageFromArray(np.clip(out, 0, None).astype(np.float32))
    result.CopyInformation(image)
    return result


def bias_and_noise(image: sitk.Image, rng: np.random.Generator) -> sitk.Image:
    """Strong smooth bias field (about +-35%) and Rician noise of 0.5-4% of the bright tissue."""
    a = sitk.GetArrayFromImage(image).astype(np.float32)
    top = max(float(np.percentile(a[a > 0], 95)) if np.any(a > 0) else 1.0, 1e-6)
    a = a * np.exp(0.35 * _smooth_field(a.shape, rng, 40.0 / min(image.GetSpacing())))
    sd = top * rng.uniform(0.005, 0.04)
    noisy = np.hypot(a + rng.normal(0.0, sd, a.shape), rng.normal(0.0, sd, a.shape)).astype(np.float32)
    out = sitk.GetImageFromArray(noisy)
    out.CopyInformation(image)
    return out


def reslice(image: sitk.Image, rng: np.random.Generator, *, thickness: float | None = None,
            tilt: float | None = None, coverage: float | None = None, fill: float = 0.0) -> sitk.Image:
    """Thick, possibly oblique slices along a random axis; `coverage` < 1 keeps part of the head;
    points outside `image` read `fill`."""
    thickness = rng.uniform(4.0, 7.0) if thickness is None else thickness
    tilt = rng.uniform(0.0, MAX_TILT) if tilt is None else tilt
    in_plane = max(2.0, max(image.GetSpacing()))
    axis = rng.choice(3, p=[0.2, 0.2, 0.6])            # which image axis becomes the slice normal
    order = [a for a in range(3) if a != axis] + [int(axis)]
    permutation = np.eye(3)[:, order]
    tilt_axis = rng.normal(size=3)
    tilt_axis /= np.linalg.norm(tilt_axis)
    rotation = _axis_angle(tilt_axis, tilt)
    direction = np.asarray(image.GetDirection()).reshape(3, 3) @ rotation @ permutation
    corners = _corners(image)
    local = (corners - corners.mean(0)) @ direction    # corner coordinates along the new axes
    lo, hi = local.min(0), local.max(0)
    fine = np.array([in_plane, in_plane, 1.0])
    size = np.maximum(np.ceil((hi - lo) / fine).astype(int) + 1, 8)
    origin = corners.mean(0) + direction @ lo
    dense = sitk.Resample(image, size.tolist(), sitk.Transform(), sitk.sitkLinear, origin.tolist(),
                          fine.tolist(), direction.ravel().tolist(), fill, sitk.sitkFloat32)
    profile = sitk.RecursiveGaussian(dense, sigma=thickness / 2.355, direction=2)
    step = max(1, int(round(thickness)))
    slices = np.arange(0, size[2], step)
    if coverage is not None and coverage < 1.0:
        keep = max(3, int(round(coverage * len(slices))))
        start = int(rng.integers(0, len(slices) - keep + 1))
        slices = slices[start:start + keep]
    array = sitk.GetArrayFromImage(profile)[slices]
    out = sitk.GetImageFromArray(array)
    out.SetSpacing([in_plane, in_plane, float(step)])
    out.SetDirection(direction.ravel().tolist())
    out.SetOrigin(profile.TransformIndexToPhysicalPoint([0, 0, int(slices[0])]))
    return out


def vendor_scale(image: sitk.Image, rng: np.random.Generator) -> sitk.Image:
    """Bright tissue mapped to 100..4000 and rounded to integers (a scanner's stored values)."""
    a = sitk.GetArrayFromImage(image).astype(np.float64)
    top = max(float(np.percentile(a, 99)), 1e-6)
    scaled = np.round(np.clip(a, 0, None) * (10 ** rng.uniform(2.0, 3.6)) / top)
    out = sitk.GetImageFromArray(scaled.astype(np.int16 if scaled.max() < 32767 else np.int32))
    out.CopyInformation(image)
    return out


def native_like(image: sitk.Image, label: str, rng: np.random.Generator, *, stripped: bool = True,
                brain_mask: sitk.Image | None = None) -> sitk.Image:
    """The whole chain for an MR volume (see the module docstring)."""
    if stripped and rng.random() < 0.8:
        image = add_head(image, label, rng, brain_mask)
    image = bias_and_noise(image, rng)
    if rng.random() < 0.85:
        image = reslice(image, rng, coverage=rng.uniform(0.55, 1.0) if rng.random() < 0.4 else None)
    return vendor_scale(image, rng)


def ct_native_like(image: sitk.Image, rng: np.random.Generator) -> sitk.Image:
    """A CT as a scanner series: thick/oblique slices, partial coverage, HU noise (stays in HU)."""
    if rng.random() < 0.85:
        image = reslice(image, rng, coverage=rng.uniform(0.55, 1.0) if rng.random() < 0.4 else None,
                        fill=-1000.0)
    a = sitk.GetArrayFromImage(image).astype(np.float32)
    a = a + rng.normal(0.0, rng.uniform(2.0, 10.0), a.shape)
    out = sitk.GetImageFromArray(np.round(np.clip(a, -1024, 3071)).astype(np.int16))
    out.CopyInformation(image)
    return out


def ct_without_hu(image: sitk.Image, rng: np.random.Generator) -> sitk.Image:
    """A CT without its Hounsfield signature: an 8-bit window export or a brain cut to zero."""
    a = sitk.GetArrayFromImage(image).astype(np.float32)
    if rng.random() < 0.5:
        level, width = rng.uniform(30, 60), rng.uniform(80, 400)
        a = np.round(255 * np.clip((a - level + width / 2) / width, 0, 1))
    else:
        a = np.where((a > -20) & (a < 100), a + 20.0, 0.0)
    out = sitk.GetImageFromArray(a.astype(np.float32))
    out.CopyInformation(image)
    return out


def _axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _corners(image: sitk.Image) -> np.ndarray:
    size = np.asarray(image.GetSize()) - 1
    grid = np.array(np.meshgrid(*[(0, n) for n in size], indexing="ij")).reshape(3, -1).T
    return np.array([image.TransformContinuousIndexToPhysicalPoint(p.tolist()) for p in grid.astype(float)])


def _smooth_field(shape: tuple, rng: np.random.Generator, sigma_voxels: float) -> np.ndarray:
    """Smooth random field with values in about [-1, 1]."""
    coarse = [max(2, int(np.ceil(n / max(sigma_voxels, 1.0)))) for n in shape]
    small = sitk.GetImageFromArray(rng.normal(size=coarse).astype(np.float32))
    big = sitk.Resample(small, list(shape[::-1]), sitk.Transform(), sitk.sitkLinear,
                        [0.0] * 3, [(c - 1) / max(n - 1, 1) for c, n in zip(coarse[::-1], shape[::-1])],
                        [1, 0, 0, 0, 1, 0, 0, 0, 1], 0.0, sitk.sitkFloat32)
    field = sitk.GetArrayFromImage(big)
    return field / max(float(np.abs(field).max()), 1e-6)

