"""Train the paper's 3D rigid model: augmented pairs -> DCNN (SGDM) -> features -> Bayesian-LM ANN.

Input: a CSV or a folder of co-registered volumes (`pairs.discover_pairs`).

Recipe (paper, adapted): `n_augment` random motions per pair (+-15 deg, +-5 mm), 30% of
the pairs held out for validation with all their synthetic copies; SGD with momentum
0.9, learning rate `lr` dropped tenfold after 2/3 of the epochs, half-MSE loss on
normalised parameters; then the ANN on the 256 features with Bayesian-regularised LM,
plain LM as a comparison, R^2 reported for the DCNN, the BR-ANN and the LM-ANN.
Checkpoints after every epoch (`checkpoint.pt`), resumed when `resume`; mixed precision
on CUDA; distributed data parallel when launched by torchrun (WORLD_SIZE > 1).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from dlreg.device import resolve_device
from dlreg.errors import WeightsError
from dlreg.imaging.geometry import matrix_to_rigid
from dlreg.imaging.io import read_image
from dlreg.progress import ProgressCallback, report
from dlreg.rigid3d.dcnn import RigidDCNN, target_scale
from dlreg.rigid3d.model import RigidModel, save_model
from dlreg.rigid3d.pipeline import fixed_frame
from dlreg.rigid3d.preprocess import prepare, sample_canonical
from dlreg.training.distributed import init_distributed, process_device, wrap
from dlreg.training.rigid.ann_lm import r_squared, train_lm
from dlreg.training.rigid.augmentation import augment_pairs
from dlreg.training.rigid.pairs import assign_splits, discover_pairs
from dlreg.weights import load_torch_file, save_torch, write_model_card


def build_samples(pairs, splits: list[str], n_augment: int, seed: int,
                  progress: ProgressCallback | None = None) -> dict:
    """Canonical fixed/moving volumes (float16), normalised targets and splits."""
    fixed, moving, targets, out_splits, pair_index = [], [], [], [], []
    scale = target_scale().double().numpy()
    motions = augment_pairs(splits, n_augment, seed)
    for i, (f_path, m_path, _) in enumerate(pairs):
        report(progress, 0.1 * i / len(pairs), f"preparing pair {i + 1}/{len(pairs)}: {m_path.name}")
        prep_f = prepare(read_image(f_path), str(f_path))
        prep_m = prep_f if m_path == f_path else prepare(read_image(m_path), str(m_path))
        frame_f = fixed_frame(prep_f)
        fixed.append(sample_canonical(prep_f.image, frame_f).astype(np.float16))
        for aug in (a for a in motions if a.pair == i):
            # moving sampled so that canonical fixed -> canonical moving is exactly `motion`
            moving.append(sample_canonical(prep_m.image, frame_f @ np.linalg.inv(aug.motion)).astype(np.float16))
            targets.append(matrix_to_rigid(aug.motion) / scale)
            out_splits.append(aug.split)
            pair_index.append(i)
    return {"fixed": torch.from_numpy(np.stack(fixed)), "moving": torch.from_numpy(np.stack(moving)),
            "targets": torch.tensor(np.array(targets), dtype=torch.float32),
            "pair": torch.tensor(pair_index), "split": np.array(out_splits)}


def _load_checkpoint(path: Path, config: dict) -> dict | None:
    if not path.is_file():
        return None
    state = load_torch_file(path, "checkpoint", keys=("dcnn", "epoch"),
                            hint="; delete it or train with resume=False (--no-resume)")
    if state.get("config") != config:
        raise WeightsError(f"checkpoint {path} belongs to a run with other settings "
                           f"({state.get('config')}); delete it or pass resume=False")
    return state


def train_dcnn(samples: dict, output_dir: Path, *, epochs: int, lr: float, batch_size: int,
               device: torch.device, seed: int, resume: bool, config: dict,
               progress: ProgressCallback | None = None) -> tuple[RigidDCNN, list]:
    """SGDM training of the DCNN with per-epoch checkpoints; returns the model and history."""
    rank, world = init_distributed(device)
    torch.manual_seed(seed)
    model = RigidDCNN().to(device)
    optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    drop_at = max(1, (2 * epochs) // 3)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimiser, [drop_at], gamma=0.1)
    checkpoint_path = output_dir / "checkpoint.pt"
    first_epoch, history = 0, []
    state = _load_checkpoint(checkpoint_path, config) if resume else None
    if state is not None:
        model.load_state_dict(state["dcnn"])
        optimiser.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        first_epoch, history = int(state["epoch"]), list(state["history"])
    net = wrap(model, device)
    amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    train_idx = np.flatnonzero(samples["split"] == "train")
    scale = samples["targets"]
    for epoch in range(first_epoch, epochs):
        order = train_idx[np.random.default_rng(seed + epoch).permutation(len(train_idx))][rank::world]
        net.train()
        losses = []
        for b in range(0, len(order), batch_size):
            idx = torch.from_numpy(order[b:b + batch_size])
            fixed = samples["fixed"][samples["pair"][idx]].float().to(device)
            moving = samples["moving"][idx].float().to(device)
            target = scale[idx].to(device)
            with torch.autocast(device.type, enabled=amp):
                loss = 0.5 * torch.mean((net(fixed, moving).float() - target) ** 2)
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            losses.append(float(loss.detach()))
        scheduler.step()
        record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)) if losses else None,
                  "val_loss": _val_loss(model, samples, device, batch_size), "lr": optimiser.param_groups[0]["lr"]}
        history.append(record)
        if rank == 0:
            save_torch({"epoch": epoch + 1, "dcnn": model.state_dict(), "optimizer": optimiser.state_dict(),
                        "scheduler": scheduler.state_dict(), "history": history, "config": config},
                       checkpoint_path)
        report(progress, 0.1 + 0.7 * (epoch + 1) / epochs,
               f"epoch {epoch + 1}/{epochs}: train loss {record['train_loss']}, val loss {record['val_loss']}")
    return model.eval(), history


def _predict_all(model: RigidDCNN, samples: dict, idx: np.ndarray, device: torch.device,
                 batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, 256), normalised DCNN outputs (N, 6)) for the given samples."""
    feats, outs = [], []
    model.eval()
    with torch.no_grad():
        for b in range(0, len(idx), batch_size):
            i = torch.from_numpy(idx[b:b + batch_size])
            fixed = samples["fixed"][samples["pair"][i]].float().to(device)
            moving = samples["moving"][i].float().to(device)
            f = model.pair_features(fixed, moving)
            feats.append(f.double().cpu().numpy())
            outs.append(model.fc(f).double().cpu().numpy())
    if not feats:
        return np.zeros((0, 2 * model.channels[-1])), np.zeros((0, 6))
    return np.concatenate(feats), np.concatenate(outs)


def _val_loss(model: RigidDCNN, samples: dict, device: torch.device, batch_size: int) -> float | None:
    idx = np.flatnonzero(samples["split"] == "val")
    if len(idx) == 0:
        return None
    _, out = _predict_all(model, samples, idx, device, batch_size)
    return float(0.5 * np.mean((out - samples["targets"][idx].double().numpy()) ** 2))


def train_from_folder(folder_or_csv: str | os.PathLike, output_dir: str | os.PathLike, *, epochs: int = 30,
                      n_augment: int = 8, lr: float = 1e-3, batch_size: int = 4, ann_iterations: int = 50,
                      device: str = "auto", seed: int = 0, progress: ProgressCallback | None = None,
                      resume: bool = True) -> Path:
    """Train DCNN then ANN; write `rigid3d_model.pt` and its JSON card; return the weights path."""
    start = time.time()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    dev = process_device(resolve_device(device))
    pairs = discover_pairs(folder_or_csv)
    splits = assign_splits(pairs, seed)
    samples = build_samples(pairs, splits, n_augment, seed, progress)
    config = {"epochs": epochs, "n_augment": n_augment, "lr": lr, "batch_size": batch_size, "seed": seed,
              "pairs": [[str(f), str(m), s] for (f, m, _), s in zip(pairs, splits)]}
    model, history = train_dcnn(samples, output_dir, epochs=epochs, lr=lr, batch_size=batch_size,
                                device=dev, seed=seed, resume=resume, config=config, progress=progress)
    if dist.is_initialized() and dist.get_rank() != 0:
        dist.barrier()
        return output_dir / "rigid3d_model.pt"
    report(progress, 0.85, "training the feature ANN (Bayesian-regularised Levenberg-Marquardt)")
    scale = target_scale().double().numpy()
    train_idx, val_idx = (np.flatnonzero(samples["split"] == s) for s in ("train", "val"))
    eval_idx = val_idx if len(val_idx) else train_idx
    x_tr, out_tr = _predict_all(model, samples, train_idx, dev, batch_size)
    x_va, out_va = _predict_all(model, samples, eval_idx, dev, batch_size)
    y_tr = samples["targets"][train_idx].double().numpy() * scale
    y_va = samples["targets"][eval_idx].double().numpy() * scale
    ann_br = train_lm(x_tr, y_tr, bayesian=True, iterations=ann_iterations, seed=seed, x_val=x_va, y_val=y_va)
    ann_lm = train_lm(x_tr, y_tr, bayesian=False, iterations=ann_iterations, seed=seed, x_val=x_va, y_val=y_va)
    r2 = {"dcnn": r_squared(y_va, out_va * scale), "ann_bayesian_lm": r_squared(y_va, ann_br.predict(x_va)),
          "ann_lm": r_squared(y_va, ann_lm.predict(x_va))}
    meta = {"r2_validation": r2, "trained_seconds": round(time.time() - start, 1), "device": str(dev)}
    weights = save_model(output_dir / "rigid3d_model.pt", RigidModel(model.cpu(), ann_br, meta))
    write_model_card(weights, {
            "architecture": "dlreg.rigid3d.dcnn.RigidDCNN + 256-10-6 tanh ANN",
            "recipe": {**{k: v for k, v in config.items() if k != "pairs"}, "optimizer": "SGD momentum 0.9",
                       "lr_drop_epoch": max(1, (2 * epochs) // 3), "ann": "Bayesian-regularised LM",
                       "ann_iterations": ann_iterations},
            "training_pairs": config["pairs"], "n_samples": int(len(samples["split"])),
            "r2_validation": r2, "validation_is_training_set": not len(val_idx),
            "dcnn_history": history, "ann_hyperparameters": {"alpha": ann_br.alpha, "beta": ann_br.beta,
                                                             "gamma": ann_br.gamma},
            "device": str(dev), "trained_seconds": meta["trained_seconds"]})
    if dist.is_initialized():
        dist.barrier()
    report(progress, 1.0, f"done: validation R^2 {r2}")
    return weights
