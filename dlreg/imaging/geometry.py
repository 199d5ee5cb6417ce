"""Physical-space geometry: index <-> physical, LPS <-> RAS, rigid parameters.

Conventions (each one is tested):
- Physical space is LPS (ITK). Slicer's RAS differs by negating x and y:
  `LPS_TO_RAS` is its own inverse, and a 4x4 transform converts by conjugation.
- Index order is (i, j, k) = (x, y, z) as in ITK; numpy arrays from SimpleITK
  and Slicer are indexed [k, j, i].
- Rigid parameters are (rx, ry, rz, tx, ty, tz): radians and millimetres.
  The rotation is R = Rz @ Rx @ Ry (ITK Euler3DTransform's default order) about
  a centre c: p' = R (p - c) + c + t. This matches `sitk.Euler3DTransform`
  exactly, so parameters move between the two without conversion.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import SimpleITK as sitk

from dlreg.errors import DLRegError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def index_to_physical_matrix(image: sitk.Image) -> np.ndarray:
    """Homogeneous matrix mapping a continuous index to an LPS point (3D or 2D image)."""
    dim = image.GetDimension()
    direction = np.asarray(image.GetDirection(), float).reshape(dim, dim)
    matrix = np.eye(dim + 1)
    matrix[:dim, :dim] = direction @ np.diag(image.GetSpacing())
    matrix[:dim, dim] = image.GetOrigin()
    return matrix


def index_to_physical(image: sitk.Image, indices: np.ndarray) -> np.ndarray:
    """Continuous indices (N, dim) in (i, j, k) order -> LPS points (N, dim)."""
    return apply_matrix(index_to_physical_matrix(image), indices)


def physical_to_index(image: sitk.Image, points: np.ndarray) -> np.ndarray:
    """LPS points (N, dim) -> continuous indices (N, dim) in (i, j, k) order."""
    return apply_matrix(np.linalg.inv(index_to_physical_matrix(image)), points)


def apply_matrix(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a homogeneous (d+1)x(d+1) matrix to points of shape (N, d) or (d,)."""
    points = np.asarray(points, float)
    d = matrix.shape[0] - 1
    flat = points.reshape(-1, d)
    mapped = flat @ matrix[:d, :d].T + matrix[:d, d]
    return mapped.reshape(points.shape)


def lps_ras_convert(matrix_or_points: np.ndarray) -> np.ndarray:
    """Convert a 4x4 transform or (N, 3) points between LPS and RAS (either way)."""
    arr = np.asarray(matrix_or_points, float)
    if arr.shape == (4, 4):
        return LPS_TO_RAS @ arr @ LPS_TO_RAS
    if arr.shape[-1] != 3:
        raise ValueError(f"expected a 4x4 matrix or points with 3 coordinates, got shape {arr.shape}")
    return arr * np.array([-1.0, -1.0, 1.0])


def rotation_matrix(rx: float, ry: float, rz: float) -> np.ndarray:
    """3x3 rotation R = Rz @ Rx @ Ry (radians), the ITK Euler3D convention."""
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rot_z @ rot_x @ rot_y


def rigid_to_matrix(params: Sequence[float], center: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """(rx, ry, rz, tx, ty, tz) about `center` -> 4x4 homogeneous matrix."""
    params = np.asarray(params, float)
    if params.shape != (6,):
        raise ValueError(f"rigid parameters must be 6 numbers, got shape {params.shape}")
    center = np.asarray(center, float)
    rot = rotation_matrix(*params[:3])
    matrix = np.eye(4)
    matrix[:3, :3] = rot
    matrix[:3, 3] = center + params[3:] - rot @ center
    return matrix


def matrix_to_rigid(matrix: np.ndarray, center: Sequence[float] = (0.0, 0.0, 0.0),
                    tolerance: float = 1e-4) -> np.ndarray:
    """4x4 rigid matrix -> (rx, ry, rz, tx, ty, tz) about `center`; refuses non-rigid input."""
    matrix = np.asarray(matrix, float)
    rot = matrix[:3, :3]
    if not np.allclose(rot @ rot.T, np.eye(3), atol=tolerance) or np.linalg.det(rot) < 0:
        raise DLRegError("the matrix is not a rigid transform (rotation part is not a proper rotation)")
    rx = np.arcsin(np.clip(rot[2, 1], -1.0, 1.0))
    if abs(np.cos(rx)) > 1e-9:
        ry = np.arctan2(-rot[2, 0], rot[2, 2])
        rz = np.arctan2(-rot[0, 1], rot[1, 1])
    else:  # gimbal lock: only rz + ry (or rz - ry) is defined; put it all in rz
        ry = 0.0
        rz = np.arctan2(rot[1, 0], rot[0, 0])
    center = np.asarray(center, float)
    translation = matrix[:3, 3] - center + rot @ center
    return np.array([rx, ry, rz, *translation])


def image_corners(image: sitk.Image) -> np.ndarray:
    """The 2^dim corner points of the image's voxel-centre box, in LPS."""
    size = np.asarray(image.GetSize(), float) - 1.0
    dim = image.GetDimension()
    grid = np.array(np.meshgrid(*[[0.0, s] for s in size], indexing="ij")).reshape(dim, -1).T
    return index_to_physical(image, grid)


def same_geometry(a: sitk.Image, b: sitk.Image, tolerance: float = 1e-6) -> bool:
    """True when two images share size, origin, spacing and direction."""
    return (a.GetSize() == b.GetSize()
            and np.allclose(index_to_physical_matrix(a), index_to_physical_matrix(b), atol=tolerance))


def with_geometry(array: np.ndarray, spacing: Sequence[float], origin: Sequence[float],
                  direction: np.ndarray) -> sitk.Image:
    """Build a SimpleITK image from a [k, j, i] array and explicit LPS geometry."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(o) for o in origin])
    image.SetDirection([float(d) for d in np.asarray(direction, float).ravel()])
    return image
