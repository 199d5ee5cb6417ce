"""Preprocessing for the 3D rigid pipeline: checks, intensity, head mask, canonical grid.

Canonical grid (the network's input, replacing the paper's 256x256x26): a cube of
GRID_SIZE^3 = 64^3 voxels of GRID_SPACING = 4 mm, i.e. a 256 mm field of view, centred on
the head and oriented along a head frame (see `pipeline`). 256 mm holds any adult head,
so one grid serves volumes of any size, spacing and orientation; images are first
reduced to about WORKING_SPACING (2 mm) by bin-averaging, which also anti-aliases the
4 mm sampling. Points outside an image read as 0 (background after normalisation).

Intensity: CT is recognised by air in Hounsfield units (its 0.5th percentile below
CT_AIR_HU) and mapped through the head window; anything else is MR and gets robust
percentile scaling (`dlreg.imaging.intensity`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from dlreg.errors import InputImageError
from dlreg.imaging.geometry import image_corners, index_to_physical
from dlreg.imaging.intensity import normalize_ct, normalize_mr
from dlreg.imaging.io import validate_scalar_image
from dlreg.imaging.transforms import to_sitk_transform

GRID_SIZE = 64
GRID_SPACING = 4.0
WORKING_SPACING = 2.0
CT_AIR_HU = -500.0
MIN_MASK_VOXELS = 100
MIN_EXTENT_MM = 20.0  # thinner than this along an axis, a volume holds no usable part of a head
CLOSING_RADIUS = 2  # voxels of the ~2 mm working grid


@dataclass
class Prepared:
    """A volume ready for the pipeline: normalised working image and head point cloud."""

    image: sitk.Image          # float32 in [0, 1], ~WORKING_SPACING, original orientation
    mask: sitk.Image           # uint8 head mask on the same grid
    points: np.ndarray         # (N, 3) LPS centres of the mask voxels
    modality: str              # "CT" or "MR"

    @property
    def centroid(self) -> np.ndarray:
        """Mean LPS position of the head."""
        return self.points.mean(axis=0)


def check_volume(image: sitk.Image, name: str) -> None:
    """Refuse what the 3D pipeline cannot use: 2D images, one-slice or thin volumes."""
    if not isinstance(image, sitk.Image):
        raise InputImageError(f"{name} must be a SimpleITK image, got {type(image).__name__}")
    if image.GetDimension() != 3 or min(image.GetSize()) < 8:
        raise InputImageError(
            f"{name} is not a 3D volume (size {image.GetSize()}): a volume with at least 8 voxels along "
            "each axis is needed (a 2D image or a single slice cannot be used here)")
    validate_scalar_image(image, name)


def check_extent(image: sitk.Image, name: str) -> None:
    """Refuse a volume thinner than MIN_EXTENT_MM along an axis (a slab, a strip): a rigid
    transform in 3D is not determined by it, and no head fits in it."""
    extent = np.asarray(image.GetSize()) * np.asarray(image.GetSpacing())
    axis = int(np.argmin(extent))
    if extent[axis] < MIN_EXTENT_MM:
        raise InputImageError(
            f"{name} covers only {extent[axis]:.1f} mm along its axis {axis} ({image.GetSize()[axis]} voxels of "
            f"{image.GetSpacing()[axis]:g} mm); 3D rigid registration of a head needs at least "
            f"{MIN_EXTENT_MM:g} mm along every axis")


def detect_modality(array: np.ndarray) -> str:
    """'CT' when the image holds air in Hounsfield units, else 'MR'."""
    return "CT" if float(np.percentile(array, 0.5)) < CT_AIR_HU else "MR"


def shrink_to_working(image: sitk.Image, spacing: float = WORKING_SPACING) -> sitk.Image:
    """Bin-average to about `spacing` mm per axis (never upsamples)."""
    factors = [max(1, int(round(spacing / s))) for s in image.GetSpacing()]
    if image.GetPixelID() != sitk.sitkFloat32:
        image = sitk.Cast(image, sitk.sitkFloat32)
    return sitk.BinShrink(image, factors) if max(factors) > 1 else image


def head_mask(image: sitk.Image) -> sitk.Image:
    """Otsu foreground, largest connected part, closed and hole-filled (uint8 0/1)."""
    otsu = sitk.OtsuThresholdImageFilter()
    otsu.SetInsideValue(0)
    otsu.SetOutsideValue(1)
    mask = otsu.Execute(image)
    if not np.any(sitk.GetArrayViewFromImage(mask)):
        return mask
    largest = sitk.RelabelComponent(sitk.ConnectedComponent(mask), sortByObjectSize=True) == 1
    return sitk.Cast(_close_and_fill_within_box(largest, CLOSING_RADIUS), sitk.sitkUInt8)


def _close_and_fill_within_box(mask: sitk.Image, radius: int) -> sitk.Image:
    """Ball closing then hole filling computed on the mask's bounding box plus a margin, pasted back.

    The same voxels as on the whole grid: a closing never reaches further than its radius
    beyond the mask, and the margin's background ring, connected to everything outside the
    box, leaves the holes to fill unchanged. About half the time: the head fills only part
    of the grid.
    """
    shape = sitk.LabelShapeStatisticsImageFilter()
    shape.Execute(mask)
    box = shape.GetBoundingBox(1)
    size = mask.GetSize()
    lo = [max(0, box[d] - radius - 1) for d in range(3)]
    hi = [min(size[d], box[d] + box[d + 3] + radius + 1) for d in range(3)]
    roi = sitk.RegionOfInterest(mask, [top - bottom for top, bottom in zip(hi, lo)], lo)
    filled = sitk.BinaryFillhole(sitk.BinaryMorphologicalClosing(roi, [radius] * 3))
    return sitk.Paste(mask, filled, filled.GetSize(), [0, 0, 0], lo)


def prepare(image: sitk.Image, name: str = "image") -> Prepared:
    """Check, shrink, normalise and mask one volume."""
    check_volume(image, name)
    check_extent(image, name)
    work = shrink_to_working(image)
    array = sitk.GetArrayFromImage(work)
    modality = detect_modality(array)
    try:
        normalised = normalize_ct(array) if modality == "CT" else normalize_mr(array)
    except InputImageError as exc:
        raise InputImageError(f"{name}: {exc}") from exc
    out = sitk.GetImageFromArray(normalised)
    out.CopyInformation(work)
    mask = head_mask(out)
    kji = np.argwhere(sitk.GetArrayViewFromImage(mask) > 0)
    if len(kji) < MIN_MASK_VOXELS:
        raise InputImageError(
            f"{name}: the head mask is empty ({len(kji)} voxels above the Otsu threshold); "
            "the image holds no head-sized object")
    points = index_to_physical(out, kji[:, ::-1].astype(float))
    return Prepared(out, mask, points, modality)


def canonical_reference(size: int = GRID_SIZE, spacing: float = GRID_SPACING) -> sitk.Image:
    """The canonical grid as an empty image: identity direction, centred on the origin."""
    ref = sitk.Image([size] * 3, sitk.sitkFloat32)
    ref.SetSpacing([spacing] * 3)
    ref.SetOrigin([-(size - 1) * spacing / 2.0] * 3)
    return ref


def sample_canonical(image: sitk.Image, frame: np.ndarray, size: int = GRID_SIZE,
                     spacing: float = GRID_SPACING) -> np.ndarray:
    """Sample `image` at physical points frame @ g for g on the canonical grid -> [k, j, i] array."""
    ref = canonical_reference(size, spacing)
    out = sitk.Resample(image, ref, to_sitk_transform(frame), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)


def image_box_corners(image: sitk.Image, mask: sitk.Image | None = None) -> np.ndarray:
    """The 8 LPS corners of the mask's bounding box in index space (the whole image without mask)."""
    if mask is None:
        return image_corners(image)
    kji = np.argwhere(sitk.GetArrayViewFromImage(mask) > 0)
    lo, hi = kji.min(axis=0)[::-1].astype(float), kji.max(axis=0)[::-1].astype(float)
    grid = np.array(np.meshgrid(*zip(lo, hi), indexing="ij")).reshape(3, -1).T
    return index_to_physical(mask, grid)

