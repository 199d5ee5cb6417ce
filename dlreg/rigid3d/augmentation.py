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

MAX_ANGLE_DEG = 15.0
MAX_TRANSLATION_MM = 5.0


def axis_angle_matrix(axis: Sequence[float], angle: float) -> np.ndarray:
    """3x3 rotation by `angle` radians about `axis` (Rodrigues)."""
    k = np.asarray(axis, float)
    k = k / np.linalg.norm(k)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def random_rigid(rng: np.random.Generator, max_angle_deg: float = MAX_ANGLE_DEG,
                 max_translation_mm: float = MAX_TRANSLATION_MM,
                 center: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """Random 4x4 rigid motion: angle U[-a, a] about a uniform random axis, U[-t, t] mm per axis."""
    axis = rng.normal(size=3)
    angle = np.radians(rng.uniform(-max_angle_deg, max_angle_deg))
    shift = rng.uniform(-max_translation_mm, max_translation_mm, size=3)
    center = np.asarray(center, float)
    motion = np.eye(4)
    motion[:3, :3] = axis_angle_matrix(axis, angle)
    motion[:3, 3] = center + shift - motion[:3, :3] @ center
    return motion


def rotation_angle_deg(matrix: np.ndarray) -> float:
    """Angle of the rotation part of a 4x4 (or 3x3) matrix, in degrees."""
    rot = np.asarray(matrix, float)[:3, :3]
    return float(np.degrees(np.arccos(np.clip((np.trace(rot) - 1) / 2, -1.0, 1.0))))


def move_image(image: sitk.Image, motion: np.ndarray) -> sitk.Image:
    """The image with its content moved by `motion` (physical point p -> motion @ p), exactly.

    If `image` was co-registered with a fixed image, the fixed->moving transform of the
    result is `motion`.
    """
    out = sitk.Image(image)
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    out.SetDirection((motion[:3, :3] @ direction).ravel().tolist())
    out.SetOrigin((motion[:3, :3] @ np.asarray(image.GetOrigin(), float) + motion[:3, 3]).tolist())
    return out


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
