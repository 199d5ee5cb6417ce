"""Acceptance benchmark of dlreg.modality (issue 5).

1. Leave-one-subject-out CV (paper metrics: accuracy, sensitivity, specificity, precision,
   F-measure, G-mean, confusion matrix). With --loso the whole CV is re-run here with the
   training recipe of the shipped model's card (slow: ~one training per subject); without
   it the out-of-fold metrics recorded in the card by `train-modality` are reported.
2. Resampling robustness: every available real volume at its native grid, 2 mm isotropic
   and with 5 mm slices (1 mm in plane) must keep its class. These volumes are training
   subjects of the shipped model, so this measures robustness, not generalisation.
3. Out-of-distribution inputs: white noise, smoothed noise, a constant volume, a 2D picture
   stacked into a volume (the bundled PNG and --picture), the picture with slice noise.
4. Time per volume (classify_image on the 240x240x155 1 mm volumes), target 0.3 s.

    python benchmarks/modality.py [--data ../shared/data] [--picture PHOTO.jpg] [--loso]

Writes benchmarks/results/modality.json and modality.md and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devdata import DEFAULT_DATA, load_volumes  # noqa: E402

from dlreg.errors import DLRegError  # noqa: E402
from dlreg.imaging.io import read_image  # noqa: E402
from dlreg.modality.classes import CLASSES  # noqa: E402
from dlreg.modality.classifier import BUNDLED  # noqa: E402
from dlreg.modality.pipeline import classify_image  # noqa: E402
from dlreg.sampledata import sample_path  # noqa: E402
from dlreg.weights import model_card  # noqa: E402


def resampled(image: sitk.Image, spacing) -> sitk.Image:
    """Anti-aliased resampling of `image` to `spacing` over the same extent."""
    native = np.asarray(image.GetSpacing())
    spacing = np.asarray(spacing, float)
    sigma = np.maximum(np.sqrt(np.maximum(spacing ** 2 - native ** 2, 0)) / 2.355, 0.3 * native)
    size = np.maximum(np.round(np.asarray(image.GetSize()) * native / spacing).astype(int), 1)
    smooth = sitk.SmoothingRecursiveGaussian(image, sigma.tolist())
    return sitk.Resample(smooth, size.tolist(), sitk.Transform(), sitk.sitkLinear, image.GetOrigin(),
                         spacing.tolist(), image.GetDirection(), 0.0, sitk.sitkFloat32)


def robustness(volumes) -> dict:
    rows = []
    for v in volumes:
        if v.synthetic:
            continue
        labels = {}
        for grid, spacing in (("native", None), ("2mm", (2.0, 2.0, 2.0)), ("5mm_slices", (1.0, 1.0, 5.0))):
            image = v.image if spacing is None else resampled(v.image, spacing)
            labels[grid] = classify_image(image).label
        rows.append({"volume": v.name, "true": v.label, **labels,
                     "consistent": len(set(labels.values())) == 1,
                     "all_correct": all(lab == v.label for lab in labels.values())})
    return {"rows": rows, "consistent": sum(r["consistent"] for r in rows),
            "all_correct": sum(r["all_correct"] for r in rows), "n": len(rows)}


def ood_inputs(picture: str | None) -> list[dict]:
    rng = np.random.default_rng(7)
    cases = {
        "white noise": lambda: rng.normal(size=(96, 96, 96)),
        "smoothed noise (sigma 2 vox)": lambda: sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(
            sitk.GetImageFromArray(rng.normal(size=(96, 96, 96)).astype(np.float32)), 2.0)),
        "constant volume": lambda: np.full((64, 64, 64), 7.0),
    }
    pictures = [str(sample_path("stroke_t1_axial.png"))] + ([picture] if picture else [])
    for path in pictures:
        plane = sitk.GetArrayFromImage(read_image(path))[0]
        cases[f"stacked picture {Path(path).name}"] = lambda p=plane: np.repeat(p[None], 60, axis=0)
        cases[f"stacked picture {Path(path).name} + slice noise"] = (
            lambda p=plane: np.repeat(p[None], 60, axis=0) + rng.normal(0, 0.05 * p.std(), (60,) + p.shape))
    out = []
    for name, make in cases.items():
        image = sitk.GetImageFromArray(np.asarray(make(), np.float32))
        try:
            r = classify_image(image)
            out.append({"input": name, "label": r.label, "confidence": round(r.confidence, 3),
                        "reason": r.reason, "ok": r.label == "unknown"})
        except DLRegError as exc:
            out.append({"input": name, "label": "error", "reason": str(exc), "ok": True})
    return out


def timing(volumes, repeats: int = 3) -> dict:
    classify_image(volumes[0].image)   # load the model once
    times = []
    for v in volumes:
        if v.image.GetSize() == (240, 240, 155) and not v.synthetic:
            times += [classify_image(v.image).elapsed_s for _ in range(repeats)]
    return {"median_s": statistics.median(times), "max_s": max(times), "n": len(times), "target_s": 0.3}


def loso_metrics(args, volumes) -> dict:
    card = model_card(BUNDLED)
    if not args.loso:
        return {"source": "model card (out-of-fold predictions of train-modality)", **card["loso_metrics"]}
    from dlreg.training.modality.samples import make_samples
    from dlreg.training.modality.train import cross_validate, loso_report

    recipe = card["recipe"]
    samples = make_samples(volumes, per_volume=recipe["per_volume"], n_ood=recipe["n_ood"],
                           seed=recipe["seed"])
    batch = recipe.get("batch_size", recipe.get("batch"))
    cv = cross_validate(samples, epochs=recipe["epochs"], batch=batch, lr=recipe["lr"], seed=recipe["seed"],
                        device="auto")
    return {"source": "re-run here", **loso_report(samples, cv, card["temperature"], card["threshold"])}


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def markdown(report: dict) -> str:
    loso = report["loso"]
    lines = ["# Modality classification benchmark", "", f"LOSO ({loso['source']}):", ""]
    for key in ("real_original_volumes", "original_volumes", "all_held_out_samples"):
        m = loso[key]
        lines.append(f"- {key}: n={m['n']}, accuracy {m['overall_accuracy']:.3f}, "
                     f"macro F {m['macro']['f_measure']:.3f}, G-mean {m['macro']['g_mean']:.3f}")
    lines.append(f"- CT vs MR accuracy {loso['ct_vs_mr_accuracy']:.3f}; "
                 f"OOD rejected {loso['ood_rejected_fraction']}")
    keys = ("accuracy", "sensitivity", "specificity", "precision", "f_measure", "g_mean")
    lines += ["", "Per class (all held-out samples):", "", _row(("class", "n") + keys), _row(["---"] * 8)]
    for c, m in loso["all_held_out_samples"]["per_class"].items():
        lines.append(_row([c, m["support"]] + [f"{m[k]:.3f}" for k in keys]))
    lines += ["", f"Confusion (rows: true {', '.join(CLASSES)}; columns: predicted, last = unknown):", ""]
    lines += ["    " + str(row) for row in loso["all_held_out_samples"]["confusion"]]
    rob = report["robustness"]
    lines += ["", f"Resampling robustness: {rob['consistent']}/{rob['n']} consistent, "
              f"{rob['all_correct']}/{rob['n']} correct at native, 2 mm and 5 mm slices", "",
              _row(("volume", "true", "native", "2mm", "5mm slices")), _row(["---"] * 5)]
    lines += [_row((r["volume"], r["true"], r["native"], r["2mm"], r["5mm_slices"])) for r in rob["rows"]]
    lines += ["", "OOD inputs:", "", _row(("input", "answer", "confidence")), _row(["---"] * 3)]
    lines += [_row((r["input"], r["label"], r.get("confidence", ""))) for r in report["ood"]]
    t = report["timing"]
    lines += ["", f"Time per 240x240x155 volume: median {t['median_s']:.3f} s, max {t['max_s']:.3f} s "
              f"(target 0.3 s, n={t['n']})"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--picture", default=None, help="a 2D photograph for the stacked-picture OOD case")
    parser.add_argument("--loso", action="store_true", help="re-run leave-one-subject-out CV (slow)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args()
    if not Path(args.data).is_dir():
        print(f"note: {args.data} is absent; only bundled and installed volumes are used", file=sys.stderr)
    volumes = load_volumes(args.data, log=lambda m: print("note:", m, file=sys.stderr))
    start = time.time()
    report = {"loso": loso_metrics(args, volumes), "robustness": robustness(volumes),
              "ood": ood_inputs(args.picture), "timing": timing(volumes)}
    report["seconds"] = round(time.time() - start, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "modality.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "modality.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
