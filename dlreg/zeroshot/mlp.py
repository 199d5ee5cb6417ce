"""The paper's transformation estimator: an MLP from keypoint sets to 6 affine parameters.

Input: 64 fixed keypoints X and 64 moving keypoints Y in normalised coordinates, flattened
as (x1, y1, ..., x64, y64 of X, then of Y); output: M (2x3, row-major) with Y = M (X, 1).
"""

from __future__ import annotations

import numpy as np
import torch

from dlreg.errors import WeightsError
from dlreg.weights import load_bundled_state

N_POINTS = 64
BUNDLED_NAME = "affine_mlp_paper"


class AffineMLP(torch.nn.Module):
    """ReLU hidden layers, linear output of 6 affine parameters."""

    def __init__(self, n_points: int = N_POINTS, hidden: tuple[int, ...] = (256, 256, 256)):
        super().__init__()
        layers, width = [], 4 * n_points
        for h in hidden:
            layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
            width = h
        layers.append(torch.nn.Linear(width, 6))
        self.net = torch.nn.Sequential(*layers)
        self.n_points = n_points
        self.hidden = hidden

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B, P, 2) fixed and moving points -> (B, 6) parameters."""
        return self.net(torch.cat([x.flatten(1), y.flatten(1)], dim=1))


def load_bundled_mlp() -> AffineMLP:
    """The shipped MLP (checksum verified against its model card)."""
    state = load_bundled_state(BUNDLED_NAME)
    hidden = tuple(int(v) for v in state.pop("hidden").tolist()) if "hidden" in state else (256, 256, 256)
    model = AffineMLP(hidden=hidden)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(f"bundled {BUNDLED_NAME} weights do not fit the MLP: {exc}") from exc
    return model.eval()


@torch.no_grad()
def predict(model: AffineMLP, fixed: np.ndarray, moving: np.ndarray, residual_steps: int = 0) -> np.ndarray:
    """(B, P, 2) normalised point sets -> (B, 3, 3) matrices with moving ~ M fixed.

    residual_steps > 0 iterates: map the moving points back through the current estimate,
    predict the residual transform, compose (the MLP is only precise near the identity).
    """
    x = torch.as_tensor(fixed, dtype=torch.float32)
    y = torch.as_tensor(moving, dtype=torch.float32)
    total = torch.eye(3).repeat(x.shape[0], 1, 1)
    for _ in range(residual_steps + 1):
        inv = torch.linalg.inv(total)
        y_back = y @ inv[:, :2, :2].transpose(1, 2) + inv[:, None, :2, 2]
        p = model(x, y_back).view(-1, 2, 3)
        step = torch.cat([p, torch.tensor([0.0, 0.0, 1.0]).expand(p.shape[0], 1, 3)], dim=1)
        total = total @ step
    return total.double().numpy()
