"""Physics decides CT against MR: the Hounsfield signature of a CT.

A CT is calibrated in Hounsfield units (HU): air reads about -1000, brain and soft tissue
0-80, bone above 300, and almost nothing lies between air and soft tissue (a skin edge, a
little fat). An MR magnitude image has no absolute scale and a continuum of values from its
dark background up to its brightest tissue. `hounsfield_evidence` tests the raw voxels for
that signature, as stored (HU) and shifted by the 1024 that raw CT storage adds when the
rescale intercept is not applied. The answers:

- "hu": the signature holds: a CT, never an MR contrast;
- "hu_offset": the signature holds after subtracting 1024, with bone present and the soft tissue
  packed into a 40 HU band as brain is: a CT stored raw;
- "offset_unsure": values sit like HU + 1024 (brain packed in a 40 HU band) but without bone
  to confirm it: not decidable;
- "none": no Hounsfield signature: never called CT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AIR_HU = (-1100.0, -850.0)
BODY_HU = -200.0        # above: tissue or bone; below -850: air
SOFT_HU = (-50.0, 120.0)
BONE_HU = 300.0
RAW_OFFSET = 1024.0
MIN_AIR = 0.01          # fraction of all voxels at air level
MIN_SOFT = 0.35         # fraction of tissue voxels in the soft-tissue window
MIN_BONE = 0.01         # fraction of tissue voxels above BONE_HU (needed only for raw storage)
MAX_GAP = 0.35          # fraction of non-air voxels between air and tissue (edges, fat)
PEAK_HU = 40.0          # raw storage only: the densest PEAK_HU-wide band of the soft-tissue window
MIN_PEAK = 0.6          # must hold this share of it (brain sits at 20-45 HU; an MR spreads out)

HU, HU_OFFSET, OFFSET_UNSURE, NONE = "hu", "hu_offset", "offset_unsure", "none"


@dataclass(frozen=True)
class HounsfieldEvidence:
    """What the voxel values say about CT; `reason` is a sentence for the user."""

    signature: str
    air_fraction: float
    soft_tissue_fraction: float
    bone_fraction: float
    gap_fraction: float
    offset: float
    reason: str

    @property
    def is_ct(self) -> bool:
        """True when the voxels are a CT (as stored or raw with the 1024 offset)."""
        return self.signature in (HU, HU_OFFSET)

    def to_json(self) -> dict:
        """Plain-JSON form."""
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def _fractions(values: np.ndarray, offset: float) -> tuple[float, float, float, float]:
    v = values - offset
    n = max(v.size, 1)
    air = float(np.count_nonzero((v >= AIR_HU[0]) & (v <= AIR_HU[1]))) / n
    body = v[v > BODY_HU]
    non_air = np.count_nonzero(v > AIR_HU[1])
    gap = float(np.count_nonzero((v > AIR_HU[1]) & (v <= BODY_HU))) / max(non_air, 1)
    if body.size == 0:
        return air, 0.0, 0.0, gap
    soft = float(np.count_nonzero((body >= SOFT_HU[0]) & (body <= SOFT_HU[1]))) / body.size
    bone = float(np.count_nonzero(body > BONE_HU)) / body.size
    return air, soft, bone, gap


def _peak_share(v: np.ndarray) -> float:
    """Share of the soft-tissue window's voxels in its densest PEAK_HU-wide band."""
    soft = np.sort(v[(v >= SOFT_HU[0]) & (v <= SOFT_HU[1])])
    if soft.size == 0:
        return 0.0
    upper = np.searchsorted(soft, soft + PEAK_HU, side="right")
    return float((upper - np.arange(soft.size)).max()) / soft.size


def hounsfield_evidence(values: np.ndarray) -> HounsfieldEvidence:
    """Test raw voxel values (any grid; a ~4 mm bin-average is enough) for the CT signature."""
    values = np.asarray(values, np.float32).ravel()
    first = None
    for offset in (0.0, RAW_OFFSET):
        air, soft, bone, gap = _fractions(values, offset)
        fits = air >= MIN_AIR and soft >= MIN_SOFT and gap <= MAX_GAP
        if offset and fits:   # raw storage: the tissue must also be packed like brain in HU
            fits = _peak_share(values - offset) >= MIN_PEAK
        if first is None:
            first = (air, soft, bone, gap)
        if not fits:
            continue
        measured = (air, soft, bone, gap, offset)
        if offset == 0.0:
            return HounsfieldEvidence(HU, *measured, (
                f"Hounsfield signature: {100 * air:.0f}% of voxels at air level (-1000 HU), "
                f"{100 * soft:.0f}% of the tissue at 0-80 HU, {100 * bone:.0f}% bone (> 300 HU)"))
        if bone >= MIN_BONE:
            return HounsfieldEvidence(HU_OFFSET, *measured, (
                "CT stored raw (Hounsfield units + 1024, no rescale applied): after subtracting 1024, "
                f"{100 * air:.0f}% of voxels are air, {100 * soft:.0f}% of the tissue at 0-80 HU, "
                f"{100 * bone:.0f}% bone"))
        return HounsfieldEvidence(OFFSET_UNSURE, *measured, (
            "the values look like Hounsfield units stored with a +1024 offset (air near 0, tissue near "
            "1024-1100) but no bone confirms it: if this is a CT, apply its rescale intercept (-1024)"))
    return HounsfieldEvidence(NONE, *first, 0.0, (
        f"no Hounsfield signature (air at -1000 HU: {100 * first[0]:.1f}% of voxels): not a CT"))
