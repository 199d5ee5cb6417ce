"""Canonical classifier input: any FOV, spacing or orientation -> a fixed low-res cube.

The cube has the rigid pipeline's spacing but fewer voxels (48^3 instead of 64^3 of 4 mm):
contrast is a property of the whole image, and GRID_SIZE^3 = 48^3 voxels of GRID_SPACING =
4 mm (192 mm across, a brain or most of a head) train about twice as fast on a CPU. It is
built with `dlreg.rigid3d.preprocess`'s helpers and centred on the foreground centroid. The
cube is aligned with the image's own voxel axes, not with LPS: the direction and origin in the
header never change the input, so the answer cannot depend on them (the network is trained on
every axis order and flip, and on oblique slices). The volume is first bin-averaged to about
the grid spacing (anti-aliasing), then normalised: a CT (the Hounsfield signature of
`physics`) through the head window, anything else by robust percentiles, so absolute MR scale
never matters.

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
from dlreg.imaging.intensity import normalize_ct, normalize_mr
from dlreg.modality.physics import HounsfieldEvidence, hounsfield_evidence
from dlreg.rigid3d.preprocess import check_volume, sample_canonical, shrink_to_working

GRID_SIZE = 40
GRID_SPACING = 4.8

# Voxels above this normalised value count as foreground (centre and rank channel).
FOREGROUND_LEVEL = 0.05
CHANNELS = ("normalised", "foreground rank")
MAX_STORED_SAMPLE = 400_000


@dataclass
class CanonicalInput:
    """One volume on the canonical grid, plus what the sanity gates need."""

    array: np.ndarray      # float32 [c, k, j, i], len(CHANNELS) x GRID_SIZE^3, values in [0, 1]
    working: np.ndarray    # float32 [k, j, i] normalised volume at ~GRID_SPACING (original grid axes)
    raw: np.ndarray        # float32 [k, j, i] the stored values at ~GRID_SPACING
    physics: HounsfieldEvidence
    stored_values: np.ndarray  # float32, up to MAX_STORED_SAMPLE of the stored voxel values, strided

    @property
    def hu_calibrated(self) -> bool:
        """The voxels are a CT in Hounsfield units (possibly stored with the raw offset)."""
        return self.physics.is_ct


def canonical_input(image: sitk.Image, name: str = "image", size: int = GRID_SIZE,
                    spacing: float = GRID_SPACING) -> CanonicalInput:
    """Check, shrink, normalise and resample one volume onto the canonical cube."""
    check_volume(image, name)
    work = shrink_to_working(image, spacing)
    raw = sitk.GetArrayFromImage(work)
    physics = hounsfield_evidence(raw)
    try:
        normalised = normalize_ct(raw - physics.offset) if physics.is_ct else normalize_mr(raw)
    except InputImageError as exc:
        raise InputImageError(f"{name}: {exc}") from exc
    foreground = normalised > FOREGROUND_LEVEL
    kji = np.argwhere(foreground)
    if len(kji) == 0:
        raise InputImageError(f"{name}: no foreground after intensity normalisation")
    # Voxel axes as the frame: identity direction, zero origin (the header's geometry is ignored).
    frame = np.eye(4)
    frame[:3, 3] = kji[:, ::-1].astype(float).mean(axis=0) * np.asarray(work.GetSpacing())
    cubes = []
    for channel in (normalised, foreground_rank(raw, foreground)):
        channel_image = sitk.GetImageFromArray(channel)
        channel_image.SetSpacing(work.GetSpacing())
        cubes.append(sample_canonical(channel_image, frame, size, spacing))
    return CanonicalInput(np.stack(cubes).astype(np.float32), normalised, raw, physics, stored_sample(image))


def stored_sample(image: sitk.Image) -> np.ndarray:
    """A regular subsample of the stored voxel values (every n-th voxel along each axis)."""
    view = sitk.GetArrayViewFromImage(image)
    step = max(1, int(np.ceil((view.size / MAX_STORED_SAMPLE) ** (1 / 3))))
    return np.asarray(view[::step, ::step, ::step], np.float32).ravel()


def foreground_rank(values: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """Mid-rank of each foreground voxel's value among the foreground, in (0, 1]; 0 elsewhere."""
    distinct, inverse, counts = np.unique(values[foreground], return_inverse=True, return_counts=True)
    mid = (np.cumsum(counts) - (counts - 1) / 2.0) / foreground.sum()
    out = np.zeros(values.shape, np.float32)
    out[foreground] = mid[inverse.ravel()]
    return out
