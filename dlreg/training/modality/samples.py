"""Augmented samples on the canonical grid, built once per training run.

Every volume gives its un-augmented canonical input plus `per_volume` augmented ones
(`augment.augment`); `n_ood` synthetic out-of-distribution volumes (label -1) are added
for outlier exposure. Sample k of volume v uses the seed (seed, v, k), so the set is
reproducible and independent of the order of work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dlreg.errors import InputImageError
from dlreg.imaging.io import read_image
from dlreg.modality.classes import CLASSES, CT
from dlreg.modality.gates import sanity_reason
from dlreg.modality.preprocess import canonical_input
from dlreg.progress import ProgressCallback, report
from dlreg.sampledata import sample_path
from dlreg.training.modality.augment import augment, ood_volume
from dlreg.training.modality.data import Volume
from dlreg.training.modality.losses import OOD_LABEL


@dataclass
class SampleSet:
    """Canonical inputs with labels (-1: out of distribution) and their provenance."""

    x: np.ndarray            # (N, C, G, G, G) float16
    y: np.ndarray            # (N,) int
    subject: np.ndarray      # (N,) str; "ood" for OOD samples
    original: np.ndarray     # (N,) bool: un-augmented volume
    synthetic: np.ndarray    # (N,) bool: synthetic (pseudo-CT or OOD)
    name: np.ndarray         # (N,) str

    def subset(self, keep: np.ndarray) -> "SampleSet":
        """The samples where `keep` is True."""
        return SampleSet(*(getattr(self, f)[keep] for f in
                           ("x", "y", "subject", "original", "synthetic", "name")))


def make_samples(volumes: list[Volume], *, per_volume: int = 12, n_ood: int = 60,
                 seed: int = 0, extra_for_rare: int = 3,
                 progress: ProgressCallback | None = None) -> SampleSet:
    """Canonical samples of every volume (real CTs get `extra_for_rare` times more)."""
    rows = []
    total = len(volumes) + 1
    for v_index, volume in enumerate(volumes):
        report(progress, v_index / total, f"augmenting {volume.name}")
        count = per_volume * (extra_for_rare if volume.label == CT and not volume.synthetic else 1)
        for k in range(count + 1):
            rng = np.random.default_rng([seed, v_index, k])
            image = volume.image if k == 0 else augment(volume.image, rng, volume.label == CT)
            array = canonical_input(image, volume.name).array
            rows.append((array, CLASSES.index(volume.label), volume.subject, k == 0,
                         volume.synthetic, volume.name))
    report(progress, (total - 1) / total, "making out-of-distribution volumes")
    template = read_image(sample_path("mni_gm_2mm.nrrd"))
    k = 0
    while sum(r[1] == OOD_LABEL for r in rows) < n_ood:
        rng = np.random.default_rng([seed, 10_000, k])
        k += 1
        try:
            prepared = canonical_input(ood_volume(rng, template=template), "ood")
        except InputImageError:
            continue
        if sanity_reason(prepared.working) is None:   # only what the gates let through
            rows.append((prepared.array, OOD_LABEL, "ood", False, True, f"ood-{k}"))
    report(progress, 1.0, f"{len(rows)} samples")
    x, y, subject, original, synthetic, name = zip(*rows)
    return SampleSet(np.stack(x).astype(np.float16), np.asarray(y), np.asarray(subject),
                     np.asarray(original), np.asarray(synthetic), np.asarray(name))
