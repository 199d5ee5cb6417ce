"""Train the modality classifier: samples, leave-one-subject-out CV, calibration, final fit.

Recipe (paper: same DCNN and training strategy as registration, cross-entropy loss):
Adam (the paper's SGD with momentum converged too slowly for a CPU budget of minutes),
learning rate `lr` dropped tenfold for the last third of the epochs, the open-set loss
(`losses.OpenSetLoss`: class-balanced cross-entropy plus outlier exposure on synthetic OOD
volumes), random flips of the cube.
LOSO: each subject (with its pseudo-CT) is held out once; the out-of-fold logits give
the reported metrics, the temperature and the rejection threshold; the shipped model is
then trained on every subject.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from dlreg.device import resolve_device
from dlreg.modality.calibration import softmax
from dlreg.modality.classes import CLASSES
from dlreg.modality.classifier import ModalityNet, save_classifier
from dlreg.progress import ProgressCallback, report
from dlreg.training.modality.calibration import DEFAULT_THRESHOLD, choose_threshold, fit_temperature
from dlreg.training.modality.data import Volume
from dlreg.training.modality.evaluation import class_metrics, confusion_matrix
from dlreg.training.modality.losses import OpenSetLoss
from dlreg.training.modality.samples import OOD_LABEL, SampleSet, make_samples
from dlreg.weights import write_model_card


def fit_network(samples: SampleSet, *, epochs: int = 12, batch: int = 8, lr: float = 1e-3,
                seed: int = 0, device: str = "auto", progress: ProgressCallback | None = None,
                span: tuple[float, float] = (0.0, 1.0), label: str = "training") -> ModalityNet:
    """Train a fresh network on `samples` (OOD rows get the outlier-exposure loss)."""
    torch.manual_seed(seed)
    dev = resolve_device(device)
    net = ModalityNet(grid_size=samples.x.shape[-1], in_channels=samples.x.shape[1]).to(dev)
    loss_of = OpenSetLoss(samples.y, dev)
    optimiser = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    drop_at = max(1, (2 * epochs) // 3)
    rng = np.random.default_rng(seed)
    n = len(samples.y)
    for epoch in range(epochs):
        for group in optimiser.param_groups:
            group["lr"] = lr if epoch < drop_at else lr / 10
        net.train()
        order = rng.permutation(n)
        total = 0.0
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            x = torch.from_numpy(_flip(samples.x[idx].astype(np.float32), rng)).to(dev)
            y = torch.from_numpy(samples.y[idx]).to(dev)
            logits = net(x)
            loss = loss_of(logits, y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(idx)
        report(progress, span[0] + (span[1] - span[0]) * (epoch + 1) / epochs,
               f"{label}: epoch {epoch + 1}/{epochs}, loss {total / n:.4f}")
    return net.eval()


@torch.no_grad()
def predict_logits(net: ModalityNet, x: np.ndarray, device: str = "auto", batch: int = 16) -> np.ndarray:
    """Logits of canonical inputs (N, C, G, G, G)."""
    dev = resolve_device(device)
    net = net.to(dev).eval()
    out = [net(torch.from_numpy(x[i:i + batch].astype(np.float32)).to(dev)).cpu().numpy()
           for i in range(0, len(x), batch)]
    return np.concatenate(out).astype(np.float64)


def cross_validate(samples: SampleSet, *, progress: ProgressCallback | None = None,
                   span: tuple[float, float] = (0.0, 1.0), **fit_args) -> dict:
    """Leave-one-subject-out: out-of-fold logits of every known sample, OOD logits per fold."""
    subjects = sorted(set(samples.subject[samples.y != OOD_LABEL]))
    oof = np.zeros((len(samples.y), len(CLASSES)))
    ood_logits = []
    ood = samples.y == OOD_LABEL
    ood_fold = np.arange(len(samples.y)) % len(subjects)
    width = (span[1] - span[0]) / len(subjects)
    for f, subject in enumerate(subjects):
        held = samples.subject == subject
        held_ood = ood & (ood_fold == f)
        net = fit_network(samples.subset(~held & ~held_ood), progress=progress,
                          span=(span[0] + f * width, span[0] + (f + 1) * width),
                          label=f"LOSO fold {f + 1}/{len(subjects)} (without {subject})", **fit_args)
        oof[held] = predict_logits(net, samples.x[held], fit_args.get("device", "auto"))
        ood_logits.append(predict_logits(net, samples.x[held_ood], fit_args.get("device", "auto")))
    return {"subjects": subjects, "logits": oof, "ood_logits": np.concatenate(ood_logits)}


def loso_report(samples: SampleSet, cv: dict, temperature: float, threshold: float) -> dict:
    """Metrics of the out-of-fold predictions: all held-out samples, originals, real volumes."""
    known = samples.y != OOD_LABEL
    probs = softmax(cv["logits"], temperature)
    predicted = np.where(probs.max(1) >= threshold, probs.argmax(1), len(CLASSES))
    out = {}
    for name, rows in (("all_held_out_samples", known),
                       ("original_volumes", known & samples.original),
                       ("real_original_volumes", known & samples.original & ~samples.synthetic)):
        counts = confusion_matrix(samples.y[rows], predicted[rows], len(CLASSES))
        out[name] = {"n": int(rows.sum()), "confusion": counts.tolist(),
                     **class_metrics(counts, list(CLASSES))}
    fam_true = samples.y[known] == 0
    fam_pred = predicted[known] == 0
    out["ct_vs_mr_accuracy"] = float(np.mean(fam_true == fam_pred))
    ood_conf = softmax(cv["ood_logits"], temperature).max(1)
    out["ood_rejected_fraction"] = float(np.mean(ood_conf < threshold)) if len(ood_conf) else None
    out["per_volume"] = [{"name": str(samples.name[i]), "true": CLASSES[samples.y[i]],
                          "predicted": (CLASSES + ("unknown",))[predicted[i]],
                          "confidence": float(probs[i].max())}
                         for i in np.flatnonzero(known & samples.original)]
    return out


def train_modality(volumes: Sequence[Volume], out: str | Path, *, per_volume: int = 12, n_ood: int = 60,
                   epochs: int = 12, batch_size: int = 8, lr: float = 1e-3, seed: int = 0, device: str = "auto",
                   loso: bool = True, card: dict | None = None,
                   progress: ProgressCallback | None = None) -> dict:
    """Build samples of `volumes`, run LOSO CV (calibration + metrics), train on all, save
    weights + card (`card`: extra fields such as data licences and known limits)."""
    samples = make_samples(volumes, per_volume=per_volume, n_ood=n_ood, seed=seed,
                           progress=lambda f, m: report(progress, 0.2 * f, m))
    recipe = {"per_volume": per_volume, "n_ood": n_ood}
    return train_on_samples(samples, out, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
                            loso=loso, card={**(card or {}), "recipe": recipe}, progress=progress)


def train_on_samples(samples: SampleSet, out: str | Path, *, epochs: int = 12, batch_size: int = 8,
                     lr: float = 1e-3, seed: int = 0, device: str = "auto", loso: bool = True,
                     card: dict | None = None, progress: ProgressCallback | None = None) -> dict:
    """LOSO CV (calibration + metrics) on prepared samples, the final fit on all, weights + card."""
    start = time.time()
    out = Path(out)
    card = dict(card or {})
    fit_args = dict(epochs=epochs, batch=batch_size, lr=lr, seed=seed, device=device)
    temperature, threshold, metrics = 1.0, None, None
    if loso:
        cv = cross_validate(samples, progress=progress, span=(0.2, 0.85), **fit_args)
        known = samples.y != OOD_LABEL
        temperature = fit_temperature(cv["logits"][known], samples.y[known])
        threshold = choose_threshold(softmax(cv["logits"][known], temperature).max(1),
                                     softmax(cv["ood_logits"], temperature).max(1))
        metrics = loso_report(samples, cv, temperature, threshold)
    net = fit_network(samples, progress=progress, span=(0.85 if loso else 0.2, 1.0),
                      label="final model", **fit_args)
    meta = {"classes": list(CLASSES), "temperature": temperature,
            "threshold": threshold if threshold is not None else DEFAULT_THRESHOLD}
    save_classifier(out, net, meta)
    recipe = {**card.pop("recipe", {}), "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
              "device": str(resolve_device(device))}
    return write_model_card(out, {
        "architecture": net.describe(), "classes": list(CLASSES), **meta,
        "training_data": sorted(set(map(str, samples.name[samples.y != OOD_LABEL]))),
        "n_samples": int(len(samples.y)), "n_ood_samples": int(np.sum(samples.y == OOD_LABEL)),
        "recipe": recipe, "loso_metrics": metrics, "train_seconds": round(time.time() - start, 1),
        "license": "MIT (weights trained by this project)", **card,
        "limits": _loso_limit(metrics) + list(card.get("limits", [])),
    })


def _loso_limit(metrics: dict | None) -> list[str]:
    """The measured leave-one-subject-out accuracy as a model-card limit line."""
    if metrics is None:
        return ["Not cross-validated (trained with --no-loso): accuracy on new subjects is unmeasured."]
    real = metrics["real_original_volumes"]
    return [f"Leave-one-subject-out accuracy {real['overall_accuracy']:.0%} on the {real['n']} real volumes "
            f"({metrics['ct_vs_mr_accuracy']:.0%} CT vs MR): check MR contrast labels, above all "
            "T1/T1C/FLAIR, by eye."]


def _flip(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random flips of each sample's three spatial axes (x: N, C, G, G, G)."""
    for i in range(len(x)):
        axes = tuple(a for a in range(1, 4) if rng.random() < 0.5)
        if axes:
            x[i] = np.flip(x[i], axis=axes)
    return np.ascontiguousarray(x)
