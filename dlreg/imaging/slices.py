"""2D slices of 3D volumes, and 2D in-plane results embedded back in 3D.

A plane name picks the volume's index axis closest to the anatomical normal
(sagittal: L-R, coronal: P-A, axial: I-S), as Slicer's slice views do. In a
slice, pixel x runs along the lower remaining index axis and y along the
higher one, so an axial slice of an (i, j, k) volume has x = i and y = j.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from dlreg.errors import InputImageError
from dlreg.imaging.geometry import apply_matrix, index_to_physical_matrix

# Anatomical normal of each plane as an LPS axis.
PLANES = {"sagittal": 0, "coronal": 1, "axial": 2}


def axis_for_plane(direction: np.ndarray, plane: str) -> int:
    """Index axis (0=i, 1=j, 2=k) whose LPS direction is closest to the plane's normal."""
    if plane not in PLANES:
        raise InputImageError(f"unknown slice plane '{plane}': use one of {', '.join(PLANES)}")
    return int(np.argmax(np.abs(np.asarray(direction, float).reshape(3, 3)[PLANES[plane], :])))


def slice_axis(image: sitk.Image, plane: str) -> int:
    """Index axis of the image's slices in `plane`."""
    return axis_for_plane(np.asarray(image.GetDirection()), plane)


def in_plane_axes(axis: int) -> tuple[int, int]:
    """Index axes of pixel x and pixel y for slices normal to `axis`."""
    u, v = (a for a in range(3) if a != axis)
    return u, v


def extract_slice(image: sitk.Image, plane: str, index: int) -> tuple[np.ndarray, tuple[float, float]]:
    """One slice as a 2D array (rows = y, cols = x) and its pixel spacing (x, y)."""
    axis = slice_axis(image, plane)
    count = image.GetSize()[axis]
    if not 0 <= index < count:
        raise InputImageError(f"slice {index} is outside the {plane} range 0..{count - 1}")
    array = sitk.GetArrayViewFromImage(image)
    pixels = np.take(array, index, axis=2 - axis).astype(np.float32)
    u, v = in_plane_axes(axis)
    spacing = image.GetSpacing()
    return pixels, (spacing[u], spacing[v])


def slice_count(image: sitk.Image, plane: str) -> int:
    """How many slices the image has in the given plane."""
    return image.GetSize()[slice_axis(image, plane)]


def slice_index_at(index_to_lps: np.ndarray, size: tuple[int, int, int], plane: str,
                   point_lps: np.ndarray) -> int:
    """The slice of `plane` nearest to an LPS point, clamped to the volume.

    Takes the geometry (index -> LPS matrix and size) rather than an image so
    callers holding only a node's geometry need not copy its voxels.
    """
    spacing = np.linalg.norm(index_to_lps[:3, :3], axis=0)
    axis = axis_for_plane(index_to_lps[:3, :3] / spacing, plane)
    continuous = apply_matrix(np.linalg.inv(index_to_lps), np.asarray(point_lps, float))[axis]
    return int(np.clip(np.rint(continuous), 0, size[axis] - 1))


def _slice_frame(axis: int, slice_index: int) -> np.ndarray:
    """4x4 mapping (x, y, 0) slice coordinates to the volume's (i, j, k) index."""
    u, v = in_plane_axes(axis)
    frame = np.zeros((4, 4))
    frame[u, 0] = frame[v, 1] = frame[axis, 2] = frame[3, 3] = 1.0
    frame[axis, 3] = slice_index
    return frame


def embed_slice_transform(pixel_matrix: np.ndarray, fixed: sitk.Image, moving: sitk.Image,
                          plane: str, fixed_slice: int, moving_slice: int) -> np.ndarray:
    """A 3x3 fixed-pixel -> moving-pixel transform as a 4x4 LPS fixed -> moving transform.

    The in-plane part acts on the slice; the through-plane offset carries the
    fixed slice onto the moving slice, so the 4x4 maps the whole fixed plane
    onto the moving plane in physical space.
    """
    pixel_matrix = np.asarray(pixel_matrix, float)
    if pixel_matrix.shape != (3, 3):
        raise ValueError(f"an in-plane transform must be 3x3, got {pixel_matrix.shape}")
    in_plane = np.eye(4)
    in_plane[:2, :2] = pixel_matrix[:2, :2]
    in_plane[:2, 3] = pixel_matrix[:2, 2]
    fixed_frame = _slice_frame(slice_axis(fixed, plane), fixed_slice)
    moving_frame = _slice_frame(slice_axis(moving, plane), moving_slice)
    index_map = moving_frame @ in_plane @ np.linalg.inv(fixed_frame)
    return index_to_physical_matrix(moving) @ index_map @ np.linalg.inv(index_to_physical_matrix(fixed))


def in_plane_rigid(image: sitk.Image, plane: str, slice_index: int, degrees: float,
                   shift_px: tuple[float, float]) -> np.ndarray:
    """A 4x4 LPS fixed -> moving transform rotating about the slice centre and shifting in-plane.

    Used to make known misalignments for tests, benchmarks and the demo.
    """
    angle = np.deg2rad(degrees)
    u, v = in_plane_axes(slice_axis(image, plane))
    centre = (np.array([image.GetSize()[u], image.GetSize()[v]], float) - 1.0) / 2.0
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pixel = np.eye(3)
    pixel[:2, :2] = rotation
    pixel[:2, 2] = centre + np.asarray(shift_px, float) - rotation @ centre
    return embed_slice_transform(pixel, image, image, plane, slice_index, slice_index)
