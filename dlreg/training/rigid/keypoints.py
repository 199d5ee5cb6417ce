"""Train the keypoint DCNN on co-registered groups of head volumes, pairs drawn on the fly.

A group is a list of volumes of one subject that share the true geometry (the contrasts of
one patient, a T1 with its pseudo-CT, a single volume with itself). Every training pair is
two members of one group (possibly the same), the fixed one sampled on the canonical grid
in its head frame jittered by up to JITTER (degrees, mm), the moving one in that frame
moved by a random rigid motion D (up to MOTION) -- so canonical fixed -> moving is D
exactly, with nothing interpolated twice. Intensities get a random gamma and scale.
Loss: mean distance between the fitted and the true transform at the corners of a
120 mm cube (the head), plus KEYPOINT_WEIGHT x the mean landmark disagreement |D x_f - x_m|.
Adam, learning rate dropped tenfold for the last quarter of the steps, mixed precision on
CUDA, checkpoints every `checkpoint_every` steps (resumed), progress callback and cancel,
seeded. Under `torchrun --nproc_per_node N` it trains data-parallel (DistributedDataParallel,
gloo on CPU, NCCL on GPU): every process draws its own `batch_size` pairs per step (its own
random stream), the gradients are averaged, and the first process validates and writes the
checkpoints, weights and card. A single process draws exactly what it always did.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk
import torch

from dlreg.device import resolve_device
from dlreg.errors import InputImageError, WeightsError
from dlreg.imaging.io import read_image
from dlreg.imaging.rigid import axis_angle_matrix, random_rigid
from dlreg.progress import ProgressCallback, report
from dlreg.rigid3d.keypoints import KeypointDCNN, kabsch, pair_landmarks, pair_transform
from dlreg.rigid3d.model import KeypointModel, save_keypoint_model
from dlreg.rigid3d.pipeline import fixed_frame
from dlreg.rigid3d.preprocess import Prepared, prepare, sample_canonical
from dlreg.training.distributed import init_distributed, process_device, world_size, wrap
from dlreg.training.rigid.pairs import assign_splits, discover_pairs
from dlreg.weights import load_torch_file, write_model_card

MOTION = (20.0, 8.0)    # degrees about a random axis, mm per axis
JITTER = (10.0, 6.0)    # of the fixed frame
KEYPOINT_WEIGHT = 0.1
CUBE_MM = 60.0


@dataclass
class Group:
    """Co-registered prepared volumes of one subject and their head frames (computed once)."""

    name: str
    members: list[Prepared]
    frames: list[np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        self.frames = [fixed_frame(member) for member in self.members]


def prepare_groups(groups: dict[str, Sequence[sitk.Image]]) -> list[Group]:
    """Prepare every volume (names in errors say which group failed)."""
    out = []
    for name, images in groups.items():
        if not images:
            raise InputImageError(f"training group {name} holds no volume")
        out.append(Group(name, [prepare(img, f"{name} volume {i}") for i, img in enumerate(images)]))
    return out


def cube_corners(half: float = CUBE_MM) -> np.ndarray:
    """(8, 3) corners of a cube of half-width `half` mm about the canonical origin."""
    return np.array(np.meshgrid(*([(-half, half)] * 3), indexing="ij")).reshape(3, -1).T


def _jitter(rng: np.random.Generator) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = axis_angle_matrix(rng.normal(size=3), np.radians(rng.uniform(-JITTER[0], JITTER[0])))
    out[:3, 3] = rng.uniform(-JITTER[1], JITTER[1], 3)
    return out


def _intensity(volume: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gamma = np.exp(rng.uniform(-0.35, 0.35))
    return (np.clip(volume, 0.0, None) ** gamma * rng.uniform(0.8, 1.2)).astype(np.float32)


def draw_pairs(groups: list[Group], n: int, rng: np.random.Generator,
               augment: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n pairs: canonical fixed (n, 64^3), moving (n, 64^3) and the true D (n, 4, 4)."""
    fixed, moving, motions = [], [], []
    for _ in range(n):
        group = groups[rng.integers(len(groups))]
        i, j = rng.integers(len(group.members), size=2)
        a, b = group.members[i], group.members[j]
        frame = group.frames[i] @ _jitter(rng)
        motion = random_rigid(rng, *MOTION)
        f = sample_canonical(a.image, frame)
        m = sample_canonical(b.image, frame @ np.linalg.inv(motion))
        if augment:
            f, m = _intensity(f, rng), _intensity(m, rng)
        fixed.append(f)
        moving.append(m)
        motions.append(motion)
    return (torch.from_numpy(np.stack(fixed)), torch.from_numpy(np.stack(moving)),
            torch.from_numpy(np.stack(motions)))


def corner_error(estimate: torch.Tensor, truth: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
    """(B,) mean distance (mm) between two batches of 4x4 transforms at `corners` (8, 3)."""
    diff = (estimate[:, :3, :3] - truth[:, :3, :3]) @ corners.T + (estimate[:, :3, 3] - truth[:, :3, 3])[..., None]
    return diff.norm(dim=1).mean(dim=1)


def pair_loss(model: KeypointDCNN, fixed: torch.Tensor, moving: torch.Tensor,
              motions: torch.Tensor, corners: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, per-pair corner error in mm) of one batch."""
    fixed_points, moving_points, weights = pair_landmarks(model, fixed, moving)
    error = corner_error(kabsch(fixed_points, moving_points, weights), motions, corners)
    moved = fixed_points @ motions[:, :3, :3].transpose(1, 2) + motions[:, None, :3, 3]
    landmark = (moved - moving_points).norm(dim=2).mean()
    return error.mean() + KEYPOINT_WEIGHT * landmark, error.detach()


def validation_error(model: KeypointDCNN, batches: list, corners: torch.Tensor,
                     device: torch.device) -> float:
    """Median corner error (mm) of the fixed validation pairs."""
    model.eval()
    errors = []
    with torch.no_grad():
        for fixed, moving, motions in batches:
            estimate = pair_transform(model, fixed.to(device), moving.to(device)).cpu()
            errors.append(corner_error(estimate, motions, corners))
    return float(torch.cat(errors).median()) if errors else float("nan")


def train_keypoints(train: list[Group], val: list[Group], out: str | Path, *, steps: int = 1500,
                    batch_size: int = 4, lr: float = 2e-3, seed: int = 0, device: str = "auto",
                    n_val: int = 24, checkpoint_every: int = 100, resume: bool = True,
                    progress: ProgressCallback | None = None) -> tuple[KeypointDCNN, list[dict]]:
    """Train from scratch (or resume `out`/keypoint_checkpoint.pt); returns the model and history.

    Under torchrun, `batch_size` is per process and only the first process reports progress.
    """
    if not train:
        raise InputImageError("no training groups")
    dev = process_device(resolve_device(device))
    rank, world = init_distributed(dev)
    torch.manual_seed(seed)  # the same initial weights in every process
    model = KeypointDCNN().to(dev)
    net = wrap(model, dev)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "keypoint_checkpoint.pt"
    config = {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
              "train": [g.name for g in train], "val": [g.name for g in val]}
    if world > 1:
        config["processes"] = world
    progress = progress if rank == 0 else None
    first, history = 0, []
    if resume and checkpoint.is_file():
        state = load_torch_file(checkpoint, "keypoint checkpoint", keys=("model", "optimizer", "step", "history"),
                                hint="; delete it or train with resume=False (--no-resume)")
        if state.get("config") != config:
            raise WeightsError(f"checkpoint {checkpoint} belongs to a run with other settings; delete it")
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimizer"])
        first, history = int(state["step"]), list(state["history"])
    corners = torch.from_numpy(cube_corners())
    val_batches = [draw_pairs(val, min(batch_size, n_val - i), np.random.default_rng(10_000 + i), augment=False)
                   for i in range(0, n_val, batch_size)] if val else []
    drop_at = (3 * steps) // 4
    amp = dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    recent: list[float] = []
    start = time.perf_counter()
    for step in range(first, steps):
        for group in optimiser.param_groups:
            group["lr"] = lr if step < drop_at else lr / 10
        # per step (and process): a resumed run draws the same pairs
        rng = np.random.default_rng([seed, step] if world == 1 else [seed, step, rank])
        fixed, moving, motions = draw_pairs(train, batch_size, rng)
        net.train()
        with torch.autocast(dev.type, enabled=amp):  # the heatmaps' softmax and the fit stay in float32/64
            loss, error = pair_loss(net, fixed.to(dev), moving.to(dev), motions.to(dev), corners.to(dev))
        optimiser.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()
        recent += error.cpu().tolist()
        message = f"step {step + 1}/{steps}"
        if (step + 1) % checkpoint_every == 0 or step + 1 == steps:
            recent = all_processes(recent, world)
            if rank == 0:
                record = {"step": step + 1, "train_corner_mm": float(np.median(recent)),
                          "val_corner_mm": validation_error(model, val_batches, corners, dev),
                          "seconds": round(time.perf_counter() - start, 1)}
                history.append(record)
                torch.save({"step": step + 1, "model": model.state_dict(), "optimizer": optimiser.state_dict(),
                            "history": history, "config": config}, checkpoint)
                message += f": {record}"
            recent = []
        report(progress, (step + 1) / steps, message)  # every step, so that a cancel is prompt
    return model.eval(), history


def all_processes(values: list[float], world: int) -> list[float]:
    """The values of every process (in rank order); `values` itself in a single process."""
    if world == 1:
        return values
    gathered: list = [None] * world
    torch.distributed.all_gather_object(gathered, values)
    return [v for part in gathered for v in part]


def groups_from_pairs(source: str | Path, seed: int = 0) -> tuple[dict, dict]:
    """(train, val) {name: [images]} from a folder or CSV (`training.discover_pairs`): the volumes
    paired with one fixed image form its group; the splits are `training.assign_splits`'."""
    pairs = discover_pairs(source)
    splits = assign_splits(pairs, seed)
    paths: dict[str, dict[Path, None]] = {}
    split_of: dict[str, str] = {}
    for (fixed, moving, _), split in zip(pairs, splits):
        paths.setdefault(str(fixed), {fixed: None})[moving] = None
        split_of[str(fixed)] = split
    out: tuple[dict, dict] = ({}, {})
    for name, members in paths.items():
        out[split_of[name] == "val"][name] = [read_image(p) for p in members]
    return out


def train_from_folder(folder_or_csv: str | Path, output_dir: str | Path, *, steps: int = 1500, batch_size: int = 4,
                      lr: float = 2e-3, device: str = "auto", seed: int = 0, resume: bool = True,
                      progress: ProgressCallback | None = None) -> Path:
    """Train on a folder or CSV (`pairs.discover_pairs`); write `rigid3d_keypoints.pt` + card; return its path."""
    start = time.time()
    train, val = groups_from_pairs(folder_or_csv, seed)
    report(progress, 0.0, f"preparing {sum(map(len, train.values()))} training and "
                          f"{sum(map(len, val.values()))} validation volumes")
    model, history = train_keypoints(prepare_groups(train), prepare_groups(val), output_dir, steps=steps,
                                     batch_size=batch_size, lr=lr, seed=seed, device=device, resume=resume,
                                     progress=progress)
    weights = Path(output_dir) / "rigid3d_keypoints.pt"
    if torch.distributed.is_initialized():
        torch.distributed.barrier()  # every process has finished its steps
        if torch.distributed.get_rank() != 0:
            return weights  # the first process writes the weights and the card
    return save_with_card(model, weights, history, {
        "training_groups": {"train": list(train), "val": list(val)},
        "recipe": {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "motion": MOTION,
                   "jitter": JITTER, "processes": world_size()},
        "trained_seconds": round(time.time() - start, 1)})


def save_with_card(model: KeypointDCNN, path: Path, history: list[dict], card: dict) -> Path:
    """Write the weights and their JSON card (architecture, history, the given fields)."""
    weights = save_keypoint_model(path, KeypointModel(model.cpu().eval(), {"history": history}))
    write_model_card(weights, {
        "architecture": f"dlreg.rigid3d.keypoints.KeypointDCNN ({model.n_keypoints} landmarks, width "
                        f"{model.width}, {sum(p.numel() for p in model.parameters())} parameters) + "
                        "weighted Kabsch fit, iterated",
        "history": history, **card})
    return weights
