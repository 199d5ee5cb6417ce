"""Train the paper's affine MLP on synthetic point sets only (paper 2.5, "Training Strategy").

X ~ U[0, 1] (64 points), M ~ U[-1, 1] (2x3), Y = M (X, 1); the network learns M from (X, Y).
`python -m dlreg train-affine-mlp --steps 20000 --output affine_mlp_paper.pt` (device auto).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from dlreg.device import resolve_device
from dlreg.progress import ProgressCallback, report
from dlreg.weights import save_torch, write_model_card
from dlreg.zeroshot.mlp import N_POINTS, AffineMLP


def synthetic_batch(batch: int, generator: torch.Generator, device: torch.device,
                    n_points: int = N_POINTS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(X, Y, M flattened) with X ~ U[0,1], M ~ U[-1,1], Y = M (X, 1)."""
    x = torch.rand(batch, n_points, 2, generator=generator)
    m = torch.rand(batch, 2, 3, generator=generator) * 2.0 - 1.0
    y = x @ m[:, :, :2].transpose(1, 2) + m[:, None, :, 2]
    return x.to(device), y.to(device), m.flatten(1).to(device)


def train_affine_mlp(*, steps: int = 20000, batch_size: int = 512, lr: float = 1e-3, seed: int = 0,
                     device: str = "auto", hidden: tuple[int, ...] = (256, 256, 256),
                     progress: ProgressCallback | None = None) -> tuple[AffineMLP, dict]:
    """Train with Adam and cosine decay on fresh synthetic batches; returns (model, metrics)."""
    dev = resolve_device(device)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = AffineMLP(hidden=hidden).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    t0 = time.time()
    for step in range(steps):
        x, y, m = synthetic_batch(batch_size, gen, dev)
        loss = torch.nn.functional.mse_loss(model(x, y), m)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 500 == 0:
            report(progress, step / steps, f"step {step}/{steps} loss {loss.item():.5f}")
    model = model.cpu().eval()
    x, y, m = synthetic_batch(4096, torch.Generator().manual_seed(seed + 1), torch.device("cpu"))
    with torch.no_grad():
        err = (model(x, y) - m).abs()
    metrics = {"test_mae_per_parameter": float(err.mean()), "test_rmse": float(err.pow(2).mean().sqrt()),
               "train_seconds": round(time.time() - t0, 1), "device": str(dev)}
    report(progress, 1.0, f"done: test MAE per parameter {metrics['test_mae_per_parameter']:.4f}")
    return model, metrics


def save_model(model: AffineMLP, metrics: dict, out: Path, recipe: dict) -> dict:
    """Write the state dict and its JSON model card next to it; return the card."""
    state = dict(model.state_dict())
    state["hidden"] = torch.tensor(model.hidden)
    out = Path(out)
    save_torch(state, out)
    return write_model_card(out, {
            "architecture": f"MLP {4 * model.n_points} -> {' -> '.join(map(str, model.hidden))} -> 6, "
                            "ReLU hidden, linear output",
            "input": "64 fixed then 64 moving keypoints (x, y), normalised to [0, 1] by the longer image side",
            "output": "M = (a11, a12, tx, a21, a22, ty) with moving = M (fixed, 1), normalised coordinates",
            "training_data": "synthetic only: X ~ U[0, 1], M ~ U[-1, 1], Y = M X (paper section 2.5); no images",
            "recipe": recipe, "metrics": metrics, "license": "MIT (trained by this project)",
            "reproduce": "python -m dlreg train-affine-mlp --output dlreg/models/affine_mlp_paper.pt "
                         + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in recipe.items() if k != "hidden")})
