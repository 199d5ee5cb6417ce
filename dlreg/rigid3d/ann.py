"""The paper's regression ANN at inference: inputs -> 10 tanh -> 6 linear.

Inputs and targets are standardised with the training set's mean and standard deviation;
the weights and MacKay's hyper-parameters come from `dlreg.training.rigid.ann_lm`
(Bayesian-regularised Levenberg-Marquardt, MATLAB's trainbr).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dlreg.errors import WeightsError

HIDDEN = 10


@dataclass
class ANNModel:
    """Weights, standardisation and the training record of a trained ANN."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray
    alpha: float = 0.0
    beta: float = 1.0
    gamma: float = 0.0
    history: list = field(default_factory=list)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(N, inputs) -> (N, outputs) in target units."""
        x = np.asarray(x, float)
        if x.ndim != 2 or x.shape[1] != self.w1.shape[1]:
            raise WeightsError(f"the ANN expects (N, {self.w1.shape[1]}) inputs, got {x.shape}")
        z = (x - self.x_mean) / self.x_std
        return (np.tanh(z @ self.w1.T + self.b1) @ self.w2.T + self.b2) * self.y_std + self.y_mean

    def state(self) -> dict:
        """Arrays and hyper-parameters as a plain dict (for saving)."""
        return {k: np.asarray(getattr(self, k)) for k in
                ("w1", "b1", "w2", "b2", "x_mean", "x_std", "y_mean", "y_std", "alpha", "beta", "gamma")}

    @classmethod
    def from_state(cls, state: dict) -> "ANNModel":
        """Inverse of `state`; a clear error for incomplete or inconsistent weights."""
        try:
            arrays = {k: np.asarray(state[k], float) for k in
                      ("w1", "b1", "w2", "b2", "x_mean", "x_std", "y_mean", "y_std")}
            extra = {k: float(np.asarray(state.get(k, 0.0))) for k in ("alpha", "beta", "gamma")}
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsError(f"ANN weights are incomplete or malformed: {exc}") from exc
        n_hidden, n_in = arrays["w1"].shape
        if (arrays["b1"].shape != (n_hidden,) or arrays["w2"].shape[1] != n_hidden
                or arrays["x_mean"].shape != (n_in,) or arrays["y_mean"].shape != arrays["b2"].shape):
            raise WeightsError("ANN weights have inconsistent shapes")
        return cls(**arrays, **extra)
