"""Affine estimators from corresponding keypoints (fixed -> moving, pixel coordinates).

Parameters are the first two rows of the 3x3 matrix, row-major:
params = (a11, a12, tx, a21, a22, ty), moving = [[a11, a12, tx], [a21, a22, ty]] @ (x, y, 1).
"""

from __future__ import annotations

import numpy as np

from dlreg.errors import MismatchedInputsError


def params_to_matrix(params: np.ndarray) -> np.ndarray:
    """(..., 6) parameters -> (..., 3, 3) matrices."""
    p = np.asarray(params, dtype=np.float64)
    m = np.zeros(p.shape[:-1] + (3, 3))
    m[..., 0, :] = p[..., 0:3]
    m[..., 1, :] = p[..., 3:6]
    m[..., 2, 2] = 1.0
    return m


def matrix_to_params(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) matrices -> (..., 6) parameters."""
    m = np.asarray(matrix, dtype=np.float64)
    return np.concatenate([m[..., 0, :], m[..., 1, :]], axis=-1)


def closed_form(fixed: np.ndarray, moving: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted least-squares affine with moving ~ A fixed; needs 3 non-collinear points.

    Points (n, 2) give a 3x3 matrix; a batch (B, n, 2) of independent sets gives (B, 3, 3).
    """
    f, m, single = _batched(fixed, moving)
    w = np.ones(f.shape[:2]) if weights is None else np.asarray(weights, dtype=np.float64).reshape(f.shape[:2])
    if ((w > 0).sum(axis=1) < 3).any():
        raise MismatchedInputsError("too few corresponding keypoints to estimate an affine "
                                    "transform: the images have no usable overlap")
    wn = w / w.sum(axis=1, keepdims=True)
    (cf, fc), (cm, mc) = _centred(f, wn), _centred(m, wn)
    cov_ff = np.einsum("bn,bni,bnj->bij", wn, fc, fc)
    cov_mf = np.einsum("bn,bni,bnj->bij", wn, mc, fc)
    eig = np.linalg.eigvalsh(cov_ff)
    if (eig[:, 0] <= 1e-10 * np.maximum(eig[:, 1], 1e-300)).any():
        raise MismatchedInputsError("the keypoints are collinear: the images have too little "
                                    "structure in common to estimate an affine transform")
    out = np.tile(np.eye(3), (len(f), 1, 1))
    out[:, :2, :2] = cov_mf @ np.linalg.inv(cov_ff)
    out[:, :2, 2] = cm - np.einsum("bij,bj->bi", out[:, :2, :2], cf)
    return out[0] if single else out


def _batched(fixed: np.ndarray, moving: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """(B, n, 2) float64 views of one (n, 2) set or a batch of sets, and whether it was one set."""
    f, m = np.asarray(fixed, dtype=np.float64), np.asarray(moving, dtype=np.float64)
    single = f.ndim == 2
    return (f[None], m[None], True) if single else (f, m, False)


def _centred(points: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted centre (B, 2) of (B, n, 2) points with normalised (B, n) weights, and the centred points."""
    centre = np.einsum("bn,bnd->bd", weights, points)
    return centre, points - centre[:, None]


def _similarity_hypotheses(fixed: np.ndarray, moving: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """(B, H, 3, 3) similarity transforms through each (B, H, 2) pair of correspondences."""
    zf = fixed[..., 0] + 1j * fixed[..., 1]
    zm = moving[..., 0] + 1j * moving[..., 1]
    f0, f1 = (np.take_along_axis(zf, pairs[..., k], axis=1) for k in (0, 1))
    m0, m1 = (np.take_along_axis(zm, pairs[..., k], axis=1) for k in (0, 1))
    df = f0 - f1
    a = (m0 - m1) / np.where(np.abs(df) < 1e-9, 1e-9, df)
    b = m0 - a * f0
    h = np.zeros(pairs.shape[:2] + (3, 3))
    h[..., 0, 0], h[..., 0, 1], h[..., 0, 2] = a.real, -a.imag, b.real
    h[..., 1, 0], h[..., 1, 1], h[..., 1, 2] = a.imag, a.real, b.imag
    h[..., 2, 2] = 1.0
    return h


def similarity_fit(fixed: np.ndarray, moving: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least-squares similarity (rotation, isotropic scale, translation), (B, 3, 3)
    for (B, n, 2) points and (B, n) weights."""
    w = weights / weights.sum(axis=1, keepdims=True)
    (cf, f), (cm, m) = _centred(fixed, w), _centred(moving, w)
    zf, zm = f[..., 0] + 1j * f[..., 1], m[..., 0] + 1j * m[..., 1]
    a = (w * np.conj(zf) * zm).sum(axis=1) / np.maximum((w * np.abs(zf) ** 2).sum(axis=1), 1e-12)
    out = np.tile(np.eye(3), (len(w), 1, 1))
    out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1] = a.real, -a.imag, a.imag, a.real
    out[:, :2, 2] = cm - np.einsum("bij,bj->bi", out[:, :2, :2], cf)
    return out


def well_spread(points: np.ndarray, weights: np.ndarray, min_std_px: float) -> np.ndarray:
    """(B,) True where the weighted (B, n, 2) points spread at least min_std_px along every direction."""
    w = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
    _, c = _centred(points, w)
    cov = np.einsum("bn,bni,bnj->bij", w, c, c)
    return np.sqrt(np.maximum(np.linalg.eigvalsh(cov)[:, 0], 0.0)) >= min_std_px


def _residuals(mats: np.ndarray, fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """|A fixed - moving| of (..., 3, 3) matrices on (..., n, 2) points (broadcast), (..., n)."""
    a = mats[..., None, :2, :]
    fx, fy = fixed[..., 0], fixed[..., 1]
    dx = a[..., 0, 0] * fx + a[..., 0, 1] * fy + a[..., 0, 2] - moving[..., 0]
    dy = a[..., 1, 0] * fx + a[..., 1, 1] * fy + a[..., 1, 2] - moving[..., 1]
    return np.sqrt(dx * dx + dy * dy)


def robust(fixed: np.ndarray, moving: np.ndarray, *, rng: np.random.Generator,
           inlier_px: float = 6.0, n_hypotheses: int = 100, irls_steps: int = 4,
           max_log_scale: float = 0.5, affine_min_spread_px: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """RANSAC over 2-point similarity hypotheses, then Tukey-weighted IRLS.

    The IRLS fits a similarity; the last step fits a full affine only when the inlier
    keypoints spread enough to determine it (clustered keypoints make shear ill-posed).
    Points (n, 2) give the 3x3 matrix and the final per-keypoint weights (0 = outlier
    channel); a batch (B, n, 2) of independent sets (the bootstrap) is fitted in one go
    and gives (B, 3, 3) and (B, n).
    """
    f, m, single = _batched(fixed, moving)
    b, n = f.shape[:2]
    if n < 3:
        raise MismatchedInputsError("too few corresponding keypoints to estimate an affine "
                                    "transform: the images have no usable overlap")
    pairs = rng.integers(0, n, size=(b, n_hypotheses, 2))
    rows = np.arange(b)[:, None]
    usable = np.linalg.norm(f[rows, pairs[..., 0]] - f[rows, pairs[..., 1]], axis=-1) > 8.0
    if not usable.any(axis=1).all():
        raise MismatchedInputsError("the keypoints are all in one place: the images have too "
                                    "little structure in common to estimate a transform")
    hyp = _similarity_hypotheses(f, m, pairs)
    scale = np.sqrt(np.abs(np.linalg.det(hyp[..., :2, :2])) + 1e-12)
    res = _residuals(hyp, f[:, None], m[:, None])
    score = np.clip(1.0 - (res / inlier_px) ** 2, 0.0, None).sum(axis=-1)
    score[np.abs(np.log(scale)) > max_log_scale] = -1.0
    score[~usable] = -2.0
    matrix = hyp[np.arange(b), np.argmax(score, axis=1)]
    c = 2.0 * inlier_px
    for step in range(irls_steps + 1):
        res = _residuals(matrix, f, m)
        weights = np.where(res < c, (1.0 - (res / c) ** 2) ** 2, 0.0)
        if ((weights > 0).sum(axis=1) < 2).any():
            raise MismatchedInputsError("no consistent keypoint correspondences: the images "
                                        "have no usable overlap or no common structure")
        matrix = similarity_fit(f, m, weights)
        if step == irls_steps:
            affine = well_spread(f, weights, affine_min_spread_px) & ((weights > 0).sum(axis=1) >= 3)
            if affine.any():
                matrix[affine] = closed_form(f[affine], m[affine], weights[affine])
        c = max(inlier_px * 0.5, c * 0.7)
    return (matrix[0], weights[0]) if single else (matrix, weights)
