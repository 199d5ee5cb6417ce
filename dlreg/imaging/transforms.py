"""ITK transform files in the resampling convention: fixed point -> moving point.

A registration result is a homogeneous matrix in LPS that maps a point of the
fixed image to the corresponding point of the moving image (what elastix, ANTs
and BRAINSFit write, and what `sitk.Resample(moving, fixed, T)` needs). 3x3
matrices are 2D transforms, 4x4 matrices 3D ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from dlreg.errors import TransformFileError
from dlreg.imaging.io import itk_message
from dlreg.imaging.outputs import atomic_write


def to_sitk_transform(matrix: np.ndarray) -> sitk.AffineTransform:
    """A homogeneous 3x3 (2D) or 4x4 (3D) matrix as a SimpleITK affine transform."""
    matrix = check_homogeneous(matrix)
    dim = matrix.shape[0] - 1
    transform = sitk.AffineTransform(dim)
    transform.SetMatrix(matrix[:dim, :dim].ravel().tolist())
    transform.SetTranslation(matrix[:dim, dim].tolist())
    return transform


def from_sitk_transform(transform: sitk.Transform) -> np.ndarray:
    """Any linear SimpleITK transform (also a composite of linear ones) as a matrix.

    The matrix is read off by mapping the origin and the unit vectors, then
    checked at further points so a non-linear transform is refused, not
    silently linearised.
    """
    dim = transform.GetDimension()
    basis = np.vstack([np.zeros(dim), np.eye(dim)])
    mapped = np.array([transform.TransformPoint(p.tolist()) for p in basis])
    matrix = np.eye(dim + 1)
    matrix[:dim, dim] = mapped[0]
    matrix[:dim, :dim] = (mapped[1:] - mapped[0]).T
    probes = np.random.default_rng(0).uniform(-200.0, 200.0, size=(8, dim))
    expected = probes @ matrix[:dim, :dim].T + matrix[:dim, dim]
    actual = np.array([transform.TransformPoint(p.tolist()) for p in probes])
    if not np.allclose(actual, expected, atol=1e-4):
        raise TransformFileError(
            f"the transform ({transform.GetName()}) is not linear; only linear transforms are supported")
    return matrix


def write_transform(path: str | os.PathLike, matrix: np.ndarray) -> Path:
    """Write a fixed->moving LPS matrix as an ITK transform file (.tfm, .txt, .h5, .mat), whole
    or not at all (`dlreg.imaging.outputs`): the file must read back as the same matrix."""
    transform = to_sitk_transform(matrix)

    def write(temporary: Path) -> None:
        try:
            sitk.WriteTransform(transform, str(temporary))
        except RuntimeError as exc:
            raise TransformFileError(itk_message(exc)) from None

    def verify(temporary: Path) -> None:
        if not np.allclose(read_transform(temporary), matrix, rtol=1e-9, atol=1e-9):
            raise TransformFileError("the written transform does not read back as the same matrix")

    return atomic_write(path, write, verify)


def read_transform(path: str | os.PathLike) -> np.ndarray:
    """Read an ITK transform file as a homogeneous fixed->moving LPS matrix."""
    path = Path(path)
    if not path.is_file():
        raise TransformFileError(f"transform file not found: {path}")
    try:
        transform = sitk.ReadTransform(str(path))
    except RuntimeError:
        raise TransformFileError(f"cannot read transform file {path}: not a valid ITK transform") from None
    return from_sitk_transform(transform)


def check_homogeneous(matrix: np.ndarray) -> np.ndarray:
    """Validate a 3x3 or 4x4 homogeneous matrix (finite, last row 0..0 1, invertible)."""
    matrix = np.asarray(matrix, float)
    if matrix.shape not in ((3, 3), (4, 4)):
        raise TransformFileError(f"a transform matrix must be 3x3 or 4x4, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise TransformFileError("the transform matrix holds NaN or infinite values")
    last = np.zeros(matrix.shape[0])
    last[-1] = 1.0
    if not np.allclose(matrix[-1], last):
        raise TransformFileError("the transform matrix's last row must be (0, ..., 0, 1)")
    if abs(np.linalg.det(matrix)) < 1e-12:
        raise TransformFileError("the transform matrix is singular")
    return matrix
