"""The 3D DCNN of the paper (Fig. 4), sized for the 64^3 canonical grid and a CPU.

One convolutional trunk, shared by the fixed and the moving image: blocks of 3x3x3
convolution + batch norm + LeakyReLU(0.1), 3D max pooling between them, and global
average pooling of the last convolution layer (128 channels) -> 128 features per image.
The two feature vectors are concatenated (256) and a fully connected layer regresses
the 6 rigid parameters (3 Euler angles, 3 translations), in normalised units
(`TARGET_SCALE`). Three fixed coordinate channels (x, y, z in [-1, 1]) are appended to
the intensity so that globally pooled features can still encode where the head is:
without them, a translation of the head inside the grid would be nearly invisible.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dlreg.errors import WeightsError
from dlreg.rigid3d.preprocess import GRID_SIZE

CHANNELS = (8, 16, 32, 64, 128)
# Normalised target = parameters / scale: 10 degrees for rotations, 5 mm for translations.
TARGET_SCALE = (math.radians(10.0),) * 3 + (5.0,) * 3
N_FEATURES = CHANNELS[-1]


def _block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm3d(c_out), nn.LeakyReLU(0.1))


class RigidDCNN(nn.Module):
    """Siamese 3D CNN: features(image) -> 128, forward(fixed, moving) -> 6 normalised parameters."""

    def __init__(self, channels: tuple[int, ...] = CHANNELS, grid_size: int = GRID_SIZE) -> None:
        super().__init__()
        self.channels = tuple(channels)
        layers: list[nn.Module] = [_block(4, channels[0], stride=2)]
        for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
            if i < len(channels) - 2:
                layers.append(nn.MaxPool3d(2))
            layers.append(_block(c_in, c_out))
        self.trunk = nn.Sequential(*layers)
        self.fc = nn.Linear(2 * channels[-1], 6)
        axis = torch.linspace(-1.0, 1.0, grid_size)
        zz, yy, xx = torch.meshgrid(axis, axis, axis, indexing="ij")
        self.register_buffer("coords", torch.stack([xx, yy, zz])[None], persistent=False)

    def features(self, volume: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W) or (B, 1, D, H, W) canonical volumes -> (B, 128) pooled features."""
        if volume.dim() == 4:
            volume = volume[:, None]
        if tuple(volume.shape[2:]) != tuple(self.coords.shape[2:]):
            raise WeightsError(f"the network expects {tuple(self.coords.shape[2:])} inputs, "
                               f"got {tuple(volume.shape[2:])}")
        x = torch.cat([volume, self.coords.expand(volume.shape[0], -1, -1, -1, -1)], dim=1)
        return self.trunk(x).mean(dim=(2, 3, 4))

    def forward(self, fixed: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
        """Normalised rigid parameters of the canonical fixed -> moving transform."""
        both = self.features(torch.cat([fixed, moving], dim=0))
        n = fixed.shape[0]
        return self.fc(torch.cat([both[:n], both[n:]], dim=1))

    def pair_features(self, fixed: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
        """(B, 256): fixed features then moving features, the ANN's input."""
        both = self.features(torch.cat([fixed, moving], dim=0))
        n = fixed.shape[0]
        return torch.cat([both[:n], both[n:]], dim=1)


def target_scale() -> torch.Tensor:
    """TARGET_SCALE as a float32 tensor."""
    return torch.tensor(TARGET_SCALE, dtype=torch.float32)
