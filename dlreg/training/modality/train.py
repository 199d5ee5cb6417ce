"""Train the modality classifier: leave-one-subject-out CV, calibration, final fit, model card.

Recipe (paper: same DCNN and training strategy as registration, cross-entropy loss):
Adam (the paper's SGD with momentum converged too slowly for a CPU budget of minutes),
learning rate `lr` dropped tenfold for the last third of the epochs, the open-set loss
(`losses.OpenSetLoss`: class-balanced cross-entropy plus outlier exposure on synthetic OOD
volumes), and a random flip of each of the canonical cube's axes per sample (the cube follows
the head's principal axes, whose signs the anatomy does not always fix; inference averages
over the eight flips).

A `NetworkSpec` says what the network answers and reads. The shipped one answers the MR
contrasts only, from both input channels: CT against MR is decided by the Hounsfield
signature (`dlreg.modality.physics`), so CT samples never train it. `PAPER_SPEC` is the
paper's configuration for comparison: all five classes including CT, the normalised
intensity alone, no outlier exposure, argmax.

LOSO: each subject (with its painted volumes) is held out once; the out-of-fold logits give
the reported metrics, the temperature and the rejection threshold. The evaluation variants
(`samples.EVAL_NATIVE`) are never trained on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from dlreg.device import resolve_device
from dlreg.imaging.outputs import atomic_write, check_output_paths
from dlreg.modality.calibration import softmax
from dlreg.modality.classes import CLASSES, CT, MR_FLAIR, MR_T1, MR_T1C, MR_T2, UNKNOWN
from dlreg.modality.classifier import ModalityNet, flip_averaged_logits, save_classifier
from dlreg.modality.preprocess import CHANNELS
from dlreg.progress import ProgressCallback, report
from dlreg.training.modality.calibration import DEFAULT_THRESHOLD, choose_threshold, fit_temperature
from dlreg.training.modality.evaluation import class_metrics, confusion_matrix
from dlreg.training.modality.losses import OpenSetLoss
from dlreg.training.modality.samples import EVAL_NATIVE, OOD, OOD_LABEL, ORIGINAL, SampleSet
from dlreg.weights import write_model_card


@dataclass(frozen=True)
class NetworkSpec:
    """What a network answers (`classes`), reads (`channels`), and whether physics decides CT."""

    classes: tuple[str, ...] = (MR_T1, MR_T1C, MR_T2, MR_FLAIR)
    channels: tuple[str, ...] = CHANNELS
    physics: bool = True
    outlier_exposure: bool = True

    def channel_index(self) -> list[int]:
        """Positions of `channels` among the canonical input's CHANNELS."""
        return [CHANNELS.index(c) for c in self.channels]


SHIPPED_SPEC = NetworkSpec()
PAPER_SPEC = NetworkSpec(classes=CLASSES, channels=(CHANNELS[0],), physics=False, outlier_exposure=False)
UNKNOWN_INDEX = len(CLASSES)


def network_targets(samples: SampleSet, spec: NetworkSpec) -> np.ndarray:
    """Target of each sample for the network: class index in spec.classes, OOD_LABEL, or -2 (unused)."""
    out = np.full(len(samples.y), -2)
    for i, name in enumerate(spec.classes):
        out[samples.y == CLASSES.index(name)] = i
    if spec.physics:                      # what the Hounsfield signature decides never reaches the network
        out[samples.physics_ct] = -2
    if spec.outlier_exposure:
        out[samples.kind == OOD] = OOD_LABEL
    out[samples.kind == EVAL_NATIVE] = -2
    return out


def fit_network(x: np.ndarray, targets: np.ndarray, spec: NetworkSpec, *, epochs: int = 12, batch: int = 8,
                lr: float = 1e-3, seed: int = 0, device: str = "auto", progress: ProgressCallback | None = None,
                span: tuple[float, float] = (0.0, 1.0), label: str = "training") -> ModalityNet:
    """Train a fresh network on canonical inputs `x` with `targets` (OOD rows: outlier exposure)."""
    torch.manual_seed(seed)
    dev = resolve_device(device)
    channels = spec.channel_index()
    net = ModalityNet(n_classes=len(spec.classes), grid_size=x.shape[-1], in_channels=len(channels)).to(dev)
    loss_of = OpenSetLoss(targets, dev, n_classes=len(spec.classes))
    optimiser = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    drop_at = max(1, (2 * epochs) // 3)
    rng = np.random.default_rng(seed)
    n = len(targets)
    for epoch in range(epochs):
        for group in optimiser.param_groups:
            group["lr"] = lr if epoch < drop_at else lr / 10
        net.train()
        order = rng.permutation(n)
        total = 0.0
        for start in range(0, n, batch):
            idx = np.sort(order[start:start + batch])
            cubes = _orient(x[idx][:, channels].astype(np.float32), rng)
            logits = net(torch.from_numpy(cubes).to(dev))
            loss = loss_of(logits, torch.from_numpy(targets[idx]).to(dev))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(idx)
        report(progress, span[0] + (span[1] - span[0]) * (epoch + 1) / epochs,
               f"{label}: epoch {epoch + 1}/{epochs}, loss {total / n:.4f}")
    return net.eval()


@torch.no_grad()
def predict_logits(net: ModalityNet, x: np.ndarray, spec: NetworkSpec, device: str = "auto",
                   batch: int = 16) -> np.ndarray:
    """Logits of canonical inputs (N, C, G, G, G) over spec.classes."""
    dev = resolve_device(device)
    net = net.to(dev).eval()
    channels = spec.channel_index()
    out = [flip_averaged_logits(net, torch.from_numpy(x[i:i + batch][:, channels].astype(np.float32)).to(dev))
           .cpu().numpy() for i in range(0, len(x), batch)]
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, len(spec.classes)))


def cross_validate(samples: SampleSet, spec: NetworkSpec = SHIPPED_SPEC, *, folds: int | None = None,
                   progress: ProgressCallback | None = None, span: tuple[float, float] = (0.0, 1.0),
                   **fit_args) -> dict:
    """Out-of-fold logits of every sample (OOD ones: in their fold), grouped by subject.

    `folds=None`: leave one subject out; an integer groups the subjects into that many folds
    (sorted subjects dealt round-robin), a cheaper estimate for screening."""
    targets = network_targets(samples, spec)
    subjects = sorted(set(samples.subject[samples.kind != OOD]))
    n_folds = len(subjects) if folds is None else min(folds, len(subjects))
    fold_of = {s: i % n_folds for i, s in enumerate(subjects)}
    ood = samples.kind == OOD
    sample_fold = np.array([fold_of.get(s, -1) for s in samples.subject])
    sample_fold[ood] = np.arange(int(ood.sum())) % n_folds
    logits = np.full((len(samples.y), len(spec.classes)), np.nan)
    width = (span[1] - span[0]) / n_folds
    device = fit_args.get("device", "auto")
    for f in range(n_folds):
        held = sample_fold == f
        train = ~held & (targets != -2)
        held_names = sorted(s for s, i in fold_of.items() if i == f)
        net = fit_network(samples.x[train], targets[train], spec, progress=progress,
                          span=(span[0] + f * width, span[0] + (f + 1) * width),
                          label=f"fold {f + 1}/{n_folds} (without {', '.join(held_names)})", **fit_args)
        logits[held] = predict_logits(net, samples.x[held], spec, device)
    return {"subjects": subjects, "folds": n_folds, "logits": logits}


def calibrate(samples: SampleSet, logits: np.ndarray, spec: NetworkSpec) -> tuple[float, float]:
    """Temperature (NLL of the held-out training-kind samples) and the rejection threshold."""
    targets = network_targets(samples, spec)
    known = targets >= 0
    temperature = fit_temperature(logits[known], targets[known])
    if not spec.outlier_exposure:
        return temperature, 0.0
    confidence = softmax(logits, temperature).max(1)
    return temperature, choose_threshold(confidence[known], confidence[samples.kind == OOD])


def decide(samples: SampleSet, logits: np.ndarray, spec: NetworkSpec, temperature: float,
           threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(predicted index into CLASSES or UNKNOWN_INDEX, confidence) per sample, as the pipeline decides."""
    probs = softmax(np.nan_to_num(logits), temperature)
    confidence = probs.max(1)
    mapped = np.array([CLASSES.index(c) for c in spec.classes])[probs.argmax(1)]
    predicted = np.where(confidence >= threshold, mapped, UNKNOWN_INDEX)
    if spec.physics:
        predicted = np.where(samples.physics_ct, CLASSES.index(CT), predicted)
        confidence = np.where(samples.physics_ct, 1.0, confidence)
        predicted = np.where(samples.gated & ~samples.physics_ct, UNKNOWN_INDEX, predicted)
    return predicted, confidence


def evaluation_report(samples: SampleSet, predicted: np.ndarray, confidence: np.ndarray) -> dict:
    """Paper metrics per set (real originals, real evaluation variants, ...), CT vs MR, OOD rejection."""
    known = samples.kind != OOD
    real = known & ~samples.synthetic
    sets = {"real_original_volumes": real & (samples.kind == ORIGINAL),
            "real_native_variants": real & (samples.kind == EVAL_NATIVE),
            "real_mr_original_volumes": real & (samples.kind == ORIGINAL) & (samples.y != 0),
            "real_mr_native_variants": real & (samples.kind == EVAL_NATIVE) & (samples.y != 0),
            "all_held_out_samples": known}
    out = {}
    for name, rows in sets.items():
        if rows.any():
            counts = confusion_matrix(samples.y[rows], predicted[rows], len(CLASSES))
            out[name] = {"n": int(rows.sum()), "confusion": counts.tolist(), **class_metrics(counts, list(CLASSES))}
    is_ct, said_ct = samples.y[known] == 0, predicted[known] == 0
    said_mr = (predicted[known] > 0) & (predicted[known] < UNKNOWN_INDEX)
    out["ct_vs_mr"] = {"n": int(known.sum()), "ct_called_mr": int(np.sum(is_ct & said_mr)),
                       "mr_called_ct": int(np.sum(~is_ct & said_ct)),
                       "ct_recognised": int(np.sum(is_ct & said_ct)), "n_ct": int(is_ct.sum())}
    ood = samples.kind == OOD
    out["ood"] = {"n": int(ood.sum()), "rejected": int(np.sum(predicted[ood] == UNKNOWN_INDEX)),
                  "max_confidence_accepted": float(confidence[ood & (predicted != UNKNOWN_INDEX)].max(initial=0.0))}
    labels = CLASSES + (UNKNOWN,)
    out["per_volume"] = [{"name": str(samples.name[i]), "true": CLASSES[samples.y[i]],
                          "predicted": labels[predicted[i]], "confidence": round(float(confidence[i]), 4)}
                         for i in np.flatnonzero(known & (samples.kind == ORIGINAL))]
    return out


def _save_cv(path: str | Path, **arrays) -> None:
    """The out-of-fold results as an .npz, written whole or not at all (its folder made if needed)."""
    def write(temporary: Path) -> None:
        with open(temporary, "wb") as stream:  # a stream: np.savez adds no ".npz" to the name
            np.savez(stream, **arrays)

    atomic_write(path, write)


def train_on_samples(samples: SampleSet, out: str | Path, *, spec: NetworkSpec = SHIPPED_SPEC,
                     epochs: int = 15, batch_size: int = 8, lr: float = 2e-3, seed: int = 0, device: str = "auto",
                     loso: bool = True, folds: int | None = None, exclude_subjects: Sequence[str] = (),
                     cv_out: str | Path | None = None, card: dict | None = None,
                     progress: ProgressCallback | None = None) -> dict:
    """CV on all subjects (calibration + metrics; `folds` as in cross_validate), the final fit
    without `exclude_subjects` (the test split), its accuracy on them, weights + card;
    `cv_out` keeps the out-of-fold logits and the samples' provenance (.npz)."""
    check_output_paths([out, cv_out])  # before hours of training, not after
    start = time.time()
    card = dict(card or {})
    fit_args = dict(epochs=epochs, batch=batch_size, lr=lr, seed=seed, device=device)
    temperature, threshold, metrics = 1.0, DEFAULT_THRESHOLD, None
    if loso:
        cv = cross_validate(samples, spec, folds=folds, progress=progress, span=(0.0, 0.9), **fit_args)
        temperature, threshold = calibrate(samples, cv["logits"], spec)
        if cv_out is not None:
            _save_cv(cv_out, logits=cv["logits"], temperature=temperature, threshold=threshold,
                     **{f: getattr(samples, f) for f in SampleSet.FIELDS if f != "x"})
        metrics = evaluation_report(samples, *decide(samples, cv["logits"], spec, temperature, threshold))
    held_out = np.isin(samples.subject, list(exclude_subjects))
    targets = network_targets(samples, spec)
    train = ~held_out & (targets != -2)
    net = fit_network(samples.x[train], targets[train], spec, progress=progress,
                      span=(0.9 if loso else 0.0, 1.0), label="final model", **fit_args)
    test = None
    if held_out.any():
        test_samples = samples.subset(held_out)
        logits = predict_logits(net, test_samples.x, spec, device)
        test = {"subjects": sorted(set(test_samples.subject)),
                **evaluation_report(test_samples, *decide(test_samples, logits, spec, temperature, threshold))}
    meta = {"network_classes": list(spec.classes), "channels": list(spec.channels),
            "temperature": temperature, "threshold": threshold}
    save_classifier(out, net, meta)
    recipe = {**card.pop("recipe", {}), "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
              "device": str(resolve_device(device))}
    used = samples.kind != OOD
    card["sample_predictions"] = sample_predictions(out)
    return write_model_card(out, {
        "architecture": net.describe(), "classes": list(CLASSES), **meta,
        "training_data": sorted(set(map(str, samples.name[used & ~held_out]))),
        "test_subjects_not_trained_on": sorted(set(map(str, samples.subject[held_out]))),
        "n_training_samples": int(train.sum()), "n_ood_samples": int(np.sum(targets[train] == OOD_LABEL)),
        "recipe": recipe, "loso_metrics": metrics, "test_split_metrics": test,
        "train_seconds": round(time.time() - start, 1),
        "license": "MIT (weights trained by this project)", **card,
        "limits": _loso_limit(metrics) + list(card.get("limits", [])),
    })


def sample_predictions(weights: str | Path) -> dict[str, dict]:
    """What the weights answer for each bundled sample volume (*_2mm.nrrd): {file: {"label", "confidence"}}.

    Stored in the model card (`sample_predictions`): the Slicer self-test reads its expectations
    from there and a test fails when the shipped model's answers drift from it."""
    from dlreg.imaging.io import read_image
    from dlreg.modality.pipeline import classify_image
    from dlreg.sampledata import sample_path

    out = {}
    for path in sorted(sample_path("mni_t1_2mm.nrrd").parent.glob("*_2mm.nrrd")):
        result = classify_image(read_image(path), weights=str(weights), device="cpu")
        out[path.name] = {"label": result.label, "confidence": round(result.confidence, 4)}
    return out


def _loso_limit(metrics: dict | None) -> list[str]:
    """The measured leave-one-subject-out accuracy as a model-card limit line."""
    if metrics is None:
        return ["Not cross-validated (trained with --no-loso): accuracy on new subjects is unmeasured."]
    real = metrics["real_mr_original_volumes"]
    return [f"Leave-one-subject-out accuracy {real['overall_accuracy']:.0%} on the {real['n']} real MR volumes "
            "(unknown counted as wrong): check MR contrast labels, above all T1 against T1C, by eye."]


def _orient(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each sample's cube with each axis flipped at random (x: N, C, G, G, G)."""
    out = np.empty_like(x)
    for i in range(len(x)):
        axes = tuple(a for a in range(1, 4) if rng.random() < 0.5)
        out[i] = np.flip(x[i], axis=axes) if axes else x[i]
    return out
