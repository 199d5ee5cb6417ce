"""Keypoint DCNN: 3D landmarks by soft-argmax, rigid transform by a closed-form fit.

The default estimator of the rigid pipeline (the paper's DCNN + ANN is the "paper"
estimator). The same conv + batch norm + LeakyReLU(0.1) trunk as the paper's DCNN runs on
each canonical volume; instead of pooling it away, the last layer gives K heatmaps whose
spatial softmax centres of mass are K landmarks (mm, canonical coordinates) -- the 3D
analogue of the zero-shot paper's centre-of-mass keypoints. Landmark k of the fixed image
corresponds to landmark k of the moving one, and the rigid transform is their weighted
least-squares (Kabsch) fit. Why: the paper's regression from globally pooled features
must learn geometry from a few subjects and reached only ~8 mm on the benchmark; landmarks
move with the image by construction (convolutions are translation-equivariant) and the fit
is exact geometry, so only "where is landmark k" has to be learned.
"""

from __future__ import annotations

import torch
from torch import nn

from dlreg.errors import WeightsError
from dlreg.rigid3d.preprocess import GRID_SIZE, GRID_SPACING

N_KEYPOINTS = 32
WIDTH = 32


def _block(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation,
                                   bias=False),
                         nn.BatchNorm3d(c_out), nn.LeakyReLU(0.1))


class KeypointDCNN(nn.Module):
    """Canonical volume (B, 64, 64, 64) -> K landmarks (B, K, 3) in mm and their weights (B, K)."""

    def __init__(self, n_keypoints: int = N_KEYPOINTS, width: int = WIDTH, grid_size: int = GRID_SIZE,
                 spacing: float = GRID_SPACING) -> None:
        super().__init__()
        self.n_keypoints, self.width = n_keypoints, width
        # 64^3 -> 32^3 -> 16^3; dilations widen the receptive field to the whole head
        self.trunk = nn.Sequential(_block(1, width // 2, stride=2), _block(width // 2, width // 2),
                                   nn.MaxPool3d(2), _block(width // 2, width),
                                   _block(width, width, dilation=2), _block(width, width, dilation=4),
                                   _block(width, width, dilation=8))
        self.heads = nn.Conv3d(width, n_keypoints, 1)
        self.grid_size = grid_size
        cells = grid_size // 4
        step = spacing * grid_size / cells  # mm between heatmap cells
        axis = (torch.arange(cells, dtype=torch.float32) - (cells - 1) / 2.0) * step
        zz, yy, xx = torch.meshgrid(axis, axis, axis, indexing="ij")
        self.register_buffer("positions", torch.stack([xx, yy, zz], -1).reshape(-1, 3), persistent=False)

    def forward(self, volume: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if volume.dim() == 4:
            volume = volume[:, None]
        if tuple(volume.shape[2:]) != (self.grid_size,) * 3:
            raise WeightsError(f"the keypoint network expects {(self.grid_size,) * 3} inputs, "
                               f"got {tuple(volume.shape[2:])}")
        if volume.shape[0] == 1 and not self.training:
            # PyTorch's CPU convolution takes a slow kernel for a batch of one (measured: 0.13 s
            # for one volume, 0.05 s for two); an evaluation batch of one runs as two copies.
            points, weights = self(volume.expand(2, -1, -1, -1, -1))
            return points[:1], weights[:1]
        logits = self.heads(self.trunk(volume)).flatten(2)            # (B, K, cells^3)
        with torch.autocast(volume.device.type, enabled=False):       # landmarks in float32
            prob = torch.softmax(logits.float(), dim=2)
            points = prob @ self.positions                            # (B, K, 3) mm
            spread = (prob @ self.positions.pow(2)).sum(-1) - points.pow(2).sum(-1)
        weights = 1.0 / (spread.clamp_min(0.0) + 16.0)                # sharp heatmaps count more
        return points, weights


def kabsch(source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(B, 4, 4) rigid transforms minimising sum_k w_k |R s_k + t - t_k|^2 (batched, differentiable)."""
    w = weights / weights.sum(dim=1, keepdim=True)
    mu_s = (w[..., None] * source).sum(1)
    mu_t = (w[..., None] * target).sum(1)
    cov = ((source - mu_s[:, None]) * w[..., None]).transpose(1, 2) @ (target - mu_t[:, None])
    u, _, vh = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(vh.transpose(1, 2) @ u.transpose(1, 2)))
    fix = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=1))
    rot = vh.transpose(1, 2) @ fix @ u.transpose(1, 2)
    out = torch.zeros(source.shape[0], 4, 4, dtype=source.dtype, device=source.device)
    out[:, :3, :3] = rot
    out[:, :3, 3] = mu_t - (rot @ mu_s[..., None])[..., 0]
    out[:, 3, 3] = 1.0
    return out


def fit_landmarks(fixed: tuple[torch.Tensor, torch.Tensor],
                  moving: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """(B, 4, 4) canonical fixed -> moving transforms from (points, weights) of the fixed volumes
    (B sets, or one shared by every moving volume) and of the B moving volumes."""
    (fixed_points, fixed_weights), (moving_points, moving_weights) = fixed, moving
    b = moving_points.shape[0]
    return kabsch(fixed_points.double().expand(b, -1, -1), moving_points.double(),
                  fixed_weights.double().expand(b, -1) * moving_weights.double())


def fit_residual(fixed: tuple[torch.Tensor, torch.Tensor], moving: tuple[torch.Tensor, torch.Tensor],
                 fits: torch.Tensor) -> torch.Tensor:
    """(B,) weighted RMS distance (mm) between the fitted fixed landmarks and the moving ones:
    how far the landmark pairs are from any rigid motion (large for different heads)."""
    (fixed_points, fixed_weights), (moving_points, moving_weights) = fixed, moving
    b = moving_points.shape[0]
    weights = fixed_weights.double().expand(b, -1) * moving_weights.double()
    moved = fixed_points.double().expand(b, -1, -1) @ fits[:, :3, :3].transpose(1, 2) + fits[:, None, :3, 3]
    squared = (moved - moving_points.double()).pow(2).sum(-1)
    return ((weights * squared).sum(1) / weights.sum(1)).sqrt()


def pair_landmarks(model: KeypointDCNN, fixed: torch.Tensor,
                   moving: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fixed landmarks (B, K, 3), moving landmarks (B, K, 3) and pair weights (B, K), float64,
    from one pass of the network over both batches (training: batch norm sees the pairs)."""
    n = fixed.shape[0]
    points, weights = model(torch.cat([fixed, moving], dim=0))
    points, weights = points.double(), weights.double()
    return points[:n], points[n:], weights[:n] * weights[n:]


def pair_transform(model: KeypointDCNN, fixed: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
    """(B, 4, 4) canonical fixed -> canonical moving transforms from the two landmark sets."""
    return kabsch(*pair_landmarks(model, fixed, moving))
