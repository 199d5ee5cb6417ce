"""Train the modality classifier: samples, leave-one-subject-out CV, calibration, final fit.

Recipe (paper: same DCNN and training strategy as registration, cross-entropy loss):
Adam (the paper's SGD with momentum converged too slowly for a CPU budget of minutes),
learning rate `lr` dropped tenfold for the last third of the epochs, class-balanced
cross-entropy on the known classes plus outlier exposure (cross-entropy to the uniform
distribution, weight OE_WEIGHT) on synthetic OOD volumes, averaged per sample (an OOD
volume weighs as much as a known one), random flips of the cube.
LOSO: each subject (with its pseudo-CT) is held out once; the out-of-fold logits give
the reported metrics, the temperature and the rejection threshold; the shipped model is
then trained on every subject.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dlreg.device import resolve_device
from dlreg.modality.calibration import choose_threshold, fit_temperature, softmax
from dlreg.modality.classes import CLASSES
from dlreg.modality.classifier import ModalityNet, save_classifier
from dlreg.modality.data import load_volumes
from dlreg.modality.evaluation import class_metrics, confusion_matrix
from dlreg.modality.samples import OOD_LABEL, SampleSet, make_samples
from dlreg.progress import ProgressCallback, report
from dlreg.weights import write_model_card

OE_WEIGHT = 0.5
CARD_NOTES = {
    "license": "MIT (weights trained by this project)",
    "data_licences": {
        "brats_gli_00001_000, aurora": "BraTS / AURORA example cases from BrainLesion/tutorials "
                                       "(research use, cite BraTS)",
        "tcga_du_7294": "TCIA TCGA, CC BY 3.0", "stroke": "neurolabusc/VolumeRenderingData, MIT",
        "mni": "MNI ICBM152 2009a (bundled sample, MNI licence)",
        "colin27": "Debian mricron-data (Colin27 template)",
        "cranium_ct": "Debian invesalius-examples Cranium.inv3, GPL-2: read at run time, not shipped",
    },
    "limits": [
        "Trained on 4 patients (3 with T1C), 2 T1 templates and 1 real head CT plus pseudo-CTs "
        "and pseudo-T2/FLAIR brains painted from the T1s: expect errors on scanners, pathologies "
        "and ages not seen.",
        "Brain MR only, mostly skull-stripped; T1 with skull is represented by Colin27 alone.",
        "Out-of-distribution rejection is calibrated on synthetic OOD volumes (noise, blobs, "
        "stacked textures, blurred PET-like brains), never on real PET, knee or abdomen scans.",
        "CT is recognised partly from Hounsfield air (< -500 HU); a CT stored with a shifted "
        "or masked-to-zero background may be read as MR.",
    ],
}


def fit_network(samples: SampleSet, *, epochs: int = 12, batch: int = 8, lr: float = 1e-3,
                seed: int = 0, device: str = "auto", progress: ProgressCallback | None = None,
                span: tuple[float, float] = (0.0, 1.0), label: str = "training") -> ModalityNet:
    """Train a fresh network on `samples` (OOD rows get the outlier-exposure loss)."""
    torch.manual_seed(seed)
    dev = resolve_device(device)
    net = ModalityNet(grid_size=samples.x.shape[-1], in_channels=samples.x.shape[1]).to(dev)
    weight = torch.tensor(class_weights(samples.y), dtype=torch.float32, device=dev)
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
            loss = outlier_exposure_loss(logits, y, weight)
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


def train_modality(out: str | Path, *, data_root: str | Path = "../shared/data", per_volume: int = 12,
                   n_ood: int = 60, epochs: int = 12, batch: int = 8, lr: float = 1e-3, seed: int = 0,
                   device: str = "auto", loso: bool = True, samples: SampleSet | None = None,
                   progress: ProgressCallback | None = None) -> dict:
    """Build samples, run LOSO CV (calibration + metrics), train on all, save weights + card."""
    start = time.time()
    out = Path(out)
    if samples is None:
        volumes = load_volumes(data_root, log=lambda m: report(progress, 0.0, m))
        samples = make_samples(volumes, per_volume=per_volume, n_ood=n_ood, seed=seed,
                               progress=lambda f, m: report(progress, 0.2 * f, m))
    fit_args = dict(epochs=epochs, batch=batch, lr=lr, seed=seed, device=device)
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
            "threshold": threshold if threshold is not None else 0.6}
    save_classifier(out, net, meta)
    return write_model_card(out, {
        "architecture": net.describe(), "classes": list(CLASSES), **meta,
        "training_data": sorted(set(map(str, samples.name[samples.y != OOD_LABEL]))),
        "n_samples": int(len(samples.y)), "n_ood_samples": int(np.sum(samples.y == OOD_LABEL)),
        "recipe": {"per_volume": per_volume, "n_ood": n_ood, **fit_args,
                   "device": str(resolve_device(device))},
        "loso_metrics": metrics, "train_seconds": round(time.time() - start, 1), **CARD_NOTES,
        "limits": _loso_limit(metrics) + CARD_NOTES["limits"],
        "reproduce": (f"python -m dlreg train-modality --out {out.name} --per-volume {per_volume} "
                      f"--ood {n_ood} --epochs {epochs} --batch {batch} --lr {lr} --seed {seed}"),
    })


def _loso_limit(metrics: dict | None) -> list[str]:
    """The measured leave-one-subject-out accuracy as a model-card limit line."""
    if metrics is None:
        return ["Not cross-validated (trained with --no-loso): accuracy on new subjects is unmeasured."]
    real = metrics["real_original_volumes"]
    return [f"Leave-one-subject-out accuracy {real['overall_accuracy']:.0%} on the {real['n']} real volumes "
            f"({metrics['ct_vs_mr_accuracy']:.0%} CT vs MR): check MR contrast labels, above all "
            "T1/T1C/FLAIR, by eye."]


def class_weights(labels: np.ndarray) -> np.ndarray:
    """Balanced weights of the known classes (total / count / n_classes; 0 for an absent class)."""
    counts = np.bincount(labels[labels != OOD_LABEL], minlength=len(CLASSES)).astype(float)
    return np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(CLASSES), 0.0)


def outlier_exposure_loss(logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of per-sample losses: class-weighted cross-entropy for known
    samples, OE_WEIGHT x cross-entropy to the uniform distribution for OOD ones."""
    known = y != OOD_LABEL
    log_p = F.log_softmax(logits, dim=1)
    per_sample = torch.where(known, -weight[y.clamp(min=0)] * log_p.gather(1, y.clamp(min=0)[:, None])[:, 0],
                             -OE_WEIGHT * log_p.mean(dim=1))
    return per_sample.mean()


def _flip(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random flips of each sample's three spatial axes (x: N, C, G, G, G)."""
    for i in range(len(x)):
        axes = tuple(a for a in range(1, 4) if rng.random() < 0.5)
        if axes:
            x[i] = np.flip(x[i], axis=axes)
    return np.ascontiguousarray(x)
