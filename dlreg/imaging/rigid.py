"""Rigid frames and motions in 3D: principal-axes frames, axis rotations, random motions.

- `principal_frame`: the symmetry frame of a head point cloud (principal axes by decreasing
  variance, signs fixed by skewness so the frame depends on the head, not on its pose), the
  first step of the pre-alignment and of the paper's ground-truth generation.
- `cube_rotations` / `closest_to_axes`: the 24 axis permutations and flips.
- `random_rigid` / `move_image`: known motions, moved into an image's geometry exactly
  (nothing interpolated), for the uncertainty perturbations, augmentation and tests.
Matrices are 4x4 homogeneous LPS transforms.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
import SimpleITK as sitk

# The paper's augmentation range: up to 15 degrees about a random axis, 5 mm along each axis.
PAPER_MAX_ANGLE_DEG = 15.0
PAPER_MAX_TRANSLATION_MM = 5.0


def principal_frame(points: np.ndarray) -> np.ndarray:
    """4x4 symmetry frame of an (N, 3) point cloud: PCA axes with skewness-resolved signs."""
    points = np.asarray(points, float)
    centre = points.mean(axis=0)
    centred = points - centre
    _, vectors = np.linalg.eigh(centred.T @ centred / len(points))
    axes = vectors[:, ::-1].copy()  # decreasing variance
    projected = centred @ axes
    skew = (projected * projected * projected).mean(axis=0)  # not ** 3: numpy pow is ~50x slower
    strongest = np.argsort(-np.abs(skew))[:2]
    for k in strongest:
        if skew[k] < 0:
            axes[:, k] = -axes[:, k]
    weakest = 3 - int(strongest.sum())
    # Right-handed: e_w = e_(w+1) x e_(w+2) for the weakest-skewed axis w.
    axes[:, weakest] = np.cross(axes[:, (weakest + 1) % 3], axes[:, (weakest + 2) % 3])
    frame = np.eye(4)
    frame[:3, :3] = axes
    frame[:3, 3] = centre
    return frame


def cube_rotations() -> list[np.ndarray]:
    """The 24 proper rotations that permute and flip coordinate axes, identity first."""
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            rot = np.zeros((3, 3))
            rot[list(perm), range(3)] = signs
            if np.linalg.det(rot) > 0:
                out.append(rot)
    return sorted(out, key=lambda r: -np.trace(r))


def closest_to_axes(frame: np.ndarray) -> np.ndarray:
    """The frame with its axes permuted/flipped to lie nearest the LPS axes (a proper rotation)."""
    best = max(cube_rotations(), key=lambda p: np.trace(frame[:3, :3] @ p))
    out = frame.copy()
    out[:3, :3] = frame[:3, :3] @ best
    return out


def axis_angle_matrix(axis: Sequence[float], angle: float) -> np.ndarray:
    """3x3 rotation by `angle` radians about `axis` (Rodrigues)."""
    k = np.asarray(axis, float)
    k = k / np.linalg.norm(k)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def random_rigid(rng: np.random.Generator, max_angle_deg: float = PAPER_MAX_ANGLE_DEG,
                 max_translation_mm: float = PAPER_MAX_TRANSLATION_MM,
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
