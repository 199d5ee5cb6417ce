"""Resampling of 2D images through pixel-space affine matrices (torch grid_sample)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def normalised_grid(matrix: torch.Tensor, out_shape: tuple[int, int], in_shape: tuple[int, int]) -> torch.Tensor:
    """grid_sample grid for (N, 3, 3) fixed-pixel -> moving-pixel matrices (align_corners=True)."""
    h, w = out_shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=matrix.dtype), torch.arange(w, dtype=matrix.dtype),
                            indexing="ij")
    p = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(-1, 3)
    q = torch.einsum("nij,pj->npi", matrix[:, :2], p)
    hi, wi = in_shape
    scale = torch.tensor([2.0 / max(wi - 1, 1), 2.0 / max(hi - 1, 1)], dtype=matrix.dtype)
    return (q * scale - 1.0).reshape(matrix.shape[0], h, w, 2)


def warp(images: torch.Tensor, matrix: torch.Tensor | np.ndarray, out_shape: tuple[int, int] | None = None,
         mode: str = "bilinear") -> torch.Tensor:
    """out(p) = image(matrix p) for (N, H, W) images and (N, 3, 3) or (3, 3) matrices; zero outside."""
    m = torch.as_tensor(np.asarray(matrix) if isinstance(matrix, np.ndarray) else matrix, dtype=images.dtype)
    if m.dim() == 2:
        m = m.expand(images.shape[0], 3, 3)
    out_shape = tuple(images.shape[-2:]) if out_shape is None else out_shape
    grid = normalised_grid(m, out_shape, tuple(images.shape[-2:]))
    return F.grid_sample(images[:, None], grid, mode=mode, padding_mode="zeros", align_corners=True)[:, 0]
