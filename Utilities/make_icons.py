"""Draw the extension's 128x128 icons (extension and the three modules) with numpy; writes PNG with zlib.

    python Utilities/make_icons.py
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SIZE = 128
WHITE, ORANGE, YELLOW, GREY = (255, 255, 255), (255, 140, 26), (255, 221, 51), (150, 160, 175)
_y, _x = np.mgrid[0:SIZE, 0:SIZE] + 0.5


def write_png(path: Path, rgba: np.ndarray) -> None:
    """Write an (H, W, 4) uint8 array as an 8-bit RGBA PNG."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    height, width, _ = rgba.shape
    rows = b"".join(b"\x00" + rgba[row].tobytes() for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9))
                     + chunk(b"IEND", b""))


def _paint(image: np.ndarray, coverage: np.ndarray, color) -> None:
    """Alpha-blend a colour over the image where `coverage` (0..1) says."""
    a = np.clip(coverage, 0.0, 1.0)[..., None]
    image[..., :3] = image[..., :3] * (1 - a) + np.asarray(color, float) * a
    image[..., 3:] = np.maximum(image[..., 3:], a * 255)


def _local(cx: float, cy: float, angle_deg: float):
    t = np.radians(angle_deg)
    dx, dy = _x - cx, _y - cy
    return dx * np.cos(t) + dy * np.sin(t), -dx * np.sin(t) + dy * np.cos(t)


def background(top, bottom) -> np.ndarray:
    """A vertical gradient in a rounded square."""
    image = np.zeros((SIZE, SIZE, 4))
    mix = (_y / SIZE)[..., None]
    image[..., :3] = np.asarray(top, float) * (1 - mix) + np.asarray(bottom, float) * mix
    u, v = np.abs(_x - SIZE / 2) - (SIZE / 2 - 24), np.abs(_y - SIZE / 2) - (SIZE / 2 - 24)
    outside = np.hypot(np.maximum(u, 0), np.maximum(v, 0)) + np.minimum(np.maximum(u, v), 0) - 20
    image[..., 3] = np.clip(0.5 - outside, 0, 1) * 255
    return image


def ellipse_ring(image, cx, cy, a, b, angle, width, color) -> None:
    u, v = _local(cx, cy, angle)
    distance = np.abs(np.hypot(u / a, v / b) - 1) * min(a, b)
    _paint(image, width / 2 + 0.5 - distance, color)


def square_ring(image, cx, cy, half, angle, width, color) -> None:
    u, v = _local(cx, cy, angle)
    distance = np.abs(np.maximum(np.abs(u), np.abs(v)) - half)
    _paint(image, width / 2 + 0.5 - distance, color)


def disk(image, cx, cy, r, color) -> None:
    _paint(image, r + 0.5 - np.hypot(_x - cx, _y - cy), color)


def bar(image, x0, x1, y0, y1, color) -> None:
    inside = np.minimum(np.minimum(_x - x0, x1 - _x), np.minimum(_y - y0, y1 - _y))
    _paint(image, inside + 0.5, color)


def zero_shot() -> np.ndarray:
    """Fixed (white) and moving (orange) head outlines, with keypoints."""
    image = background((18, 110, 130), (8, 52, 78))
    ellipse_ring(image, 60, 66, 34, 42, 0, 6, WHITE)
    ellipse_ring(image, 70, 60, 34, 42, 22, 6, ORANGE)
    for x, y in [(52, 44), (78, 50), (46, 76), (70, 84), (62, 62)]:
        disk(image, x, y, 4.5, YELLOW)
    return image


def rigid_dcnn() -> np.ndarray:
    """A square and its rotated copy (rigid motion) around a network node."""
    image = background((70, 60, 160), (30, 24, 80))
    square_ring(image, 60, 68, 30, 0, 6, WHITE)
    square_ring(image, 70, 58, 30, 18, 6, ORANGE)
    disk(image, 65, 63, 9, YELLOW)
    return image


def modality() -> np.ndarray:
    """Class probabilities as bars, the winning class in orange."""
    image = background((40, 130, 80), (16, 64, 40))
    for x, height, color in [(26, 30, GREY), (50, 82, ORANGE), (74, 44, WHITE), (98, 20, GREY)]:
        bar(image, x - 9, x + 9, 104 - height, 104, color)
    return image


def extension() -> np.ndarray:
    """The extension: aligned outlines over keypoints."""
    image = background((36, 72, 140), (12, 28, 70))
    ellipse_ring(image, 64, 64, 36, 44, 0, 6, WHITE)
    ellipse_ring(image, 64, 64, 24, 30, 30, 5, ORANGE)
    for x, y in [(64, 40), (44, 70), (84, 72), (64, 90)]:
        disk(image, x, y, 4.5, YELLOW)
    return image


ICONS = {
    "ZeroShotRegistration/Resources/Icons/ZeroShotRegistration.png": zero_shot,
    "RigidDCNNRegistration/Resources/Icons/RigidDCNNRegistration.png": rigid_dcnn,
    "ModalityClassifier/Resources/Icons/ModalityClassifier.png": modality,
    "Resources/Icons/SlicerDLReg.png": extension,
    "SlicerDLRegCommon/Resources/Icons/SlicerDLRegCommon.png": extension,
}


def main() -> None:
    for relative, draw in ICONS.items():
        write_png(ROOT / relative, np.round(draw()).astype(np.uint8))
        print(f"wrote {relative}")


if __name__ == "__main__":
    main()
