"""Canonical classifier input: any FOV, spacing or orientation -> a fixed low-res cube.

The cube has the rigid pipeline's spacing but fewer voxels (48^3 instead of 64^3 of 4 mm):
contrast is a property of the whole image, and GRID_SIZE^3 = 48^3 voxels of GRID_SPACING =
4 mm (192 mm across, a brain or most of a head) train about twice as fast on a CPU. It is
built with `dlreg.rigid3d.preprocess`'s helpers, axis-aligned in LPS and centred on the
foreground centroid. The volume is first bin-averaged to about the grid spacing
(anti-aliasing), then normalised like the rigid pipeline: CT (air in HU) through the
head window, anything else by robust percentiles, so absolute MR scale never matters.

Two channels are sampled: that normalised intensity, and the foreground's rank (each
foreground voxel's mid-rank among all foreground voxels, in (0, 1]; background 0). The rank
channel is unchanged by any increasing intensity map (gamma, scanner scale, windowing), so
what it keeps is the ordering of the tissues (T1: WM > GM > CSF; T2: CSF brightest; FLAIR:
GM >= WM with dark CSF).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from dlreg.errors import InputImageError
from dlreg.imaging.geometry import index_to_physical
from dlreg.imaging.intensity import normalize_ct, normalize_mr
from dlreg.rigid3d.preprocess import check_volume, detect_modality, sample_canonical, shrink_to_working

GRID_SIZE = 48
GRID_SPACING = 4.0

# Voxels above this normalised value count as foreground (centre and rank channel).
FOREGROUND_LEVEL = 0.05
CHANNELS = ("normalised", "foreground rank")


@dataclass
class CanonicalInput:
    """One volume on the canonical grid, plus what the sanity gates need."""

    array: np.ndarray      # float32 [c, k, j, i], len(CHANNELS) x GRID_SIZE^3, values in [0, 1]
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
    foreground = normalised > FOREGROUND_LEVEL
    kji = np.argwhere(foreground)
    if len(kji) == 0:
        raise InputImageError(f"{name}: no foreground after intensity normalisation")
    centre = index_to_physical(work, kji[:, ::-1].astype(float).mean(axis=0, keepdims=True))[0]
    frame = np.eye(4)
    frame[:3, 3] = centre
    cubes = []
    for channel in (normalised, foreground_rank(raw, foreground)):
        channel_image = sitk.GetImageFromArray(channel)
        channel_image.CopyInformation(work)
        cubes.append(sample_canonical(channel_image, frame, size, spacing))
    return CanonicalInput(np.stack(cubes).astype(np.float32), normalised, hu, centre)


def foreground_rank(values: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """Mid-rank of each foreground voxel's value among the foreground, in (0, 1]; 0 elsewhere."""
    distinct, inverse, counts = np.unique(values[foreground], return_inverse=True, return_counts=True)
    mid = (np.cumsum(counts) - (counts - 1) / 2.0) / foreground.sum()
    out = np.zeros(values.shape, np.float32)
    out[foreground] = mid[inverse.ravel()]
    return out
