"""Pick the torch device: "auto" means CUDA, then Apple MPS, then CPU."""

from __future__ import annotations

import torch

from dlreg.errors import DLRegError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Return a usable torch device; a named device that is absent is an error."""
    if isinstance(device, torch.device):
        return device
    name = str(device).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DLRegError(f"device '{device}' was requested but no CUDA GPU is available")
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DLRegError("device 'mps' was requested but Apple MPS is not available")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise DLRegError(f"unknown device '{device}': use auto, cpu, cuda, cuda:N or mps") from exc


def describe_devices() -> dict:
    """What `python -m dlreg info` reports about compute devices."""
    info = {"auto": str(resolve_device("auto")), "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info
