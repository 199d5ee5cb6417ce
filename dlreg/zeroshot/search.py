"""Exhaustive rigid search at coarse resolution: for each rotation, the best translation, by FFT.

The global check's rotation candidates turn about the centres of the two foreground outlines.
When one image shows only part of the anatomy (a truncated field of view, a slab that missed
the back of the head) those centres do not correspond and no candidate starts near the
answer. Here every translation is tried at once: NGF's squared cosine of the edge directions,
(n_F . n_M)^2, is the sum of the products of three maps per image (n_x^2, sqrt(2) n_x n_y,
n_y^2), so its value for every shift of a rotated moving image is three cross-correlations,
computed by FFT on the 1/FACTOR-resolution images.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dlreg.zeroshot.features import image_derivatives
from dlreg.zeroshot.refine import level_matrix, pyramid
from dlreg.zeroshot.warping import warp

FACTOR = 4


def _direction_products(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, h, w) maps whose channel-wise products sum to (n_F . n_M)^2, for (N, h, w) images."""
    gx, gy, _ = image_derivatives(images[:, None])
    g2 = gx * gx + gy * gy
    eps2 = torch.sqrt(g2).mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6) ** 2
    d = g2 + eps2
    return torch.cat([gx * gx / d, math.sqrt(2.0) * gx * gy / d, gy * gy / d], dim=1)


def rigid_candidates(fixed: torch.Tensor, moving: torch.Tensor, rotations: np.ndarray,
                     factor: int = FACTOR) -> np.ndarray:
    """For each (2, 2) pixel-space rotation in rotations (N, 2, 2), the fixed -> moving pixel
    matrix (N, 3, 3) whose translation maximises the summed NGF terms over the whole image."""
    return _search(fixed, moving, rotations, factor)[0]


def _search(fixed, moving, rotations, factor):
    levels = pyramid(torch.stack([fixed, moving]).float(), factor, 1.0)[:, 0]  # (2, h, w)
    h, w = levels.shape[-2:]
    centre = torch.tensor([(w - 1) / 2.0, (h - 1) / 2.0], dtype=torch.float64)
    turn = torch.eye(3, dtype=torch.float64).repeat(len(rotations), 1, 1)
    turn[:, :2, :2] = torch.as_tensor(rotations, dtype=torch.float64)
    turn[:, :2, 2] = centre - turn[:, :2, :2] @ centre  # about the level image's centre
    turned = warp(levels[1:].expand(len(rotations), -1, -1), turn)  # (N, h, w): moving, rotated
    # zero padding by half the image: shifts up to half the image size in either direction do not
    # wrap around onto an overlapping shift; larger ones are left out
    size = (h + h // 2, w + w // 2)
    spec_f = torch.fft.rfft2(_direction_products(levels[:1]), s=size)
    spec_m = torch.fft.rfft2(_direction_products(turned), s=size)
    corr = torch.fft.irfft2((spec_f.conj() * spec_m).sum(dim=1), s=size)  # (N, ...): sum_y F(y) M(y + t)
    ty = torch.arange(size[0]).double()
    tx = torch.arange(size[1]).double()
    ty, tx = torch.where(ty >= size[0] / 2, ty - size[0], ty), torch.where(tx >= size[1] / 2, tx - size[1], tx)
    reach = (ty.abs()[:, None] <= h / 2) & (tx.abs()[None, :] <= w / 2)
    score, best = torch.where(reach, corr, -torch.inf).flatten(1).max(dim=1)
    ty, tx = ty[best // size[1]], tx[best % size[1]]
    shift = torch.eye(3, dtype=torch.float64).repeat(len(rotations), 1, 1)
    shift[:, 0, 2], shift[:, 1, 2] = tx, ty
    level = level_matrix(float(factor))
    return (level @ turn @ shift @ torch.linalg.inv(level)).numpy(), score
