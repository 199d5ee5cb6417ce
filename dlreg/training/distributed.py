"""Data parallelism under torchrun: one process per device, gradients averaged by DistributedDataParallel.

`torchrun --nproc_per_node N -m dlreg train-rigid ...` starts N processes with WORLD_SIZE,
RANK and LOCAL_RANK set; the trainers call `init_distributed` (gloo for CPU tensors, NCCL
for CUDA ones) and train on `process_device`. Outside torchrun they run as one process.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world_size() -> int:
    """How many processes torchrun started (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def process_device(device: torch.device) -> torch.device:
    """This process's device: under torchrun on CUDA, the GPU numbered LOCAL_RANK; otherwise `device`."""
    if device.type == "cuda" and world_size() > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device


def init_distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size); joins the process group under torchrun (NCCL for CUDA, gloo otherwise)."""
    world = world_size()
    if world == 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model wrapped for gradient averaging across the processes (itself in a single process)."""
    if world_size() == 1:
        return model
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                     else None)
