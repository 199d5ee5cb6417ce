"""The classifier: the rigid pipeline's 3D DCNN backbone with a softmax head.

Paper: "the same 3D DCNN architecture ... but replaced the fully connected layer with a
softmax layer and the regression layer with a classification output layer", trained
with cross-entropy. The backbone is `dlreg.rigid3d.dcnn.RigidDCNN`'s trunk (conv + batch
norm + LeakyReLU blocks, 3D max pooling, global average pooling, with its coordinate
channels), used on one image; its first convolution takes the input channels of `preprocess`
the weights were trained on (normalised intensity, foreground rank) beside the coordinates,
its regression layer is dropped and the head is one linear layer to one logit per network
class; the softmax (with the calibrated temperature) is applied in `pipeline`. The shipped
network answers the MR contrasts only (CT is decided by `physics`). Weights files hold
{"model": state dict, "meta": {...}}; "meta" carries the network's classes, input channels,
temperature, threshold and canonical grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dlreg.device import resolve_device
from dlreg.errors import WeightsError
from dlreg.modality.classes import CLASSES
from dlreg.modality.preprocess import CHANNELS, GRID_SIZE, GRID_SPACING
from dlreg.rigid3d import dcnn
from dlreg.weights import bundled_path, load_torch_file, save_torch

BUNDLED = "modality_dcnn"


class ModalityNet(nn.Module):
    """Backbone features -> linear logits over CLASSES."""

    def __init__(self, n_classes: int = len(CLASSES), grid_size: int = GRID_SIZE,
                 in_channels: int = len(CHANNELS)) -> None:
        super().__init__()
        self.grid_size = grid_size
        self.in_channels = in_channels
        self.backbone = dcnn.RigidDCNN(grid_size=grid_size)
        self.backbone.fc = nn.Identity()   # the regression layer is replaced by the head
        first = self.backbone.trunk[0][0]  # one image channel + the coordinate channels
        self.backbone.trunk[0][0] = nn.Conv3d(first.in_channels - 1 + in_channels, first.out_channels,
                                              first.kernel_size, first.stride, first.padding, bias=False)
        self.head = nn.Linear(dcnn.N_FEATURES, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, len(CHANNELS), G, G, G) canonical inputs -> (B, n_classes) logits."""
        return self.head(self.backbone.features(x))

    def describe(self) -> str:
        """One line for the model card."""
        n = sum(p.numel() for p in self.parameters())
        return (f"dlreg.rigid3d.dcnn.RigidDCNN trunk ({dcnn.N_FEATURES} features after global "
                f"average pooling, {self.in_channels} input channels and coordinates, "
                f"{self.grid_size}^3 grid) + linear softmax head over {self.head.out_features} classes; "
                f"{n} parameters")


@dataclass
class LoadedClassifier:
    """A network ready for inference with its calibration and grid."""

    net: ModalityNet
    device: torch.device
    temperature: float
    threshold: float
    grid_size: int
    grid_spacing: float

    classes: tuple[str, ...]   # the network's outputs, a subset of CLASSES
    channels: list[int]        # positions of its input channels among preprocess.CHANNELS

    @torch.no_grad()
    def logits(self, array: np.ndarray) -> np.ndarray:
        """Logits over `classes` of one canonical input [c, k, j, i] (all CHANNELS), averaged
        over the eight flips of the cube."""
        x = torch.from_numpy(np.ascontiguousarray(array[self.channels], np.float32))[None].to(self.device)
        return flip_averaged_logits(self.net, x)[0].double().cpu().numpy()


FLIPS = [tuple(axis for axis, bit in zip((2, 3, 4), (k & 1, k & 2, k & 4)) if bit) for k in range(8)]


def flip_averaged_logits(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Mean logits over the eight flips of the cube's axes (x: B, C, G, G, G), one batch.

    The canonical cube's axes are the head's principal axes, whose signs the anatomy does not
    always fix: averaging over the flips makes the answer independent of them."""
    batch = torch.cat([torch.flip(x, dims) if dims else x for dims in FLIPS])
    return net(batch).reshape(len(FLIPS), len(x), -1).mean(dim=0)


def save_classifier(path: str | Path, net: ModalityNet, meta: dict) -> Path:
    """Write {"model", "meta"} (meta gains the grid; "network_classes" and "channels" default
    to all CLASSES and CHANNELS)."""
    path = Path(path)
    meta = {"network_classes": list(CLASSES), "channels": list(CHANNELS), "grid_size": net.grid_size,
            "grid_spacing": GRID_SPACING, **meta}
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    save_torch({"model": state, "meta": meta}, path)
    return path


def load_classifier(weights: str | Path | None = None, device: str = "cpu") -> LoadedClassifier:
    """The bundled classifier (checksum verified) or a weights file, cached per (file, device)."""
    path = bundled_path(BUNDLED) if weights is None else Path(weights)
    if not path.is_file():
        raise WeightsError(f"modality classifier weights not found: {path}")
    stat = path.stat()
    return _load(str(path.resolve()), stat.st_mtime_ns, stat.st_size, str(resolve_device(device)))


@lru_cache(maxsize=4)
def _load(path: str, mtime: int, size: int, device: str) -> LoadedClassifier:
    payload = load_torch_file(path, "modality classifier weights file", keys=("model", "meta"))
    meta, state = payload["meta"], payload["model"]
    classes = tuple(meta.get("network_classes", meta.get("classes", ())))
    if not classes or not set(classes) <= set(CLASSES):
        raise WeightsError(f"{path} was trained for classes {list(classes)}, not a subset of {list(CLASSES)}")
    channels = list(meta.get("channels", ["normalised"]))
    if not channels or not set(channels) <= set(CHANNELS):
        raise WeightsError(f"{path} was trained on input channels {channels}, expected some of {list(CHANNELS)}")
    if not {"temperature", "threshold", "grid_size", "grid_spacing"} <= set(meta):
        raise WeightsError(f"{path} lacks the calibration or grid of a modality classifier")
    if int(meta["grid_size"]) != GRID_SIZE or float(meta["grid_spacing"]) != GRID_SPACING:
        raise WeightsError(f"{path} was trained on a {meta['grid_size']}^3 x {meta['grid_spacing']} mm grid, "
                           f"this version reads {GRID_SIZE}^3 x {GRID_SPACING} mm")
    net = ModalityNet(n_classes=len(classes), grid_size=int(meta["grid_size"]), in_channels=len(channels))
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(f"{path} does not fit the modality network: {exc}") from exc
    dev = torch.device(device)
    return LoadedClassifier(net.to(dev).eval(), dev, float(meta["temperature"]), float(meta["threshold"]),
                            int(meta["grid_size"]), float(meta["grid_spacing"]), classes,
                            [CHANNELS.index(c) for c in channels])
