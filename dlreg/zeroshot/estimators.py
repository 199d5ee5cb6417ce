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
    """Weighted least-squares affine (3x3) with moving ~ A fixed; needs 3 non-collinear points."""
    w = np.ones(len(fixed)) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = w > 0
    if keep.sum() < 3:
        raise MismatchedInputsError("too few corresponding keypoints to estimate an affine "
                                    "transform: the images have no usable overlap")
    x = np.c_[fixed[keep], np.ones(keep.sum())] * np.sqrt(w[keep])[:, None]
    y = moving[keep] * np.sqrt(w[keep])[:, None]
    sol, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
    if rank < 3:
        raise MismatchedInputsError("the keypoints are collinear: the images have too little "
                                    "structure in common to estimate an affine transform")
    out = np.eye(3)
    out[:2, :] = sol.T
    return out


def _similarity_hypotheses(fixed: np.ndarray, moving: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """(H, 3, 3) similarity transforms through each pair of correspondences."""
    zf = fixed[:, 0] + 1j * fixed[:, 1]
    zm = moving[:, 0] + 1j * moving[:, 1]
    df = zf[pairs[:, 0]] - zf[pairs[:, 1]]
    dm = zm[pairs[:, 0]] - zm[pairs[:, 1]]
    a = dm / np.where(np.abs(df) < 1e-9, 1e-9, df)
    b = zm[pairs[:, 0]] - a * zf[pairs[:, 0]]
    h = np.zeros((len(pairs), 3, 3))
    h[:, 0, 0], h[:, 0, 1], h[:, 0, 2] = a.real, -a.imag, b.real
    h[:, 1, 0], h[:, 1, 1], h[:, 1, 2] = a.imag, a.real, b.imag
    h[:, 2, 2] = 1.0
    return h


def similarity_fit(fixed: np.ndarray, moving: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least-squares similarity (rotation, isotropic scale, translation) as 3x3."""
    w = weights / weights.sum()
    cf, cm = w @ fixed, w @ moving
    f, m = fixed - cf, moving - cm
    zf, zm = f[:, 0] + 1j * f[:, 1], m[:, 0] + 1j * m[:, 1]
    a = (w * np.conj(zf) * zm).sum() / max((w * np.abs(zf) ** 2).sum(), 1e-12)
    out = np.eye(3)
    out[:2, :2] = [[a.real, -a.imag], [a.imag, a.real]]
    out[:2, 2] = cm - out[:2, :2] @ cf
    return out


def well_spread(points: np.ndarray, weights: np.ndarray, min_std_px: float) -> bool:
    """True when the weighted points spread at least min_std_px along every direction."""
    w = weights / max(weights.sum(), 1e-12)
    c = points - w @ points
    cov = (c * w[:, None]).T @ c
    return bool(np.sqrt(max(np.linalg.eigvalsh(cov)[0], 0.0)) >= min_std_px)


def robust(fixed: np.ndarray, moving: np.ndarray, *, rng: np.random.Generator,
           inlier_px: float = 6.0, n_hypotheses: int = 100, irls_steps: int = 4,
           max_log_scale: float = 0.5, affine_min_spread_px: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """RANSAC over 2-point similarity hypotheses, then Tukey-weighted IRLS.

    The IRLS fits a similarity; the last step fits a full affine only when the inlier
    keypoints spread enough to determine it (clustered keypoints make shear ill-posed).
    Returns the 3x3 matrix and the final per-keypoint weights (0 = outlier channel).
    """
    n = len(fixed)
    if n < 3:
        raise MismatchedInputsError("too few corresponding keypoints to estimate an affine "
                                    "transform: the images have no usable overlap")
    pairs = rng.integers(0, n, size=(n_hypotheses, 2))
    spread = np.linalg.norm(fixed[pairs[:, 0]] - fixed[pairs[:, 1]], axis=1)
    pairs = pairs[spread > 8.0]
    if len(pairs) == 0:
        raise MismatchedInputsError("the keypoints are all in one place: the images have too "
                                    "little structure in common to estimate a transform")
    hyp = _similarity_hypotheses(fixed, moving, pairs)
    scale = np.sqrt(np.abs(np.linalg.det(hyp[:, :2, :2])) + 1e-12)
    pred = np.einsum("hij,nj->hni", hyp[:, :2, :2], fixed) + hyp[:, None, :2, 2]
    res = np.linalg.norm(pred - moving[None], axis=2)
    score = np.clip(1.0 - (res / inlier_px) ** 2, 0.0, None).sum(axis=1)
    score[np.abs(np.log(scale)) > max_log_scale] = -1.0
    matrix = hyp[int(np.argmax(score))]
    c = 2.0 * inlier_px
    weights = np.ones(n)
    for step in range(irls_steps + 1):
        res = np.linalg.norm(fixed @ matrix[:2, :2].T + matrix[:2, 2] - moving, axis=1)
        weights = np.where(res < c, (1.0 - (res / c) ** 2) ** 2, 0.0)
        if (weights > 0).sum() < 2:
            raise MismatchedInputsError("no consistent keypoint correspondences: the images "
                                        "have no usable overlap or no common structure")
        if step < irls_steps or not well_spread(fixed, weights, affine_min_spread_px):
            matrix = similarity_fit(fixed, moving, weights)
        else:
            matrix = closed_form(fixed, moving, weights)
        c = max(inlier_px * 0.5, c * 0.7)
    return matrix, weights
