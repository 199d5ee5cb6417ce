"""Feature maps: the paper's VGG conv1 block, and a contrast-invariant bank for default mode.

Both are small CNNs (torch conv2d). The paper mode uses ImageNet VGG conv1_1 + conv1_2 ReLU
maps (128 channels). The default mode uses fixed, rotation-invariant and contrast-polarity
invariant filters: gradient magnitude and |Laplacian of Gaussian| at several scales, each
computed on the image and on its local-contrast-normalised version (these correspond within
one contrast), plus maps of the smoothed foreground mask (these correspond across contrasts).
A map that is invariant to rotation and sign moves with the anatomy, so the centres of mass of
its thresholded regions correspond across contrasts and poses.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F


def paper_preprocess(image: np.ndarray, pad: int) -> torch.Tensor:
    """Mean-centre, normalise to unit standard deviation, zero-pad by `pad` (paper 2.2)."""
    a = torch.as_tensor(np.asarray(image, dtype=np.float32))
    a = (a - a.mean()) / a.std().clamp_min(1e-8)
    return F.pad(a, (pad, pad, pad, pad))


class VGGConv1(torch.nn.Module):
    """VGG block 1 (conv1_1 + ReLU, conv1_2 + ReLU); returns both ReLU maps, 128 channels."""

    def __init__(self, state: dict[str, torch.Tensor]):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 64, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(64, 64, 3, padding=1)
        with torch.no_grad():
            self.conv1.weight.copy_(state["features.0.weight"])
            self.conv1.bias.copy_(state["features.0.bias"])
            self.conv2.weight.copy_(state["features.2.weight"])
            self.conv2.bias.copy_(state["features.2.bias"])

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(N, H, W) normalised grey images -> (N, 128, H, W) maps.

        A mean-centred, unit-variance grey image is used as the torchvision-normalised
        value of all three colour channels.
        """
        x = image[:, None].expand(-1, 3, -1, -1)
        a = F.relu(self.conv1(x))
        b = F.relu(self.conv2(a))
        return torch.cat([a, b], dim=1)


def _gauss1d(sigma: float) -> torch.Tensor:
    r = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


@lru_cache(maxsize=32)
def _blur_matrix(n: int, sigma: float) -> torch.Tensor:
    """(n, n) matrix of the 1D Gaussian with replicate padding folded into the edge columns."""
    k = _gauss1d(sigma)
    r = k.numel() // 2
    cols = (torch.arange(n)[:, None] + torch.arange(-r, r + 1)[None]).clamp(0, n - 1)
    return torch.zeros(n, n).scatter_add_(1, cols, k.expand(n, -1).contiguous())


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W), replicate padding.

    Two small matrix products (rows, then columns): on one CPU thread 3-10x faster than
    depthwise conv2d or shifted sums for the kernel and image sizes used here.
    """
    h, w = x.shape[-2:]
    return _blur_matrix(h, float(sigma)) @ (x @ _blur_matrix(w, float(sigma)).T)


def image_derivatives(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Central differences gx, gy and the 5-point Laplacian of (N, C, H, W)."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    gx = 0.5 * (p[..., 1:-1, 2:] - p[..., 1:-1, :-2])
    gy = 0.5 * (p[..., 2:, 1:-1] - p[..., :-2, 1:-1])
    lap = p[..., 1:-1, 2:] + p[..., 1:-1, :-2] + p[..., 2:, 1:-1] + p[..., :-2, 1:-1] - 4 * x
    return gx, gy, lap


def robust_unit(image: np.ndarray) -> torch.Tensor:
    """Grey image scaled so that 0 -> 0 and its 99th percentile of non-zero pixels -> 1."""
    a = np.asarray(image, dtype=np.float32)
    a = a - float(a.min())
    nz = a[a > 0]
    scale = float(np.percentile(nz, 99)) if nz.size else 1.0
    return torch.from_numpy(a / max(scale, 1e-8))


class InvariantBank:
    """Rotation- and polarity-invariant feature maps for multi-contrast images."""

    def __init__(self, sigmas: tuple[float, ...] = (1.0, 2.0, 4.0)):
        self.sigmas = sigmas

    @torch.no_grad()
    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """(N, H, W) unit-range images -> (N, 4 * len(sigmas), H, W) non-negative maps."""
        x = image[:, None]
        maps = []
        for s in self.sigmas:
            g = gaussian_blur(x, s)
            gx, gy, lap = image_derivatives(g)
            grad = torch.sqrt(gx * gx + gy * gy) * s
            blob = lap.abs() * s * s
            local = gaussian_blur(grad, 2 * s) + 1e-3
            maps += [grad, blob, grad / local, blob / local]
        return torch.cat(maps, dim=1)


class ShapeBank:
    """Maps of the smoothed foreground mask (brain outline), identical across MR contrasts.

    For each scale: the blurred mask and the positive and negative parts of its Laplacian
    (convex and concave parts of the outline). The mask polarity is the same in every
    contrast, so the signed parts correspond.
    """

    def __init__(self, sigmas: tuple[float, ...] = (4.0, 8.0, 16.0)):
        self.sigmas = sigmas

    @torch.no_grad()
    def __call__(self, image: torch.Tensor, mask_level: float = 0.05) -> torch.Tensor:
        """(N, H, W) unit-range images -> (N, 3 * len(sigmas), H, W) non-negative maps."""
        fg = (image[:, None] > mask_level).float()
        maps = []
        for s in self.sigmas:
            m = gaussian_blur(fg, s)
            _, _, lap = image_derivatives(m)
            maps += [m, lap.clamp_min(0) * s * s, (-lap).clamp_min(0) * s * s]
        return torch.cat(maps, dim=1)
