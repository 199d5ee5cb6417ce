"""Synthetic rigid misalignments (paper, "Data augmentation").

A synthetic image is its original rotated by a random angle in [-15, 15] degrees about a
uniformly random axis and translated by a random amount in [-5, 5] mm along each axis,
about the head centre. `n` synthetic images are made per original and each keeps its
original's train/validation split. Moving an image is exact: the motion is put into the
image's geometry (origin and direction), so nothing is interpolated or cropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from dlreg.imaging.rigid import PAPER_MAX_ANGLE_DEG as MAX_ANGLE_DEG
from dlreg.imaging.rigid import PAPER_MAX_TRANSLATION_MM as MAX_TRANSLATION_MM
from dlreg.imaging.rigid import move_image, random_rigid


@dataclass(frozen=True)
class AugmentedPair:
    """One synthetic training pair: indices into the pair list, the motion and the split."""

    pair: int
    motion: np.ndarray
    split: str


def augment_pairs(splits: Sequence[str], n: int, seed: int = 0,
                  max_angle_deg: float = MAX_ANGLE_DEG,
                  max_translation_mm: float = MAX_TRANSLATION_MM) -> list[AugmentedPair]:
    """`n` random motions per original pair (about the origin of its canonical frame), split kept."""
    rng = np.random.default_rng(seed)
    return [AugmentedPair(i, random_rigid(rng, max_angle_deg, max_translation_mm), split)
            for i, split in enumerate(splits) for _ in range(n)]


def augment_image(image: sitk.Image, n: int, seed: int = 0, center: Sequence[float] | None = None,
                  max_angle_deg: float = MAX_ANGLE_DEG,
                  max_translation_mm: float = MAX_TRANSLATION_MM) -> list[tuple[sitk.Image, np.ndarray]]:
    """`n` moved copies of one image with their motions (about `center`, default the image centre)."""
    if center is None:
        size = np.asarray(image.GetSize(), float)
        center = image.TransformContinuousIndexToPhysicalPoint(((size - 1) / 2).tolist())
    rng = np.random.default_rng(seed)
    motions = [random_rigid(rng, max_angle_deg, max_translation_mm, center) for _ in range(n)]
    return [(move_image(image, m), m) for m in motions]
