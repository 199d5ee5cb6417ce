"""Canonical classifier input: any FOV, spacing or orientation -> a fixed low-res cube.

The cube has the rigid pipeline's spacing but fewer voxels (48^3 instead of 64^3 of 4 mm):
contrast is a property of the whole image, and GRID_SIZE^3 = 48^3 voxels of GRID_SPACING =
4.8 mm (192 mm across, a brain or most of a head) train fast on a CPU. It is built with
`dlreg.rigid3d.preprocess`'s helpers. The cube is placed by the anatomy alone, never by the
header: centred on the head (Otsu mask, largest component), its axes along the head's principal
axes computed in voxel axes, so the direction and origin in the header never change the input
and a volume acquired in another orientation gives the same cube up to flips (`pipeline`
averages the network over the eight flips). The volume is first bin-averaged to about
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
from dlreg.rigid3d.preprocess import check_volume, head_mask, sample_canonical, shrink_to_working

GRID_SIZE = 40
GRID_SPACING = 4.8

# Voxels above this normalised value count as foreground (centre and rank channel).
FOREGROUND_LEVEL = 0.05
CHANNELS = ("normalised", "foreground rank")
MAX_STORED_SAMPLE = 400_000
MIN_FOREGROUND = 50


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
    channel_image = sitk.GetImageFromArray(normalised)
    channel_image.SetSpacing(work.GetSpacing())       # voxel axes: identity direction, zero origin
    foreground = _foreground(channel_image, normalised, name)
    frame = anatomical_frame(foreground, work.GetSpacing())
    cubes = [sample_canonical(channel_image, frame, size, spacing)]
    rank_image = sitk.GetImageFromArray(foreground_rank(raw, foreground))
    rank_image.SetSpacing(work.GetSpacing())
    cubes.append(sample_canonical(rank_image, frame, size, spacing))
    return CanonicalInput(np.stack(cubes).astype(np.float32), normalised, raw, physics, stored_sample(image))


def _foreground(normalised_image: sitk.Image, normalised: np.ndarray, name: str) -> np.ndarray:
    """The head: Otsu, largest component, closed and filled (noise in the background stays out);
    everything above FOREGROUND_LEVEL when that finds nothing."""
    mask = sitk.GetArrayFromImage(head_mask(normalised_image)) > 0
    if np.count_nonzero(mask) < MIN_FOREGROUND:
        mask = normalised > FOREGROUND_LEVEL
    if not mask.any():
        raise InputImageError(f"{name}: no foreground after intensity normalisation")
    return mask


def anatomical_frame(foreground: np.ndarray, spacing) -> np.ndarray:
    """4x4 frame of the canonical cube from the foreground alone: centred on its centroid, axes
    along its principal axes (largest variance first), each pointing to the side of positive
    third moment. Computed in voxel axes, so the header cannot change it, and a rotation of the
    voxel data rotates it along (the cube's content stays the same up to flips, which the
    network averages over)."""
    points = np.argwhere(foreground)[:, ::-1].astype(float) * np.asarray(spacing, float)
    centre = points.mean(axis=0)
    centred = points - centre
    values, vectors = np.linalg.eigh(centred.T @ centred / len(points))
    axes = vectors[:, np.argsort(values)[::-1]]
    skew = ((centred @ axes) ** 3).mean(axis=0)
    axes = axes * np.where(skew < 0, -1.0, 1.0)
    frame = np.eye(4)
    frame[:3, :3] = axes
    frame[:3, 3] = centre
    return frame


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
