"""Intensity refinement: affine maximisation of normalised-gradient-field (NGF) alignment.

NGF (Haber & Modersitzki 2006) compares edge directions, not intensities, and squares the
cosine, so it is indifferent to contrast and polarity (T1 vs T2 vs FLAIR). It is evaluated
sparsely: only at the strongest edge pixels of the fixed image, where the moving image's
gradient is sampled at the mapped position and carried back by the chain rule
(grad(M o A) = A^T grad(M)(A p)). Coarse to fine on an image pyramid; deterministic.

Optimiser: Gauss-Newton on the residuals r = n_F x v_M (2D cross product of the unit fixed
edge direction with the eps-normalised moving gradient; r^2 = sin^2 of the angle between
the edges, weighted by edge strength), with analytic Jacobians (the moving image's Hessian
is sampled with its gradient), an adaptive step length and acceptance on the NGF score.
No autograd: one evaluation per iteration, a few milliseconds on 8000-16000 points.
Candidate matrices are batched. The uncertainty runs (blackening_response) reuse the same
points and Jacobian: one Gauss-Newton step per blackened image, all runs in one solve.
edge_lock measures how sharply the NGF alignment peaks at a result (the failure signal).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlreg.errors import MismatchedInputsError
from dlreg.zeroshot.features import gaussian_blur, image_derivatives

N_EDGE_POINTS = 8000


def level_matrix(factor: float) -> torch.Tensor:
    """Level pixel -> full-resolution pixel for average pooling by `factor`."""
    s = torch.eye(3, dtype=torch.float64)
    s[0, 0] = s[1, 1] = factor
    s[0, 2] = s[1, 2] = (factor - 1) / 2.0
    return s


def pyramid(x: torch.Tensor, factor: int, smooth: float) -> torch.Tensor:
    x = x[:, None].float()
    x = F.avg_pool2d(x, factor) if factor > 1 else x
    return gaussian_blur(x, smooth)


def _gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 2, H, W) gradient images and the per-image NGF epsilon (mean gradient magnitude)."""
    gx, gy, _ = image_derivatives(x)
    g = torch.cat([gx, gy], dim=1)
    eps = torch.sqrt((g * g).sum(dim=1)).mean(dim=(1, 2)).clamp_min(1e-6)
    return g, eps


def _edge_points(g: torch.Tensor, eps: torch.Tensor, n_points: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Level-pixel positions (K, 3) and unit-normalised fixed gradients (K, 2) at the strongest edges
    of the fixed level's (1, 2, h, w) gradient image g with NGF epsilon eps."""
    norm2 = (g * g).sum(dim=1)[0]
    weight = norm2 / (norm2 + eps[0] ** 2)
    flat = weight.flatten()
    edge = flat > 0  # flat pixels (a zero background) carry no direction
    k = min(n_points, int(edge.sum()))
    if k < 1:
        raise MismatchedInputsError("the fixed image has no edges to align")
    if k < flat.numel():  # the k strongest (ties at the threshold included), in raster order
        edge &= flat >= torch.kthvalue(flat, flat.numel() - k + 1).values
    idx = torch.nonzero(edge)[:, 0]
    w = g.shape[-1]
    ys, xs = (idx // w).double(), (idx % w).double()
    pts = torch.stack([xs, ys, torch.ones_like(xs)], dim=1)
    n = g[0].flatten(1)[:, idx].T / torch.sqrt(norm2.flatten()[idx] + eps[0] ** 2)[:, None]
    return pts, n


def _update(base: torch.Tensor, d: torch.Tensor, centre: torch.Tensor, half: float) -> torch.Tensor:
    """base composed with a centred affine update; d = (a11-1, a12, tx, a21, a22-1, ty) * (half, half, 1)."""
    n = d.shape[0]
    scale = torch.tensor([1.0 / half, 1.0 / half, 1.0, 1.0 / half, 1.0 / half, 1.0], dtype=d.dtype)
    eye = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], dtype=d.dtype)
    upd = (eye + d * scale).view(n, 2, 3)
    lin = torch.cat([upd, torch.tensor([0.0, 0.0, 1.0], dtype=d.dtype).expand(n, 1, 3)], dim=1)
    return base @ (centre @ lin @ torch.linalg.inv(centre))


def _centre(h: int, w: int) -> torch.Tensor:
    c = torch.eye(3, dtype=torch.float64)
    c[0, 2], c[1, 2] = (w - 1) / 2.0, (h - 1) / 2.0
    return c


def _hessians(g: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) second derivatives (xx, xy, yy) from (N, 2, H, W) gradient images."""
    p = F.pad(g, (1, 1, 1, 1), mode="replicate")
    dx = 0.5 * (p[..., 1:-1, 2:] - p[..., 1:-1, :-2])
    dy = 0.5 * (p[..., 2:, 1:-1] - p[..., :-2, 1:-1])
    return torch.stack([dx[:, 0], 0.5 * (dy[:, 0] + dx[:, 1]), dy[:, 1]], dim=1)


class _Level:
    """NGF of one pyramid level at the sparse fixed edge points, with its Gauss-Newton system."""

    def __init__(self, fixed, moving, factor, smooth, n_points, centre, half):
        if len(moving) == 1:  # one pyramid call for both images
            both = pyramid(torch.cat([fixed[None], moving]), factor, smooth)
            fixed_l, moving_l = both[:1], both[1:]
        else:
            fixed_l, moving_l = pyramid(fixed[None], factor, smooth), pyramid(moving, factor, smooth)
        g_fix, eps_fix = _gradients(fixed_l)
        pts_l, n_fix = _edge_points(g_fix, eps_fix, n_points)
        self.fixed_grad, self.fixed_eps2 = g_fix, eps_fix[:, None].float() ** 2  # for edge_lock
        g_mov, eps_m = _gradients(moving_l)
        hess = _hessians(g_mov)
        self.fields = torch.cat([g_mov, hess], dim=1)  # (N|1, 5, h, w)
        self.eps2 = eps_m[:, None].float() ** 2
        mh, mw = g_mov.shape[-2:]
        s = level_matrix(float(factor))
        self.pts = pts_l @ s.T  # full-resolution pixel positions of the edge points (K, 3)
        to_norm = torch.tensor([[2.0 / max(mw - 1, 1), 0, -1.0], [0, 2.0 / max(mh - 1, 1), -1.0],
                                [0, 0, 1.0]], dtype=torch.float64)
        self.pre = to_norm @ torch.linalg.inv(s)
        self.inv_factor = 1.0 / factor
        n = n_fix.float()  # (K, 2)
        nn = torch.sqrt((n * n).sum(-1, keepdim=True)).clamp_min(1e-12)
        self.n_t, self.n_w = n.T.contiguous(), nn[:, 0] ** 2  # (2, K), (K,)
        self.n_hat_t = (n / nn).T.contiguous()
        self.n_perp_t = torch.stack([-self.n_hat_t[1], self.n_hat_t[0]])
        self.u_t = ((self.pts[:, :2] - centre[:2, 2]) / half).float().T.contiguous()  # (2, K) centred, scaled
        self.half = half

    def point_scores(self, a: torch.Tensor, fixed_self: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Per edge point NGF terms (N, K) of matrices a (N, 3, 3), and which points map inside (N, K).

        fixed_self: against the fixed image itself instead of the moving one (a then only shifts it).
        """
        fields, eps2 = (self.fixed_grad, self.fixed_eps2) if fixed_self else (self.fields[:, :2], self.eps2)
        grid = (self.pts @ (self.pre @ a)[:, :2].transpose(1, 2))[:, None].float()
        fields = fields if len(fields) == len(a) else fields.expand(len(a), -1, -1, -1)
        f = F.grid_sample(fields, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[:, :, 0]
        g = grid[:, 0].abs()
        inside = ((g[..., 0] <= 1) & (g[..., 1] <= 1)).float()
        b = a[:, :2, :2].float()
        b00, b01, b10, b11 = (b[:, i, j, None] for i in (0, 1) for j in (0, 1))
        w = torch.stack([f[:, 0] * b00 + f[:, 1] * b10, f[:, 0] * b01 + f[:, 1] * b11], 1)  # A^T grad
        dot = (w * self.n_t).sum(1)
        return dot * dot / ((w * w).sum(1) + eps2) * inside, inside

    def evaluate(self, a: torch.Tensor, system: bool = True, terms: bool = False):
        """NGF score (N,) of matrices a (N, 3, 3); with system: Gauss-Newton (N, 6, 6) and (N, 6).

        With terms: the score, the Jacobian (N, 6, K), residuals (N, K), weights (N, K) and the
        sampling grid, for blackening_response.
        """
        if not system:
            terms, inside = self.point_scores(a)
            return (terms.sum(1) / inside.sum(1).clamp_min(1.0)).double()
        grid = (self.pts @ (self.pre @ a)[:, :2].transpose(1, 2))[:, None].float()  # (N, 1, K, 2)
        fields = self.fields
        fields = fields if len(fields) == len(a) else fields.expand(len(a), -1, -1, -1)
        f = F.grid_sample(fields, grid, mode="bilinear", padding_mode="zeros",
                          align_corners=True)[:, :, 0]  # (N, 5, K)
        g = grid[:, 0].abs()
        inside = ((g[..., 0] <= 1) & (g[..., 1] <= 1)).float()  # (N, K)
        b = a[:, :2, :2].float()
        b00, b01, b10, b11 = (b[:, i, j, None] for i in (0, 1) for j in (0, 1))
        gx, gy = f[:, 0], f[:, 1]
        w = torch.stack([gx * b00 + gy * b10, gx * b01 + gy * b11], 1)  # (N, 2, K): A^T grad M
        rho2 = (w * w).sum(1) + self.eps2
        dot = (w * self.n_t).sum(1)
        cnt = inside.sum(1).clamp_min(1.0)
        score = ((dot * dot / rho2 * inside).sum(1) / cnt).double()
        # residual r = n_hat x v, v = w / rho; d r = av . d w with av = (n_hat_perp - r v) / rho
        rho = torch.sqrt(rho2)[:, None]
        v = w / rho
        r = self.n_hat_t[0] * v[:, 1] - self.n_hat_t[1] * v[:, 0]
        av = (self.n_perp_t - r[:, None] * v) / rho  # (N, 2, K)
        # d w / d d_j = B^T H B dq/dd_j / factor (+ E_j^T w for the linear part)
        px, py = av[:, 0] * b00 + av[:, 1] * b01, av[:, 0] * b10 + av[:, 1] * b11  # B av
        hxx, hxy, hyy = f[:, 2], f[:, 3], f[:, 4]
        tx, ty = px * hxx + py * hxy, px * hxy + py * hyy
        c = torch.stack([tx * b00 + ty * b10, tx * b01 + ty * b11], 1) * self.inv_factor  # (N, 2, K)
        lin = c[:, :, None] * self.u_t + w[:, :, None] * (av * (1.0 / self.half))[:, None]  # (N, 2, 2, K)
        jac = torch.cat([lin, c[:, :, None]], dim=2).reshape(len(a), 6, -1)  # rows a11 a12 tx a21 a22 ty
        wt = inside * self.n_w / cnt[:, None]
        if terms:
            return score, jac, r, wt, grid
        jw = jac * wt[:, None]
        hess = (jw @ jac.transpose(1, 2)).double()
        return score, hess, -(jw @ r[..., None])[..., 0].double()


def _gauss_newton(level: _Level, matrix: torch.Tensor, iterations: int, centre: torch.Tensor,
                  half: float, min_step_px: float = 2e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Newton on the NGF cross-product residuals with an adaptive step length.

    A step is kept only if the NGF score rises; the step length doubles after a success (up
    to 8x: the Gauss-Newton matrix overestimates the curvature of the smoothed objective) and
    is quartered after a failure. Stops when every step is below min_step_px at the image edge.
    """
    n = matrix.shape[0]
    if iterations <= 0:
        return matrix, level.evaluate(matrix, system=False)
    score, hess, grad = level.evaluate(matrix)
    alpha = torch.ones(n, dtype=torch.float64)
    eye = torch.eye(6, dtype=torch.float64)
    for _ in range(iterations):
        diag = torch.diagonal(hess, dim1=1, dim2=2).mean(-1).clamp_min(1e-12)
        step = torch.linalg.solve(hess + (1e-4 * diag)[:, None, None] * eye, grad[..., None])[..., 0]
        step = step * alpha[:, None]
        if float(step.abs().max()) < min_step_px:
            break
        cand = _update(matrix, step, centre, half)
        s_c, h_c, g_c = level.evaluate(cand)
        ok = s_c > score
        okm = ok[:, None, None]
        matrix = torch.where(okm, cand, matrix)
        hess = torch.where(okm, h_c, hess)
        grad = torch.where(ok[:, None], g_c, grad)
        score = torch.where(ok, s_c, score)
        alpha = torch.where(ok, (alpha * 2.0).clamp(max=8.0), alpha * 0.25)
    return matrix, score


def refine_affine(fixed: torch.Tensor, moving: torch.Tensor, init: torch.Tensor, *,
                  levels: tuple[int, ...] = (4, 2, 1), iterations: tuple[int, ...] = (10, 8, 5),
                  smooth: float = 1.0, n_points: int = N_EDGE_POINTS, cache: dict | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Refine (N, 3, 3) fixed->moving pixel affines by NGF of (H, W) fixed and (N|1, H, W) moving.

    `cache` keeps each pyramid level (edge points, moving-image fields) for later calls.
    Returns the refined matrices and the final NGF alignment per image, in [0, 1]
    (1 = every sampled edge direction agrees).
    """
    n = init.shape[0]
    h, w = fixed.shape[-2:]
    centre, half = _centre(h, w), max(h, w) / 2.0
    matrix = init.to(torch.float64).clone()
    score = torch.zeros(n, dtype=torch.float64)
    with torch.no_grad():
        for factor, iters in zip(levels, iterations):
            key = (factor, smooth, n_points)
            if cache is not None and key in cache:
                level = cache[key]
            else:
                level = _Level(fixed, moving, factor, smooth, n_points, centre, half)
                if cache is not None:
                    cache[key] = level
            matrix, score = _gauss_newton(level, matrix, iters, centre, half)
    return matrix, score


def edge_lock(fixed: torch.Tensor, moving: torch.Tensor, matrix: torch.Tensor, shift_px: float, *,
              factor: int = 1, smooth: float = 1.0, n_points: int = N_EDGE_POINTS, cache: dict | None = None) -> float:
    """How sharply the edges lock into place at `matrix`, relative to the fixed image against itself.

    The NGF alignment's relative drop when the result is moved by shift_px along +-x and +-y,
    divided by the same drop of the fixed image against a shifted copy of itself: about 1 for
    a perfect same-contrast match, 0 when the edges do not correspond at all (the score is
    flat). Dividing by the fixed image's own drop removes the dependence on blur and pixel size.
    """
    h, w = fixed.shape[-2:]
    key = (factor, smooth, n_points)
    level = cache.get(key) if cache is not None else None
    if level is None:
        level = _Level(fixed, moving, factor, smooth, n_points, _centre(h, w), max(h, w) / 2.0)
        if cache is not None:
            cache[key] = level
    shifts = torch.eye(3, dtype=torch.float64).repeat(5, 1, 1)
    shifts[1:3, 0, 2] = torch.tensor([shift_px, -shift_px], dtype=torch.float64)
    shifts[3:, 1, 2] = torch.tensor([shift_px, -shift_px], dtype=torch.float64)
    drops = []
    with torch.no_grad():
        for mats, fixed_self in ((matrix.to(torch.float64).reshape(1, 3, 3) @ shifts, False), (shifts, True)):
            terms, inside = level.point_scores(mats, fixed_self)
            score = terms.sum(1) / inside.sum(1).clamp_min(1.0)
            drops.append(1.0 - float(score[1:].mean()) / max(float(score[0]), 1e-12))
    return drops[0] / max(drops[1], 1e-12)


def blackening_response(fixed: torch.Tensor, moving: torch.Tensor, matrix: torch.Tensor, keep: torch.Tensor, *,
                        factor: int = 1, smooth: float = 1.0, n_points: int = N_EDGE_POINTS,
                        damping: float = 1e-3, cache: dict | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Gauss-Newton re-optimisation per blackening mask, from the (3, 3) optimum `matrix`.

    Blackening a block of the moving image removes the edge points that map into it, so
    run k solves the NGF system with the points weighted by keep_k at their mapped position
    (a first-order, influence-function version of re-running the optimisation on each
    blackened image; every run uses the same points, Jacobian and residuals).
    Returns the (N, 3, 3) run matrices, the (6, 6) Gauss-Newton matrix of the full fit and
    the per-point weighted squared residuals' mean (the fit's residual variance).
    """
    h, w = fixed.shape[-2:]
    centre, half = _centre(h, w), max(h, w) / 2.0
    a = matrix.to(torch.float64).reshape(1, 3, 3)
    with torch.no_grad():
        key = (factor, smooth, n_points)
        level = cache.get(key) if cache is not None else None
        if level is None:
            level = _Level(fixed, moving, factor, smooth, n_points, centre, half)
        _, jac, r, wt, grid = level.evaluate(a, terms=True)
        kv = F.grid_sample(keep[:, None].float(), grid.expand(len(keep), -1, -1, -1), mode="bilinear",
                           padding_mode="zeros", align_corners=True)[:, 0, 0]  # (N, K)
        jac, r, wt = jac[0], r[0], wt[0]  # (6, K), (K,), (K,)
        wk = kv * wt[None]  # (N, K)
        hess = ((wk[:, None] * jac) @ jac.T).double()
        grad = -(wk @ (jac * r).T).double()
        diag = torch.diagonal(hess, dim1=1, dim2=2).mean(-1).clamp_min(1e-12)
        step = torch.linalg.solve(hess + (damping * diag)[:, None, None] * torch.eye(6, dtype=torch.float64),
                                  grad[..., None])[..., 0]
        runs = _update(a.expand(len(keep), -1, -1), step, centre, half)
        h_full = ((jac * wt) @ jac.T).double()
        res_var = float((wt * r * r).sum() / wt.sum().clamp_min(1e-12))
    return runs, h_full, torch.tensor(res_var)
