"""Full-resolution affine refinement by mutual information, for images of different contrasts.

NGF aligns edge directions; between contrasts the strongest edges are not always in the
same place (the T1 outline lies at grey matter / CSF, the T2 outline at CSF / background),
so its optimum carries a contrast-dependent bias of a few tenths of a pixel, mostly in scale.
Mattes-style mutual information (Mattes et al. 2003) uses every intensity pair instead:
a joint histogram with a zero-order window on the fixed intensity and a cubic B-spline
Parzen window on the moving one, so that it is differentiable in the transform.

Sampling: a checkerboard half of the pixels within the fixed foreground grown by about
FOREGROUND_MARGIN_PX (the background next to the brain must count, or the moving image
could grow over it at no cost). Both images are blurred by SMOOTH_SIGMA px first: bilinear
sampling blurs an image by an amount that depends on the sub-pixel offset, and this pulls
an intensity metric towards whole-pixel offsets; a mild common blur evens that out.
Optimiser: Newton steps with the Thevenaz-Unser approximation of the Hessian (computed
once, at the start), an adaptive step length and acceptance on the MI value.
Deterministic: fixed sampling pattern, sequential histogram sums on the CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlreg.errors import MismatchedInputsError
from dlreg.zeroshot.features import gaussian_blur, image_derivatives

BINS = 32
SMOOTH_SIGMA = 0.5
FOREGROUND_LEVEL = 0.02  # of the unit-range image
FOREGROUND_MARGIN_PX = 12
ITERATIONS = 8
MAX_STEP_SCALE = 8.0  # the Hessian approximation overestimates the curvature away from the optimum


# Cubic B-spline taps at offset t in [0, 1): weights = [1, t, t^2, t^3] @ _SPLINE, and their
# derivatives = [1, t, t^2] @ _SPLINE_D (one small matrix product each).
_SPLINE = torch.tensor([[1.0, 4.0, 1.0, 0.0], [-3.0, 0.0, 3.0, 0.0], [3.0, -6.0, 3.0, 0.0],
                        [-1.0, 3.0, -3.0, 1.0]]) / 6.0
_SPLINE_D = _SPLINE[1:] * torch.tensor([1.0, 2.0, 3.0])[:, None]


def _cubic_bspline(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (K, 4) and their derivatives of the cubic B-spline at offsets t (K,) in [0, 1)."""
    powers = torch.stack([torch.ones_like(t), t, t * t, t * t * t], 1)
    return powers @ _SPLINE, powers[:, :3] @ _SPLINE_D


def _sample_points(fixed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, col) indices of a checkerboard half of the pixels near the fixed foreground."""
    fg = (fixed > FOREGROUND_LEVEL).float()[None, None]
    grown = gaussian_blur(fg, FOREGROUND_MARGIN_PX / 2.5)[0, 0] > 0.01
    h, w = fixed.shape
    rows, cols = torch.arange(h)[:, None], torch.arange(w)[None, :]
    return torch.nonzero(grown & ((rows + cols) % 2 == 0), as_tuple=True)


class MutualInformation:
    """Mattes MI of a fixed (H, W) and a moving (H, W) unit-range image as a function of the affine."""

    def __init__(self, fixed: torch.Tensor, moving: torch.Tensor, bins: int = BINS, smooth: float = SMOOTH_SIGMA):
        h, w = fixed.shape
        blurred = gaussian_blur(torch.stack([fixed, moving]).float()[:, None], smooth)
        fs, ms = blurred[0, 0], blurred[1:]
        gx, gy, _ = image_derivatives(ms)
        self.fields = torch.cat([ms, gx, gy], dim=1)  # (1, 3, H, W): moving intensity and gradient
        ys, xs = _sample_points(fixed)
        if len(ys) < 16:
            raise MismatchedInputsError("the fixed image has too little foreground to compare intensities")
        self.pts = torch.stack([xs.double(), ys.double(), torch.ones(len(xs), dtype=torch.float64)], 1)
        self.bins = bins
        self.fixed_bin = (fs[ys, xs].clamp(0, 1) * (bins - 1) + 0.5).long()
        self.to_norm = torch.tensor([[2.0 / max(w - 1, 1), 0, -1.0], [0, 2.0 / max(h - 1, 1), -1.0], [0, 0, 1.0]],
                                    dtype=torch.float64)
        self.centre = torch.tensor([(w - 1) / 2.0, (h - 1) / 2.0], dtype=torch.float64)
        self.half = max(h, w) / 2.0
        self.u = torch.stack([(xs.float() - float(self.centre[0])) / self.half,
                              (ys.float() - float(self.centre[1])) / self.half, torch.ones(len(xs))])  # (3, K)

    def grid(self, a: torch.Tensor) -> torch.Tensor:
        """grid_sample positions (1, 1, K, 2) of the sample points under the (3, 3) matrix a."""
        return (self.pts @ (self.to_norm @ a)[:2].T)[None, None].float()

    def _terms(self, a: torch.Tensor):
        """Sampled fields, inside weights, histogram indices, Parzen weights and derivatives."""
        grid = self.grid(a)
        s = F.grid_sample(self.fields, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0, :, 0]
        inside = (grid[0, 0].abs() <= 1).all(-1).float()
        t = s[0].clamp(0, 1) * (self.bins - 4) + 1  # moving bins 1 .. bins-3 keep the 4-tap window inside
        j0 = t.floor().long().clamp(max=self.bins - 4)
        wm, dm = _cubic_bspline(t - j0)
        idx = self.fixed_bin[:, None] * self.bins + (j0 - 1)[:, None] + torch.arange(4)
        return s, inside, idx, wm, dm

    def evaluate(self, a: torch.Tensor, gradient: bool = True):
        """MI of the (3, 3) matrix a; with gradient: (MI, (6,) gradient in `update`'s parameters)."""
        s, inside, idx, wm, dm = self._terms(a)
        count = float(inside.sum())
        if count < 16:  # mapped outside the moving image
            return (float("-inf"), torch.zeros(6, dtype=torch.float64)) if gradient else float("-inf")
        b = self.bins
        p = torch.bincount(idx.reshape(-1), (wm * inside[:, None]).reshape(-1), minlength=b * b).double()
        p = p.view(b, b) / count
        pf, pm = p.sum(1), p.sum(0)
        plogp = torch.special.xlogy(p, p)  # 0 log 0 = 0
        mi = float(plogp.sum() - torch.special.xlogy(pf, pf).sum() - torch.special.xlogy(pm, pm).sum())
        if not gradient:
            return mi
        log_ratio = (torch.log(p.clamp_min(1e-300)) - torch.log(pm.clamp_min(1e-300))).float()  # used where p > 0
        dmi_dm = (dm * log_ratio.reshape(-1)[idx]).sum(1) * inside * ((b - 4) / count)  # (K,)
        grad = (torch.cat([s[1:2] * self.u, s[2:3] * self.u]) @ dmi_dm).double()  # (6,)
        return mi, grad

    def hessian(self, a: torch.Tensor) -> torch.Tensor:
        """(6, 6) negative-definite Thevenaz-Unser approximation of the MI Hessian at a."""
        s, inside, idx, wm, dm = self._terms(a)
        count = float(inside.sum().clamp_min(1.0))
        b = self.bins
        jac = torch.cat([s[1:2] * self.u, s[2:3] * self.u]).T * inside[:, None]  # (K, 6) d moving / d params
        dp = torch.zeros(b * b, 6).index_add_(0, idx.reshape(-1), (dm[:, :, None] * jac[:, None, :]).reshape(-1, 6))
        dp = dp.double().view(b, b, 6) * ((b - 4) / count)
        p = torch.bincount(idx.reshape(-1), (wm * inside[:, None]).reshape(-1), minlength=b * b).double()
        p = p.view(b, b) / count
        pm, dpm = p.sum(0), dp.sum(0)
        inv_p = torch.where(p > 0, 1.0 / p.clamp_min(1e-300), 0.0)
        inv_pm = torch.where(pm > 0, 1.0 / pm.clamp_min(1e-300), 0.0)
        return -torch.einsum("ij,ijk,ijl->kl", inv_p, dp, dp) + torch.einsum("j,jk,jl->kl", inv_pm, dpm, dpm)

    def update(self, a: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """a with the mapped positions moved by d: q += (d0 u + d1 v + d2, d3 u + d4 v + d5), u, v centred/half."""
        lin = torch.stack([d[0:2], d[3:5]]) / self.half
        out = a.clone()
        out[:2, :2] = a[:2, :2] + lin
        out[:2, 2] = a[:2, 2] + torch.stack([d[2], d[5]]) - lin @ self.centre
        return out


def refine_mi(mi: MutualInformation, init: torch.Tensor, iterations: int = ITERATIONS,
              min_step: float = 1e-3) -> tuple[torch.Tensor, float]:
    """Maximise MI from the (3, 3) matrix init; returns the matrix and its MI."""
    a = init.to(torch.float64).clone()
    value, grad = mi.evaluate(a)
    neg_h = -mi.hessian(a)
    neg_h = neg_h + 1e-6 * torch.diagonal(neg_h).mean().clamp_min(1e-12) * torch.eye(6, dtype=torch.float64)
    alpha = 1.0
    for _ in range(iterations):
        step = torch.linalg.solve(neg_h, grad) * alpha
        if float(step.abs().max()) < min_step:
            break
        cand = mi.update(a, step)
        v_c, g_c = mi.evaluate(cand)
        if v_c > value:
            a, value, grad, alpha = cand, v_c, g_c, min(alpha * 2.0, MAX_STEP_SCALE)
        else:
            alpha *= 0.25
    return a, value

