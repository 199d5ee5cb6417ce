"""Trained rigid models as weights files: save, load, predict canonical transforms.

Two estimators (`ESTIMATORS`): "keypoints" (the default: `keypoints.KeypointDCNN`
landmarks + closed-form fit, applied `KeypointModel.iterations` times) and "ann" (the
paper's DCNN + ANN, one shot). A file is a torch state holding only tensors and plain values (loads with
`weights_only=True`): format tag, the network's state dict and sizes, the canonical grid,
the ANN arrays (paper model; absent when only the DCNN was trained) and free-form metadata.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from dlreg.errors import WeightsError
from dlreg.imaging.geometry import rigid_to_matrix
from dlreg.rigid3d.ann import ANNModel
from dlreg.rigid3d.dcnn import RigidDCNN, target_scale
from dlreg.rigid3d.keypoints import KeypointDCNN, fit_landmarks, fit_residual
from dlreg.rigid3d.preprocess import GRID_SIZE, GRID_SPACING
from dlreg.weights import bundled_path, load_torch_file, save_torch

FORMAT = "dlreg-rigid3d-v1"
KEYPOINT_FORMAT = "dlreg-rigid3d-keypoints-v1"
BUNDLED = {"keypoints": "rigid3d_keypoints", "ann": "rigid3d_dcnn_ann"}
ESTIMATORS = tuple(BUNDLED)


@dataclass
class RigidModel:
    """DCNN feature extractor/regressor and the optional feature ANN."""

    dcnn: RigidDCNN
    ann: ANNModel | None = None
    meta: dict = field(default_factory=dict)
    iterations = 1  # not a field: the paper's prediction is one shot

    def predict(self, fixed: torch.Tensor, moving: torch.Tensor, use_ann: bool = True) -> np.ndarray:
        """(B, 64, 64, 64) pairs -> (B, 6) rigid parameters (radians, mm) of the canonical transform."""
        device = next(self.dcnn.parameters()).device
        self.dcnn.eval()
        with torch.no_grad():
            fixed, moving = fixed.to(device), moving.to(device)
            if use_ann and self.ann is not None:
                features = self.dcnn.pair_features(fixed, moving).double().cpu().numpy()
                return self.ann.predict(features)
            normalised = self.dcnn(fixed, moving).float().cpu()
        return (normalised * target_scale()).double().numpy()

    def transforms(self, fixed: torch.Tensor,
                   moving: torch.Tensor) -> tuple[np.ndarray, torch.Tensor, np.ndarray]:
        """(B, 4, 4) canonical fixed (1 or B volumes) -> canonical moving (B) transforms, the
        fixed input to pass again (the same volumes) and NaN residuals (no landmarks)."""
        expanded = fixed.expand(moving.shape[0], *fixed.shape[1:])
        found = np.stack([rigid_to_matrix(p) for p in self.predict(expanded, moving)])
        return found, fixed, np.full(len(found), np.nan)

    def to(self, device: torch.device) -> "RigidModel":
        self.dcnn.to(device)
        return self


@dataclass
class KeypointModel:
    """Landmark network; each prediction is refined by re-sampling and predicting again."""

    net: KeypointDCNN
    meta: dict = field(default_factory=dict)
    iterations: int = 3

    def transforms(self, fixed: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
                   moving: torch.Tensor) -> tuple[np.ndarray, tuple[torch.Tensor, torch.Tensor], np.ndarray]:
        """(B, 4, 4) canonical fixed -> canonical moving (B) transforms, the fixed landmarks and
        the fits' weighted RMS landmark residuals (B,) in mm.

        `fixed` is 1 or B canonical volumes on the first pass (their landmarks are found in the
        same network batch as the moving ones), then the landmarks returned, found only once.
        """
        if isinstance(fixed, torch.Tensor):
            n = fixed.shape[0]
            points, weights = self._landmarks(torch.cat([fixed, moving]))
            fixed, found = (points[:n], weights[:n]), (points[n:], weights[n:])
        else:
            found = self._landmarks(moving)
        fits = fit_landmarks(fixed, found)
        return fits.cpu().numpy(), fixed, fit_residual(fixed, found, fits).cpu().numpy()

    def _landmarks(self, volumes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        device = next(self.net.parameters()).device
        self.net.eval()
        with torch.no_grad():
            return self.net(volumes.to(device))

    def to(self, device: torch.device) -> "KeypointModel":
        # channels-last 3D weights: the CPU convolutions take a faster kernel (measured: 0.49 ->
        # 0.36 s for a batch of 18 volumes on one core); the landmarks move by ~2e-5 mm
        self.net.to(device, memory_format=torch.channels_last_3d)
        return self


def save_keypoint_model(path: str | os.PathLike, model: KeypointModel) -> Path:
    """Write a keypoint weights file."""
    path = Path(path)
    save_torch({"format": KEYPOINT_FORMAT, "net": {k: v.detach().cpu() for k, v in model.net.state_dict().items()},
                "n_keypoints": model.net.n_keypoints, "width": model.net.width, "iterations": model.iterations,
                "grid": [GRID_SIZE, GRID_SPACING], "meta": model.meta}, path)
    return path


def save_model(path: str | os.PathLike, model: RigidModel) -> Path:
    """Write the weights file."""
    path = Path(path)
    state = {"format": FORMAT, "dcnn": {k: v.detach().cpu() for k, v in model.dcnn.state_dict().items()},
             "channels": list(model.dcnn.channels), "grid": [GRID_SIZE, GRID_SPACING],
             "meta": model.meta}
    if model.ann is not None:
        state["ann"] = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in model.ann.state().items()}
    save_torch(state, path)
    return path


def load_model(weights: str | os.PathLike | None = None, device: str | torch.device = "cpu",
               estimator: str = "keypoints") -> RigidModel | KeypointModel:
    """Load a weights file for `estimator` (None: its bundled model, checksum verified)."""
    if estimator not in BUNDLED:
        raise WeightsError(f"unknown rigid estimator '{estimator}' (known: {', '.join(ESTIMATORS)})")
    path = bundled_path(BUNDLED[estimator]) if weights is None else Path(weights)
    if not path.is_file():
        raise WeightsError(f"rigid model weights file not found: {path}")
    stat = path.stat()
    return _load_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size, estimator).to(torch.device(device))


@lru_cache(maxsize=4)
def _load_cached(path: str, mtime_ns: int, size: int, estimator: str) -> RigidModel | KeypointModel:
    state = load_torch_file(path, "rigid model weights file")
    expected = KEYPOINT_FORMAT if estimator == "keypoints" else FORMAT
    if state.get("format") != expected:
        found = state.get("format")
        raise WeightsError(f"{path} is not a dlreg 3D rigid '{estimator}' model (expected format "
                           f"'{expected}', found {found!r})")
    if list(state.get("grid", [])) != [GRID_SIZE, GRID_SPACING]:
        raise WeightsError(f"{path} was trained on a {state.get('grid')} grid, this version uses "
                           f"{[GRID_SIZE, GRID_SPACING]}")
    if estimator == "keypoints":
        try:
            net = KeypointDCNN(int(state["n_keypoints"]), int(state["width"]))
            net.load_state_dict(state["net"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise WeightsError(f"{path} does not fit the keypoint DCNN: {str(exc).splitlines()[0]}") from exc
        return KeypointModel(net.eval(), dict(state.get("meta", {})), int(state.get("iterations", 1)))
    dcnn = RigidDCNN(tuple(state.get("channels", ())) or (8,))
    try:
        dcnn.load_state_dict(state["dcnn"])
    except (KeyError, RuntimeError) as exc:
        raise WeightsError(f"{path} does not fit the 3D rigid DCNN: {str(exc).splitlines()[0]}") from exc
    ann = None
    if "ann" in state:
        ann = ANNModel.from_state({k: v.numpy() for k, v in state["ann"].items()})
        if ann.w1.shape[1] != dcnn.fc.in_features:
            raise WeightsError(f"{path}: the ANN takes {ann.w1.shape[1]} features, the DCNN gives "
                               f"{dcnn.fc.in_features}")
    return RigidModel(dcnn.eval(), ann, dict(state.get("meta", {})))
