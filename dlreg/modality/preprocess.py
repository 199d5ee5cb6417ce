"""Canonical classifier input: any FOV, spacing or orientation -> a fixed low-res cube.

The cube is smaller and coarser than the rigid pipeline's (64^3 voxels of 4 mm): contrast
is a property of the whole image, and GRID_SIZE^3 = 40^3 voxels of GRID_SPACING = 4.8 mm
(192 mm across, a brain or most of a head) train about four times faster on a CPU. It is
built with `dlreg.rigid3d.preprocess`'s helpers, axis-aligned in LPS and centred on the
foreground centroid. The volume is first bin-averaged to about the grid spacing
(anti-aliasing), then normalised like the rigid pipeline: CT (air in HU) through the
head window, anything else by robust percentiles, so absolute MR scale never matters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from dlreg.errors import InputImageError
from dlreg.imaging.geometry import index_to_physical
from dlreg.imaging.intensity import normalize_ct, normalize_mr
from dlreg.rigid3d.preprocess import check_volume, detect_modality, sample_canonical, shrink_to_working

GRID_SIZE = 40
GRID_SPACING = 4.8

# Voxels above this normalised value count as foreground for the centre.
FOREGROUND_LEVEL = 0.05


@dataclass
class CanonicalInput:
    """One volume on the canonical grid, plus what the sanity gates need."""

    array: np.ndarray      # float32 [k, j, i], GRID_SIZE^3, values in [0, 1]
    working: np.ndarray    # float32 [k, j, i] normalised volume at ~GRID_SPACING (original grid axes)
    hu_calibrated: bool    # the volume holds air in Hounsfield units
    centre: np.ndarray     # LPS centre of the cube (mm)


def canonical_input(image: sitk.Image, name: str = "image", size: int = GRID_SIZE,
                    spacing: float = GRID_SPACING) -> CanonicalInput:
    """Check, shrink, normalise and resample one volume onto the canonical cube."""
    check_volume(image, name)
    work = shrink_to_working(image, spacing)
    raw = sitk.GetArrayFromImage(work)
    hu = detect_modality(raw) == "CT"
    try:
        normalised = normalize_ct(raw) if hu else normalize_mr(raw)
    except InputImageError as exc:
        raise InputImageError(f"{name}: {exc}") from exc
    kji = np.argwhere(normalised > FOREGROUND_LEVEL)
    if len(kji) == 0:
        raise InputImageError(f"{name}: no foreground after intensity normalisation")
    centre = index_to_physical(work, kji[:, ::-1].astype(float).mean(axis=0, keepdims=True))[0]
    norm_image = sitk.GetImageFromArray(normalised)
    norm_image.CopyInformation(work)
    frame = np.eye(4)
    frame[:3, 3] = centre
    cube = sample_canonical(norm_image, frame, size, spacing)
    return CanonicalInput(cube.astype(np.float32), normalised, hu, centre)
