"""Bundled model weights: find them by name, verify them against their card, load them.

Every bundled file `dlreg/models/<name>.<ext>` has a JSON card `dlreg/models/<name>.json`
with at least `file` and `sha256`. User-provided VGG weights are torchvision-format
state dicts (`features.0.weight`, ...) given as a file or as a torch hub cache folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import torch

from dlreg.errors import WeightsError
from dlreg.imaging.outputs import atomic_write

MODELS_DIR = Path(__file__).resolve().parent / "models"


def model_card(name: str) -> dict:
    """The JSON card of bundled model `name`."""
    path = MODELS_DIR / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in MODELS_DIR.glob("*.json"))
        raise WeightsError(f"no bundled model named '{name}' (known: {', '.join(known) or 'none'})")
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise WeightsError(f"model card {path} is unreadable: {exc}") from exc
    if "file" not in card or "sha256" not in card:
        raise WeightsError(f"model card {path} lacks 'file' or 'sha256'")
    return card


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_model_card(weights: str | Path, card: dict) -> dict:
    """Write `card` beside `weights` as <name>.json, with the name, file, sha256 and size filled in."""
    weights = Path(weights)
    card = {"name": weights.stem, "file": weights.name, "sha256": sha256_of(weights),
            "bytes": weights.stat().st_size, **card}
    text = json.dumps(card, indent=2) + "\n"
    atomic_write(weights.with_suffix(".json"), lambda temporary: temporary.write_text(text))
    return card


def save_torch(state: dict, path: str | Path) -> Path:
    """torch.save, whole or not at all (a crash or a full disk never leaves half a weights file)."""
    return atomic_write(path, lambda temporary: torch.save(state, temporary),
                        verify=lambda temporary: load_torch_file(temporary, "written weights file"))


def bundled_path(name: str, verify: bool = True) -> Path:
    """Path of bundled model `name`, its checksum verified against the card."""
    card = model_card(name)
    path = MODELS_DIR / card["file"]
    if not path.is_file():
        raise WeightsError(f"bundled weights file {path} is missing: reinstall dlreg")
    if verify and sha256_of(path) != card["sha256"]:
        raise WeightsError(f"bundled weights file {path} is corrupted: its sha256 differs from "
                           f"the model card; reinstall dlreg")
    return path


def load_torch_file(path: str | Path, what: str = "weights file", keys: Sequence[str] = (),
                    hint: str = "") -> dict:
    """The dictionary a torch file holds (tensors and plain values only), or one clear WeightsError.

    `keys` must be present; `hint` ends every message (what the user can do about it).
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises many types (OSError, pickle, zip, runtime) for a bad file
        raise WeightsError(f"cannot read {what} {path}: not a PyTorch weights file, or a corrupted one{hint}") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{what} {path} does not hold a dictionary of weights{hint}")
    missing = [key for key in keys if key not in state]
    if missing:
        raise WeightsError(f"{what} {path} lacks {', '.join(map(repr, missing))}: not a dlreg {what}{hint}")
    return state


def load_bundled_state(name: str) -> dict:
    """State dict of bundled model `name` (checksum verified)."""
    return load_torch_file(bundled_path(name), "bundled weights file", hint=": reinstall dlreg")


def find_vgg_file(location: str | Path) -> Path:
    """A VGG weights file: `location` itself, or the newest vgg*.pth under a hub cache folder."""
    path = Path(location).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        found = sorted(path.rglob("vgg*.pth"), key=lambda p: ("vgg19" not in p.name, p.name))
        if found:
            return found[0]
        raise WeightsError(f"no vgg*.pth file under {path} (expected a torch hub cache, "
                           f"e.g. ~/.cache/torch/hub/checkpoints/vgg19-dcbb9e9d.pth)")
    raise WeightsError(f"VGG weights '{location}' do not exist")


def load_vgg_conv1(location: str | Path | None = None) -> dict[str, torch.Tensor]:
    """conv1_1 and conv1_2 tensors (`features.0.*`, `features.2.*`) of a VGG.

    None gives the bundled ImageNet VGG16 block; otherwise a torchvision-format VGG16 or
    VGG19 state dict (file or hub cache folder), of which only block 1 is kept.
    """
    if location is None:
        state = load_bundled_state("vgg16_conv1_imagenet")
        source = "bundled vgg16_conv1_imagenet"
    else:
        path = find_vgg_file(location)
        state = load_torch_file(path, "VGG weights file")
        source = str(path)
    expected = {"features.0.weight": (64, 3, 3, 3), "features.0.bias": (64,),
                "features.2.weight": (64, 64, 3, 3), "features.2.bias": (64,)}
    out = {}
    for key, shape in expected.items():
        if key not in state:
            raise WeightsError(f"{source} has no tensor '{key}': not a torchvision VGG state dict")
        tensor = state[key]
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape:
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise WeightsError(f"{source}: '{key}' has shape {got}, expected {shape}")
        if not torch.isfinite(tensor).all():
            raise WeightsError(f"{source}: '{key}' holds NaN or infinite values")
        out[key] = tensor.float()
    return out
