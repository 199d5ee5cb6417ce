"""Experiment (issue 5): does a designed contrast signature classify MR contrasts better than the DCNN?

An MR contrast is defined by which tissue is bright (T1: WM > GM > CSF; T2: CSF > GM > WM;
FLAIR: GM >= WM, dark CSF; T1C: T1 plus thin bright vessels and enhancing rims). The
signature measures that ordering from voxel *ranks* within the foreground (unchanged by any
increasing intensity map) and distances in mm, on a bin-averaged copy:

- median rank in shells of increasing depth below the foreground surface;
- alignment of the rank gradient with the depth gradient, per rank band (brighter inwards?);
- median rank of the other voxels by distance from the darkest / brightest 12% (what lies next
  to fluid);
- depth, thinness and local contrast of the brightest 0.5%, 2% and 20% (vessels, enhancement);
- histogram tail shape; Hounsfield air and bone fraction (CT).

A multinomial logistic regression (L2, with `dlreg.training.modality.losses`' open-set
loss on synthetic OOD volumes) is cross-validated leave-one-subject-out on the same
volumes and augmentations as the DCNN (`make_samples`' seeds: sample k of volume v is
`augment(image, default_rng([seed, v, k]))`), then averaged with the DCNN's out-of-fold
log-probabilities (equal weights, fixed in advance). Each model's temperature, and the
ensemble's, is fitted on the out-of-fold logits; rejection uses `choose_threshold`.

    python benchmarks/modality_signature.py [--data ../shared/data] [--spacing 1.5]
        [--per-volume 8] [--ood 60] [--dcnn-cv CV.npz]

`--dcnn-cv`: the DCNN's `cross_validate` output (arrays logits, ood_logits, y, subject, name,
original, synthetic) of the shipped recipe; if the file does not exist it is computed (about
25 minutes on 2 cores: 724 samples, 7 folds) and saved there. Writes
benchmarks/results/modality_signature.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devdata import DEFAULT_DATA, load_volumes  # noqa: E402

from dlreg.errors import InputImageError  # noqa: E402
from dlreg.imaging.intensity import normalize_ct, normalize_mr  # noqa: E402
from dlreg.imaging.io import read_image  # noqa: E402
from dlreg.modality.calibration import softmax  # noqa: E402
from dlreg.modality.classes import CLASSES, CT  # noqa: E402
from dlreg.modality.gates import sanity_reason  # noqa: E402
from dlreg.modality.preprocess import canonical_input, foreground_rank  # noqa: E402
from dlreg.rigid3d.preprocess import detect_modality, shrink_to_working  # noqa: E402
from dlreg.sampledata import sample_path  # noqa: E402
from dlreg.training.modality.augment import augment, ood_volume  # noqa: E402
from dlreg.training.modality.calibration import choose_threshold, fit_temperature  # noqa: E402
from dlreg.training.modality.losses import OOD_LABEL, OpenSetLoss  # noqa: E402

DEPTH_SHELLS = (0.0, 3.0, 6.0, 9.0, 12.0, 16.0, 22.0, 30.0, np.inf)
RANK_BANDS = (0.0, 0.15, 0.4, 0.6, 0.85, 1.0001)
SEED_DISTANCES = (0.0, 2.0, 4.0, 6.0, 9.0, 15.0, np.inf)
SEED_FRACTION = 0.12
TOP_FRACTIONS = (0.005, 0.02, 0.2)
L2 = 0.01


# ---------------------------------------------------------------- the signature
def signature(image: sitk.Image, spacing: float) -> np.ndarray:
    """Contrast signature of one volume (see the module docstring)."""
    work = shrink_to_working(image, spacing)
    raw = sitk.GetArrayFromImage(work)
    hu = detect_modality(raw) == "CT"
    normalised = normalize_ct(raw) if hu else normalize_mr(raw)
    foreground = _solid(normalised > 0.05, work)
    values = raw[foreground]
    rank = foreground_rank(raw, foreground)
    depth = np.clip(_distance(foreground, work, inside=True), 0, None)
    spacing_kji = work.GetSpacing()[::-1]
    # depth shells
    features = _binned(rank, depth, foreground, DEPTH_SHELLS)
    # rank gradient . depth gradient per rank band
    smooth = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(_like(rank, work), 0.7 * spacing))
    g_rank, g_depth = np.gradient(smooth, *spacing_kji), np.gradient(depth, *spacing_kji)
    dot = sum(a * b for a, b in zip(g_rank, g_depth))
    magnitude = np.sqrt(sum(a * a for a in g_rank)) + 1e-9
    inner = foreground & (depth >= 3.0)
    for lo, hi in zip(RANK_BANDS[:-1], RANK_BANDS[1:]):
        band = inner & (rank >= lo) & (rank < hi)
        features.append(float(dot[band].sum() / magnitude[band].sum()) if band.any() else 0.0)
    # what lies next to the darkest / brightest voxels
    inner = foreground & (depth >= 4.0)
    for seed, rest in ((rank < SEED_FRACTION, rank >= SEED_FRACTION),
                       (rank > 1 - SEED_FRACTION, rank <= 1 - SEED_FRACTION)):
        seed = seed & foreground & (depth >= 2.0)
        distance = np.clip(_distance(seed, work, inside=False), 0, None) if seed.any() else np.full(rank.shape, np.inf)
        features += _binned(rank, distance, inner & rest & (distance > 0), SEED_DISTANCES)
    # the brightest voxels: depth, thinness, local contrast
    deepest = max(float(np.percentile(depth[foreground], 99)), 1e-6)
    local_mean = sitk.GetArrayFromImage(sitk.BoxMean(_like(raw.astype(np.float32), work), [2, 2, 2]))
    for fraction in TOP_FRACTIONS:
        top = rank > 1 - fraction
        if not top.any():
            features += [0.0, 1.0, 1.0]
            continue
        features += [float(depth[top].mean() / deepest), float(1 - _interior(top).sum() / top.sum()),
                     float(np.median(raw[top] / np.maximum(np.abs(local_mean[top]), 1e-6)))]
    q1, q5, q50, q95, q99, q999 = np.percentile(values, [1, 5, 50, 95, 99, 99.9])
    scale = max(q99 - q1, 1e-12)
    features += [(q999 - q99) / scale, (q99 - q95) / scale, (q50 - q1) / scale,
                 float(hu), float(np.mean(values > 300.0)) if hu else 0.0]
    return np.asarray(features, np.float64)


def _like(array, reference):
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image


def _solid(mask, reference):
    largest = sitk.RelabelComponent(sitk.ConnectedComponent(_like(mask.astype(np.uint8), reference)), True) == 1
    return sitk.GetArrayFromImage(sitk.BinaryFillhole(largest)).astype(bool)


def _distance(mask, reference, inside):
    return sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(
        _like(mask.astype(np.uint8), reference), insideIsPositive=inside, squaredDistance=False,
        useImageSpacing=True))


def _binned(rank, coordinate, where, edges, min_count=20):
    r, c = rank[where], coordinate[where]
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (c >= lo) & (c < hi)
        out.append(float(np.median(r[inside])) if inside.sum() >= min_count else 0.5)
    return out


def _interior(mask):
    inside = np.zeros(mask.shape, bool)
    inside[1:-1, 1:-1, 1:-1] = mask[1:-1, 1:-1, 1:-1]
    for axis in range(3):
        for step in (1, -1):
            inside &= np.roll(mask, step, axis=axis)
    return inside


# ---------------------------------------------------------------- samples (make_samples' seeds)
_VOLUMES: list = []
_TEMPLATE = None


def _known_job(args):
    v_index, k, seed, spacing = args
    volume = _VOLUMES[v_index]
    image = volume.image if k == 0 else augment(volume.image, np.random.default_rng([seed, v_index, k]),
                                                volume.label == CT)
    return signature(image, spacing)


def _ood_job(args):
    k, seed, spacing = args
    image = ood_volume(np.random.default_rng([seed, 10_000, k]), template=_TEMPLATE)
    try:
        if sanity_reason(canonical_input(image, "ood").working) is not None:
            return None
    except InputImageError:
        return None
    return signature(image, spacing)


def build(data: str, per_volume: int, n_ood: int, seed: int, spacing: float, workers: int) -> dict:
    """Signatures of every volume's original + `per_volume` augmentations, and of OOD volumes."""
    global _VOLUMES, _TEMPLATE
    _VOLUMES = load_volumes(data)
    _TEMPLATE = read_image(sample_path("mni_gm_2mm.nrrd"))
    jobs = [(v, k, seed, spacing) for v, vol in enumerate(_VOLUMES)
            for k in range(per_volume * (3 if vol.label == CT and not vol.synthetic else 1) + 1)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        known = pool.map(_known_job, jobs, chunksize=2)
        ood, k = [], 0
        while len(ood) < n_ood:
            batch = pool.map(_ood_job, [(k + j, seed, spacing) for j in range(2 * workers)])
            ood += [f for f in batch if f is not None]
            k += 2 * workers
    vols = [_VOLUMES[v] for v, *_ in jobs]
    return {"x": np.stack(known), "y": np.array([CLASSES.index(v.label) for v in vols]),
            "subject": np.array([v.subject for v in vols]), "name": np.array([v.name for v in vols]),
            "k": np.array([k for _, k, *_ in jobs]), "synthetic": np.array([v.synthetic for v in vols]),
            "ood": np.stack(ood[:n_ood])}


# ---------------------------------------------------------------- model
def fit(x: np.ndarray, y: np.ndarray, ood: np.ndarray):
    """Multinomial logistic regression; returns a function features -> logits."""
    mean, scale = x.mean(0), x.std(0) + 1e-6
    z = torch.tensor((np.vstack([x, ood]) - mean) / scale)
    labels = torch.tensor(np.r_[y, np.full(len(ood), OOD_LABEL)])
    open_set_loss = OpenSetLoss(y, dtype=torch.float64)
    w = torch.zeros(x.shape[1], len(CLASSES), dtype=torch.float64, requires_grad=True)
    b = torch.zeros(len(CLASSES), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = open_set_loss(z @ w + b, labels) + L2 * (w ** 2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    w, b = w.detach().numpy(), b.detach().numpy()
    return lambda f: ((f - mean) / scale) @ w + b


def loso(s: dict) -> dict:
    """Out-of-fold logits of the known samples and of the OOD volumes (fold = index % subjects)."""
    subjects = sorted(set(s["subject"]))
    logits = np.zeros((len(s["y"]), len(CLASSES)))
    ood_logits = np.zeros((len(s["ood"]), len(CLASSES)))
    ood_fold = np.arange(len(s["ood"])) % len(subjects)
    for f, subject in enumerate(subjects):
        held = s["subject"] == subject
        model = fit(s["x"][~held], s["y"][~held], s["ood"][ood_fold != f])
        logits[held] = model(s["x"][held])
        ood_logits[ood_fold == f] = model(s["ood"][ood_fold == f])
    return {"logits": logits, "ood_logits": ood_logits}


def dcnn_cv(path: Path, data: str) -> dict:
    """The DCNN's LOSO output of the shipped recipe (computed and saved if `path` is missing)."""
    if not path.is_file():
        from dlreg.training.modality.samples import make_samples
        from dlreg.training.modality.train import cross_validate
        samples = make_samples(load_volumes(data), per_volume=16, n_ood=80, seed=0)
        cv = cross_validate(samples, epochs=20, batch=8, lr=0.002, seed=0, device="cpu")
        known = samples.y != OOD_LABEL
        np.savez(path, logits=cv["logits"][known], ood_logits=cv["ood_logits"], y=samples.y[known],
                 subject=samples.subject[known], name=samples.name[known],
                 original=samples.original[known], synthetic=samples.synthetic[known])
    data = np.load(path, allow_pickle=False)
    names = data["name"]
    k = np.zeros(len(names), int)       # sample index within its volume, as in make_samples
    for i in range(1, len(names)):
        k[i] = k[i - 1] + 1 if names[i] == names[i - 1] else 0
    return {"by_key": {(n, j): z for n, j, z in zip(names, k, data["logits"])},
            "ood_logits": data["ood_logits"]}


# ---------------------------------------------------------------- report
def evaluate(label: str, logits: np.ndarray, ood_logits: np.ndarray, s: dict) -> dict:
    temperature = fit_temperature(logits, s["y"])
    probs, ood_probs = softmax(logits, temperature), softmax(ood_logits, temperature)
    threshold = choose_threshold(probs.max(1), ood_probs.max(1))
    argmax = probs.argmax(1)
    accepted = probs.max(1) >= threshold
    real = ~s["synthetic"]
    originals = real & (s["k"] == 0)
    right = argmax == s["y"]
    return {
        "method": label, "temperature": round(temperature, 3), "threshold": round(threshold, 3),
        "real_volumes": int(originals.sum()),
        "real_right_with_rejection": int(np.sum(right & accepted & originals)),
        "real_right_argmax": int(np.sum(right & originals)),
        "real_augmented_accuracy_argmax": round(float(right[real].mean()), 3),
        "all_held_out_accuracy_argmax": round(float(right.mean()), 3),
        "ood_rejected": round(float(np.mean(ood_probs.max(1) < threshold)), 3),
        "wrong_real_volumes": [f"{n} -> {CLASSES[a] if ok else 'unknown'} ({p:.2f})"
                               for n, a, ok, p, t in zip(s["name"][originals], argmax[originals],
                                                         accepted[originals], probs[originals].max(1),
                                                         s["y"][originals])
                               if not (ok and a == t)],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--spacing", type=float, default=1.5)
    parser.add_argument("--per-volume", type=int, default=8)
    parser.add_argument("--ood", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dcnn-cv", type=Path, default=REPO / "benchmarks" / "results" / "modality_dcnn_cv.npz")
    args = parser.parse_args(argv)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    torch.set_num_threads(1)
    start = time.time()
    s = build(args.data, args.per_volume, args.ood, args.seed, args.spacing, args.workers)
    built = time.time() - start
    sig = loso(s)
    dcnn = dcnn_cv(args.dcnn_cv, args.data)
    common = np.array([(n, k) in dcnn["by_key"] for n, k in zip(s["name"], s["k"])])
    n_ood = min(len(s["ood"]), len(dcnn["ood_logits"]))   # both keep the gate-passing OOD volumes in seed order
    s = {**s, **{key: s[key][common] for key in ("x", "y", "subject", "name", "k", "synthetic")}}
    sig_logits, sig_ood = sig["logits"][common], sig["ood_logits"][:n_ood]
    dcnn_logits = np.stack([dcnn["by_key"][(n, k)] for n, k in zip(s["name"], s["k"])])
    dcnn_ood = dcnn["ood_logits"][:n_ood]

    def log_probs(z, z_ood):
        t = fit_temperature(z, s["y"])
        return np.log(softmax(z, t)), np.log(softmax(z_ood, t))

    (ls, ls_ood), (ld, ld_ood) = log_probs(sig_logits, sig_ood), log_probs(dcnn_logits, dcnn_ood)
    rows = [evaluate("DCNN (shipped recipe)", dcnn_logits, dcnn_ood, s),
            evaluate("contrast signature", sig_logits, sig_ood, s),
            evaluate("average of both (log-probabilities)", (ls + ld) / 2, (ls_ood + ld_ood) / 2, s)]
    out = {"args": {k: str(v) for k, v in vars(args).items()}, "n_samples": int(len(s["y"])),
           "n_ood": n_ood, "signature_seconds": round(built, 1), "rows": rows}
    results = REPO / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "modality_signature.json").write_text(json.dumps(out, indent=1))
    lines = ["| method | real volumes right (with rejection) | argmax | real augmented (argmax) | "
             "all held-out (argmax) | OOD rejected |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['real_right_with_rejection']}/{r['real_volumes']} | "
                     f"{r['real_right_argmax']}/{r['real_volumes']} | {r['real_augmented_accuracy_argmax']:.3f} | "
                     f"{r['all_held_out_accuracy_argmax']:.3f} | {r['ood_rejected']:.2f} |")
    lines += ["", f"{len(s['y'])} held-out samples, {n_ood} OOD volumes, signatures at {args.spacing:g} mm "
              f"({built:.0f} s to build)."] + [f"- {r['method']}: {'; '.join(r['wrong_real_volumes'])}" for r in rows]
    (results / "modality_signature.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
