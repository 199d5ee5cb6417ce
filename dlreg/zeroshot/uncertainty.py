"""Uncertainty by random pixel blackening (paper 2.7) and its per-pixel heatmap (Fig. 3e)."""

from __future__ import annotations

import numpy as np
import torch

from dlreg.zeroshot.estimators import matrix_to_params

BLOCK_PX = 16
FRACTION = 0.25


def blackening_masks(shape: tuple[int, int], n: int, generator: torch.Generator,
                     fraction: float = FRACTION, block: int = BLOCK_PX) -> torch.Tensor:
    """n (H, W) masks, each 0 on a random `fraction` of block x block cells and 1 elsewhere."""
    h, w = shape
    gh, gw = -(-h // block), -(-w // block)
    keep = (torch.rand(n, gh, gw, generator=generator) >= fraction).float()
    return keep.repeat_interleave(block, 1).repeat_interleave(block, 2)[:, :h, :w]


def position_variance_map(matrices: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Per fixed pixel, the variance (px^2, x plus y) of its mapped position over the runs."""
    h, w = shape
    d = matrices[:, :2] - matrices[:, :2].mean(axis=0)  # (N, 2, 3) deviations from the mean
    q = np.einsum("nij,nik->jk", d, d) / len(matrices)  # mean of D^T D: var = p^T q p
    xs = np.arange(w, dtype=np.float64)[None, :]
    ys = np.arange(h, dtype=np.float64)[:, None]
    return (q[0, 0] * xs * xs + q[1, 1] * ys * ys + 2 * q[0, 1] * xs * ys
            + 2 * q[0, 2] * xs + 2 * q[1, 2] * ys + q[2, 2]).clip(min=0.0)


def summarise(matrices: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, dict]:
    """Parameter variance, per-pixel variance map and its summary for (N, 3, 3) run results."""
    var_map = position_variance_map(matrices, shape)
    param_var = matrix_to_params(matrices).var(axis=0)
    summary = {"runs": int(len(matrices)), "mean_variance_px2": float(var_map.mean()),
               "max_variance_px2": float(var_map.max()),
               "predicted_grid_error_px": float(np.sqrt(var_map).mean())}
    return param_var, var_map, summary
