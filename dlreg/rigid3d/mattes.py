"""Mattes mutual information of a rigid transform, its exact gradient, and a BFGS minimiser.

Why not ITK's metric: with more than one thread ITK accumulates the joint histogram in a
varying order, so the same registration differs from run to run (measured: up to 0.1 deg
and 0.2 mm on a BraTS pair). Here every sum is a numpy reduction over arrays in a fixed
order: the same inputs give the same bytes, whatever the thread count.

The metric (Mattes et al. 2003, as ITK's v4 metric): a fixed set of sample points of the
fixed image (seeded, jittered inside their voxels), each fixed intensity in one of `bins`
histogram bins (zero-order Parzen window), each moving intensity (trilinear, zero outside
the image) spread over four bins by a cubic B-spline, two bins of padding at either end.
MI = sum p log(p / (p_f p_m)); its gradient is exact for the trilinear interpolant, so a
quasi-Newton method converges in a few tens of evaluations where a regular-step gradient
descent needs a hundred or more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import SimpleITK as sitk

from dlreg.imaging.geometry import index_to_physical_matrix, rigid_to_matrix, rotation_matrix

PADDING_BINS = 2
PAD_VOXELS = 2  # zero border: points beyond it read 0 with zero gradient


def _bspline_weights(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First of the four bins that a cubic B-spline Parzen window at t touches, the four
    weights (N, 4) and their derivatives with respect to t."""
    base = np.floor(t)
    u = t - base
    v = 1.0 - u
    u2, u3, v2 = u * u, u * u * u, v * v
    weight = np.stack([v2 * v, 3 * u3 - 6 * u2 + 4, -3 * u3 + 3 * u2 + 3 * u + 1, u3], axis=1) / 6.0
    slope = np.stack([-v2, 3 * u2 - 4 * u, -3 * u2 + 2 * u + 1, u2], axis=1) / 2.0
    return base.astype(np.intp) - 1, weight, slope


def _rotation_derivatives(rx: float, ry: float, rz: float) -> list[np.ndarray]:
    """d R / d rx, d R / d ry, d R / d rz for R = Rz Rx Ry."""
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    d_x = np.array([[0, 0, 0], [0, -sx, -cx], [0, cx, -sx]])
    d_y = np.array([[-sy, 0, cy], [0, 0, 0], [-cy, 0, -sy]])
    d_z = np.array([[-sz, -cz, 0], [cz, -sz, 0], [0, 0, 0]])
    return [rot_z @ d_x @ rot_y, rot_z @ rot_x @ d_y, d_z @ rot_x @ rot_y]


class _Volume:
    """A float image padded with zeros, for trilinear reads (value and gradient) at LPS points."""

    def __init__(self, image: sitk.Image) -> None:
        array = sitk.GetArrayViewFromImage(image)
        self.flat = np.pad(np.asarray(array, np.float32), PAD_VOXELS).ravel()
        self.shape = tuple(s + 2 * PAD_VOXELS for s in array.shape)  # (z, y, x)
        to_index = np.linalg.inv(index_to_physical_matrix(image))
        self.linear, self.offset = to_index[:3, :3], to_index[:3, 3] + PAD_VOXELS
        # points beyond the zero border are clipped into it: value 0, gradient 0
        self.upper = np.array(self.shape[::-1], np.float32) - np.float32(1.001)

    def read(self, points: np.ndarray, gradient: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Values (N,) at LPS points (N, 3) and, with `gradient`, d value / d point (N, 3)."""
        nz, ny, nx = self.shape
        q = (points @ self.linear.T + self.offset).astype(np.float32)
        np.clip(q, 0.0, self.upper, out=q)
        base = np.floor(q)
        fx, fy, fz = (q - base).T
        i, j, k = base.astype(np.intp).T
        idx = (k * ny + j) * nx + i
        flat, sy, sz = self.flat, nx, nx * ny
        c000, c100, c010, c110 = flat[idx], flat[idx + 1], flat[idx + sy], flat[idx + sy + 1]
        c001, c101, c011, c111 = flat[idx + sz], flat[idx + sz + 1], flat[idx + sz + sy], flat[idx + sz + sy + 1]
        c00, c10 = c000 + fx * (c100 - c000), c010 + fx * (c110 - c010)
        c01, c11 = c001 + fx * (c101 - c001), c011 + fx * (c111 - c011)
        c0, c1 = c00 + fy * (c10 - c00), c01 + fy * (c11 - c01)
        value = (c0 + fz * (c1 - c0)).astype(float)
        if not gradient:
            return value, None
        d_x = ((c100 - c000) * (1 - fy) + (c110 - c010) * fy) * (1 - fz) + \
              ((c101 - c001) * (1 - fy) + (c111 - c011) * fy) * fz
        d_y = (c10 - c00) * (1 - fz) + (c11 - c01) * fz
        d_index = np.stack([d_x, d_y, c1 - c0], axis=1)
        return value, d_index.astype(float) @ self.linear  # chain rule: index = linear @ point + offset


def sample_points(fixed: sitk.Image, n_samples: int, seed: int) -> np.ndarray:
    """Up to `n_samples` LPS points: seeded voxels of `fixed`, each jittered within its voxel."""
    size = int(np.prod(fixed.GetSize()))
    rng = np.random.default_rng(seed)
    candidates = np.sort(rng.choice(size, n_samples, replace=False)) if size > n_samples else np.arange(size)
    kji = np.stack(np.unravel_index(candidates, fixed.GetSize()[::-1]), axis=1).astype(float)
    ijk = kji[:, ::-1] + rng.uniform(-0.5, 0.5, kji.shape)
    ijk = np.clip(ijk, 0.0, np.asarray(fixed.GetSize(), float) - 1.0)
    matrix = index_to_physical_matrix(fixed)
    return ijk @ matrix[:3, :3].T + matrix[:3, 3]


@dataclass
class MattesMI:
    """Negative Mattes MI between a fixed point set and a moving image, as a function of the
    Euler3D parameters (rx, ry, rz, tx, ty, tz) about `center` (fixed -> moving)."""

    fixed_values: np.ndarray
    points: np.ndarray
    moving: _Volume
    center: np.ndarray
    bins: int
    moving_range: tuple[float, float]

    @classmethod
    def build(cls, fixed: sitk.Image, moving: sitk.Image, center: np.ndarray, *, n_samples: int, bins: int,
              seed: int) -> "MattesMI":
        points = sample_points(fixed, n_samples, seed)
        values, _ = _Volume(fixed).read(points, gradient=False)
        moving_array = sitk.GetArrayViewFromImage(moving)
        moving_range = (min(0.0, float(moving_array.min())), float(moving_array.max()))
        return cls(values, points, _Volume(moving), np.asarray(center, float), bins, moving_range)

    def __post_init__(self) -> None:
        usable = self.bins - 2 * PADDING_BINS
        lo, hi = float(self.fixed_values.min()), float(self.fixed_values.max())
        scaled = (self.fixed_values - lo) / max(hi - lo, 1e-12) * usable
        self.fixed_bins = np.clip(scaled.astype(np.intp), 0, usable - 1) + PADDING_BINS
        self.offsets = self.points - self.center
        m_lo, m_hi = self.moving_range
        self.moving_scale = usable / max(m_hi - m_lo, 1e-12)  # bins per intensity unit

    def reflected(self, normal: np.ndarray) -> "MattesMI":
        """The same samples reflected across the plane through the centre with `normal`: the
        metric of the hypothesis that the moving image is a mirror image of the fixed one."""
        n = np.asarray(normal, float) / np.linalg.norm(normal)
        points = self.points - 2.0 * np.outer(self.offsets @ n, n)
        return MattesMI(self.fixed_values, points, self.moving, self.center, self.bins, self.moving_range)

    def radius(self) -> float:
        """RMS distance (mm) of the sample points from the centre: mm per radian at the head."""
        return float(np.sqrt(np.mean(np.sum(self.offsets ** 2, axis=1))))

    def __call__(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        """(-MI, its gradient with respect to the 6 parameters)."""
        rotation = rotation_matrix(*params[:3])
        points = self.offsets @ rotation.T + (self.center + params[3:])
        value, d_point = self.moving.read(points)
        t = (value - self.moving_range[0]) * self.moving_scale + PADDING_BINS
        first, weight, slope = _bspline_weights(np.clip(t, PADDING_BINS, self.bins - PADDING_BINS - 1e-9))
        columns = first[:, None] + np.arange(4)
        rows = np.broadcast_to(self.fixed_bins[:, None], columns.shape)
        joint = np.bincount((rows * self.bins + columns).ravel(), weight.ravel(),
                            self.bins * self.bins).reshape(self.bins, self.bins)
        joint /= joint.sum()
        p_fixed, p_moving = joint.sum(1), joint.sum(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_joint = np.where(joint > 0, np.log(joint), 0.0)
            log_moving = np.where(p_moving > 0, np.log(p_moving), 0.0)
            log_fixed = np.where(p_fixed > 0, np.log(p_fixed), 0.0)
        mi = float(np.sum(joint * (log_joint - log_moving[None, :] - log_fixed[:, None])))
        # d MI / d value_i = sum_k d w_ik / d t_i (log p(f_i, k) - log p_m(k)) d t / d value / N
        terms = log_joint[rows, columns] - log_moving[columns]
        d_value = np.sum(slope * terms, axis=1) * self.moving_scale / len(value)
        d_points = d_value[:, None] * d_point                                 # d MI / d point_i
        outer = d_points.T @ self.offsets                                     # sum_i g_i (x_i - c)^T
        gradient = np.array([np.sum(d * outer) for d in _rotation_derivatives(*params[:3])]
                            + list(d_points.sum(axis=0)))
        return -mi, -gradient

    def matrix(self, params: np.ndarray) -> np.ndarray:
        """4x4 fixed -> moving of the parameters."""
        return rigid_to_matrix(params, self.center)


def bfgs(function: Callable[[np.ndarray], tuple[float, np.ndarray]], start: np.ndarray, scales: np.ndarray, *,
         max_iterations: int, tolerance: float, max_step: float) -> tuple[np.ndarray, int]:
    """Minimise `function` (value, gradient) from `start` by BFGS with a backtracking line search.

    `scales` turn parameters into comparable units (mm at the head for rotations); the
    search stops when a step moves less than `tolerance` in those units; no step exceeds
    `max_step`. Returns the parameters and the number of function evaluations.
    """
    z = np.asarray(start, float) * scales
    value, gradient = function(z / scales)
    gradient = gradient / scales
    inverse_hessian = None
    evaluations = 1
    for _ in range(max_iterations):
        if inverse_hessian is None:  # first step: steepest descent of length 1 (mm)
            direction = -gradient / max(float(np.linalg.norm(gradient)), 1e-300)
        else:
            direction = -inverse_hessian @ gradient
        length = float(np.linalg.norm(direction))
        if length > max_step:
            direction *= max_step / length
        slope = float(gradient @ direction)
        if slope >= 0:  # not a descent direction: restart from steepest descent
            inverse_hessian, direction = None, -gradient / max(float(np.linalg.norm(gradient)), 1e-300)
            slope = float(gradient @ direction)
        alpha = 1.0
        for _ in range(12):
            trial_value, trial_gradient = function((z + alpha * direction) / scales)
            evaluations += 1
            if trial_value <= value + 1e-4 * alpha * slope:
                break
            alpha *= 0.5
        else:
            break  # no decrease along the direction: at the optimum within the sampling's resolution
        step = alpha * direction
        trial_gradient = trial_gradient / scales
        change = trial_gradient - gradient
        z, value, gradient = z + step, trial_value, trial_gradient
        curvature = float(change @ step)
        if curvature > 1e-12:
            if inverse_hessian is None:
                inverse_hessian = np.eye(len(z)) * curvature / float(change @ change)
            rho = 1.0 / curvature
            left = np.eye(len(z)) - rho * np.outer(step, change)
            inverse_hessian = left @ inverse_hessian @ left.T + rho * np.outer(step, step)
        if float(np.linalg.norm(step)) < tolerance:
            break
    return z / scales, evaluations
