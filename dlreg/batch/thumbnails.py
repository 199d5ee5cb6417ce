"""QC thumbnails: fixed and registered moving overlaid in three planes, and the uncertainty map.

Volumes are resampled onto one display grid (cubic, LPS-aligned, through the fixed image's
box) so that every thumbnail is anatomically oriented whatever the scan's direction matrix:
axial with anterior up and the patient's right on the left (radiological), coronal and
sagittal with superior up. The overlay is magenta (moving) over green (fixed): aligned
anatomy is grey, misalignment shows as coloured fringes. Uncertainty maps use one fixed
colour scale per task (`SCALE_3D_MM`, `SCALE_2D_PX`) so that thumbnails compare across jobs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from dlreg.imaging.geometry import image_corners
from dlreg.imaging.slices import extract_slice, in_plane_axes, slice_axis

SIZE = 128                # display grid: voxels per side
SCALE_3D_MM = 5.0         # uncertainty colour scale of 3D jobs (mm): the rigid pipeline's spread limit
SCALE_2D_PX = 2.0         # uncertainty colour scale of 2D jobs (standard deviation, px)
GREY_GAIN = 0.6           # how bright the fixed image shows under an uncertainty map
# Viewing orientation per plane: (LPS axis, sign) along which the columns and the rows increase.
# Radiological: the patient's right on the left; anterior (axial) or superior (others) up.
VIEW = {"axial": ((0, 1), (1, 1)), "coronal": ((0, 1), (2, -1)), "sagittal": ((1, 1), (2, -1))}


def display_grid(reference: sitk.Image, size: int = SIZE) -> sitk.Image:
    """A cubic LPS-aligned grid of `size`^3 voxels holding the reference image's box."""
    corners = image_corners(reference)
    low, high = corners.min(axis=0), corners.max(axis=0)
    extent = float(max(high - low)) or 1.0
    spacing = extent / (size - 1)
    grid = sitk.Image([size] * 3, sitk.sitkFloat32)
    grid.SetSpacing([spacing] * 3)
    grid.SetOrigin(((low + high) / 2.0 - extent / 2.0).tolist())
    return grid


def on_grid(image: sitk.Image, grid: sitk.Image) -> np.ndarray:
    """The image sampled on the display grid as [z, y, x] (linear, 0 outside)."""
    return sitk.GetArrayFromImage(sitk.Resample(image, grid, sitk.Transform(), sitk.sitkLinear, 0.0,
                                                sitk.sitkFloat32))


def three_planes(volume: np.ndarray) -> list[np.ndarray]:
    """Axial, coronal and sagittal middle slices of a display-grid volume, oriented for viewing."""
    z, y, x = (n // 2 for n in volume.shape)
    return [volume[z], volume[::-1, y, :], volume[::-1, :, x]]


def unit_range(array: np.ndarray) -> np.ndarray:
    """Intensities scaled to 0..1 between the 1st and 99th percentiles of the nonzero voxels."""
    values = array[array != 0]
    if values.size == 0:
        return np.zeros_like(array, dtype=np.float32)
    low, high = np.percentile(values, (1.0, 99.0))
    return np.clip((array - low) / max(high - low, 1e-6), 0.0, 1.0).astype(np.float32)


def overlay_rgb(fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """Magenta moving over green fixed (both 0..1) as uint8 RGB."""
    return _to_uint8(np.stack([moving, fixed, moving], axis=-1))


def heat_rgb(grey: np.ndarray, value: np.ndarray, scale: float, mask: np.ndarray) -> np.ndarray:
    """A hot colour map of value/scale (inside mask) blended over a dimmed grey picture (0..1)."""
    t = np.clip(value / scale, 0.0, 1.0) * mask
    hot = np.stack([np.clip(3 * t, 0, 1), np.clip(3 * t - 1, 0, 1), np.clip(3 * t - 2, 0, 1)], axis=-1)
    alpha = np.where(mask, 0.35 + 0.65 * t, 0.0)[..., None]
    return _to_uint8((1 - alpha) * GREY_GAIN * grey[..., None] + alpha * hot)


def rigid_bound_map(grid: sitk.Image, center: np.ndarray, rotation_deg: float, translation_mm: float) -> np.ndarray:
    """Upper bound (mm) of the RMS displacement spread of a rigid result at each display voxel.

    The spread of the perturbed rigid predictions is summarised by the RMS rotation angle
    and the RMS translation of the head centre c; for any point x, the RMS of
    |(R_i - R_0)(x - c) + (t_i - t_0)| is at most translation + radians(rotation) |x - c|
    (Minkowski, and |(R - R_0) v| <= angle |v|), so this map never understates the spread.
    """
    size = grid.GetSize()[0]
    axis = np.asarray(grid.GetOrigin()) + grid.GetSpacing()[0] * np.arange(size)[:, None]
    z, y, x = np.meshgrid(axis[:, 2], axis[:, 1], axis[:, 0], indexing="ij")
    distance = np.sqrt((x - center[0]) ** 2 + (y - center[1]) ** 2 + (z - center[2]) ** 2)
    return (translation_mm + np.radians(rotation_deg) * distance).astype(np.float32)


def registration_pictures(fixed: sitk.Image, registered: sitk.Image, uncertainty: np.ndarray,
                          scale: float) -> dict[str, np.ndarray]:
    """{"overlay", "uncertainty"}: three-plane RGB strips of a 3D registration; `uncertainty` is on
    the fixed image's display grid (`rigid_bound_map`)."""
    grid = display_grid(fixed)
    fixed_g = unit_range(on_grid(fixed, grid))
    moving_g = unit_range(on_grid(registered, grid))
    mask = fixed_g > 0.05
    planes = zip(three_planes(fixed_g), three_planes(moving_g), three_planes(uncertainty), three_planes(mask))
    overlay, heat = [], []
    for f, m, u, k in planes:
        overlay.append(overlay_rgb(f, m))
        heat.append(heat_rgb(f, u, scale, k))
    return {"overlay": np.concatenate(overlay, axis=1), "uncertainty": np.concatenate(heat, axis=1)}


def slice_pictures(fixed: sitk.Image, registered: sitk.Image, variance: sitk.Image, plane: str,
                   index: int) -> dict[str, np.ndarray]:
    """{"overlay", "uncertainty"} of one registered slice: images on the fixed grid, variance in px^2."""
    f, m, var = (oriented(extract_slice(image, plane, index)[0], fixed, plane)
                 for image in (fixed, registered, variance))
    f, m = unit_range(f), unit_range(m)
    std_px = np.sqrt(np.maximum(var, 0.0))
    return {"overlay": overlay_rgb(f, m), "uncertainty": heat_rgb(f, std_px, SCALE_2D_PX, f > 0.05)}


def oriented(pixels: np.ndarray, image: sitk.Image, plane: str) -> np.ndarray:
    """A slice (rows = y, cols = x of `extract_slice`) turned to the viewing orientation of its plane.

    A picture without geometry (identity direction) is left as it is.
    """
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    u, v = in_plane_axes(slice_axis(image, plane))
    (col_axis, col_sign), (row_axis, row_sign) = VIEW[plane]
    if int(np.argmax(np.abs(direction[:, u]))) != col_axis:
        pixels, (u, v) = pixels.T, (v, u)
    if np.sign(direction[col_axis, u]) != col_sign:
        pixels = pixels[:, ::-1]
    if np.sign(direction[row_axis, v]) != row_sign:
        pixels = pixels[::-1, :]
    return pixels


def image_pictures(image: sitk.Image) -> dict[str, np.ndarray]:
    """{"image"}: three planes of one volume (classification jobs)."""
    planes = three_planes(unit_range(on_grid(image, display_grid(image))))
    return {"image": _to_uint8(np.concatenate(planes, axis=1))}


def write_png(rgb: np.ndarray, path: str | Path) -> None:
    """Write a [row, col] grey or [row, col, 3] RGB uint8 array as PNG."""
    sitk.WriteImage(sitk.GetImageFromArray(rgb, isVector=rgb.ndim == 3), str(path))


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(values, 0.0, 1.0) * 255).astype(np.uint8)
