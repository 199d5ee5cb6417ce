"""Keypoints: centres of mass of thresholded feature maps (paper eqs. 1-2).

Channel i of the fixed image corresponds to channel i of the moving image; with several
thresholds per map, keypoint (i, k) corresponds to keypoint (i, k).
"""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def centres_of_mass(maps: torch.Tensor, thresholds: tuple[float, ...] = (0.95,),
                    soft: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """CoM (x=col, y=row) of each map (N, C, H, W) thresholded at each fraction of its max.

    Literal paper (soft=False): F[F <= t max F] = 0, weights F. soft=True uses weights
    F - t max F (clipped at 0), continuous in the threshold, hence more stable.
    Returns points (N, C*K, 2) in pixels and a validity mask (N, C*K): a map that is zero
    everywhere has no centre of mass.
    """
    n, c, h, w = maps.shape
    peak = maps.amax(dim=(2, 3), keepdim=True)  # (N, C, 1, 1)
    t = torch.tensor(thresholds, dtype=maps.dtype, device=maps.device).view(1, 1, -1, 1, 1)
    level = t * peak[:, :, None]
    m = maps[:, :, None]
    weights = (m - level).clamp_min(0) if soft else torch.where(m > level, m, torch.zeros((), device=maps.device))
    weights = weights.reshape(n, c * len(thresholds), h, w)
    total = weights.sum(dim=(2, 3))
    xs = torch.arange(w, dtype=maps.dtype, device=maps.device)
    ys = torch.arange(h, dtype=maps.dtype, device=maps.device)
    cx = (weights.sum(dim=2) * xs).sum(dim=2) / total.clamp_min(1e-12)
    cy = (weights.sum(dim=3) * ys).sum(dim=2) / total.clamp_min(1e-12)
    valid = (total > 0) & (peak.reshape(n, c, 1).expand(n, c, len(thresholds)).reshape(n, -1) > 0)
    return torch.stack([cx, cy], dim=-1).double().cpu().numpy(), valid.cpu().numpy()

