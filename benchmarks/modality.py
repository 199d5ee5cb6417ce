"""Acceptance benchmark of dlreg.modality.

1. Leave-one-subject-out CV over every subject (paper metrics: accuracy, sensitivity,
   specificity, precision, F-measure, G-mean, confusion matrix) on the real volumes and on
   native-like variants of the held-out volumes, as recorded in the model card by
   `Utilities/train_modality.py` (and the paper configuration's card, `--paper-card`).
2. The test split (`devdata.TEST_SUBJECTS`, never trained on by the shipped model): its real
   volumes and native-like variants, re-classified here through `classify_image`.
3. Header invariance: every real volume with an oblique, a flipped and a permuted direction
   header (same voxels) must get the identical answer.
4. CT against MR: the real head CT and every pseudo-CT, native-like CT variants, the CT stored
   raw (+1024), and every real MR volume.
5. Out-of-distribution inputs: noise, constant, stacked pictures, boolean masks and label maps,
   phantoms, a limb, PET-, DWI- and PD-like brains painted from the test subjects' T1s, CTs
   without Hounsfield units.
6. Time per 240x240x155 volume (classify_image, one thread and default threads), target 0.3 s.

    python benchmarks/modality.py [--data DATA_DIR] [--paper-card CARD.json]

Writes benchmarks/results/modality.json and modality.md and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devdata import DEFAULT_DATA, TEST_SUBJECTS, load_volumes  # noqa: E402

from dlreg.errors import DLRegError  # noqa: E402
from dlreg.imaging.geometry import rotation_matrix  # noqa: E402
from dlreg.imaging.io import read_image  # noqa: E402
from dlreg.modality.classes import CLASSES, CT, MR_T1  # noqa: E402
from dlreg.modality.classifier import BUNDLED  # noqa: E402
from dlreg.modality.pipeline import classify_image  # noqa: E402
from dlreg.rigid3d.preprocess import shrink_to_working  # noqa: E402
from dlreg.sampledata import sample_path  # noqa: E402
from dlreg.training.modality.augment import ood_volume  # noqa: E402
from dlreg.training.modality.native import ct_native_like, ct_without_hu, native_like  # noqa: E402
from dlreg.training.modality.samples import SOURCE_SPACING  # noqa: E402
from dlreg.weights import model_card  # noqa: E402

KEYS = ("accuracy", "sensitivity", "specificity", "precision", "f_measure", "g_mean")
N_TEST_VARIANTS = 3
TEST_SEED = 2024


def test_split(volumes) -> dict:
    """Real volumes of the test subjects and N_TEST_VARIANTS native-like variants of each."""
    rows = []
    for v in volumes:
        if v.synthetic or v.subject not in TEST_SUBJECTS:
            continue
        images = [("real", v.image)]
        source = shrink_to_working(v.image, SOURCE_SPACING)     # as the training variants
        for k in range(N_TEST_VARIANTS):
            rng = np.random.default_rng([TEST_SEED, k, len(rows)])
            variant = (ct_native_like(source, rng) if v.label == CT
                       else native_like(source, v.label, rng, stripped=v.brain_mask is None))
            images.append((f"native {k + 1}", variant))
        for kind, image in images:
            r = classify_image(image)
            rows.append({"volume": v.name, "kind": kind, "true": v.label, "predicted": r.label,
                         "confidence": round(r.confidence, 3), "right": r.label == v.label})
    out = {"rows": rows}
    for kind in ("real", "native"):
        sel = [r for r in rows if r["kind"].startswith(kind)]
        out[kind] = {"n": len(sel), "right": sum(r["right"] for r in sel)}
    return out


def header_invariance(volumes) -> dict:
    """Same voxels, other direction headers: the answer must not change at all."""
    headers = {"oblique": rotation_matrix(0.5, -0.3, 0.7),
               "flipped": np.diag([-1.0, 1.0, -1.0]),
               "permuted": np.array([[0, 1.0, 0], [0, 0, 1.0], [1.0, 0, 0]])}
    rows = []
    for v in volumes:
        if v.synthetic:
            continue
        base = classify_image(v.image)
        changed = []
        for name, direction in headers.items():
            image = sitk.Image(v.image)
            image.SetDirection(direction.ravel().tolist())
            image.SetOrigin((17.0, -40.0, 3.5))
            r = classify_image(image)
            if r.label != base.label or r.probabilities != base.probabilities:
                changed.append(f"{name}: {r.label}")
        rows.append({"volume": v.name, "label": base.label, "changed": changed})
    return {"n": len(rows), "identical": sum(not r["changed"] for r in rows),
            "changed": [r for r in rows if r["changed"]]}


def ct_vs_mr(volumes) -> dict:
    """Family of every CT (real, pseudo, native-like, raw +1024) and every real MR volume."""
    rows = []

    def check(name, image, is_ct):
        r = classify_image(image)
        ok = (r.label == CT) if is_ct else (r.label != CT)
        rows.append({"input": name, "ct": is_ct, "label": r.label, "ok": ok,
                     "physics": r.evidence.get("physics", {}).get("signature")})

    for v in volumes:
        if v.label == CT:
            check(v.name, v.image, True)
            check(f"{v.name} raw +1024", sitk.Cast(v.image, sitk.sitkFloat32) + 1024.0, True)
            if not v.synthetic:
                for k in range(5):
                    variant = ct_native_like(v.image, np.random.default_rng([TEST_SEED, k]))
                    check(f"{v.name} native-like {k + 1}", variant, True)
        elif not v.synthetic:
            check(v.name, v.image, False)
    wrong = [r for r in rows if not r["ok"]]
    # A stripped pseudo-CT stored raw has no bone to confirm the offset: "unknown" is allowed there.
    hard_wrong = [r for r in wrong if not (r["ct"] and r["label"] == "unknown" and "+1024" in r["input"])]
    return {"n": len(rows), "n_ct": sum(r["ct"] for r in rows),
            "ct_called_ct": sum(r["ok"] and r["ct"] for r in rows),
            "mr_called_ct": sum((not r["ok"]) and not r["ct"] for r in rows),
            "ct_called_mr": sum(r["ct"] and r["label"] not in (CT, "unknown") for r in rows),
            "raw_offset_unknown": [r["input"] for r in wrong if r not in hard_wrong], "wrong": hard_wrong}


def _phantom(noise: float, rng) -> np.ndarray:
    """A Shepp-Logan-like 3D phantom: nested ellipsoids of constant value, optional noise."""
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, 96)] * 3, indexing="ij")
    a = np.zeros(z.shape, np.float32)
    ellipsoids = ((0, 0, 0, 0.9, 0.69, 0.92, 1.0), (0, -0.02, 0, 0.85, 0.66, 0.87, -0.8),
                  (0.2, 0.1, 0.22, 0.3, 0.2, 0.1, -0.2), (0.2, 0.1, -0.22, 0.3, 0.25, 0.15, -0.2),
                  (0.3, 0.35, 0, 0.25, 0.2, 0.2, 0.1), (-0.1, 0.1, 0, 0.05, 0.05, 0.05, 0.1))
    for (cz, cy, cx, rz, ry, rx, value) in ellipsoids:
        a += value * ((((z - cz) / rz) ** 2 + ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2) < 1)
    return (100 * a + (rng.normal(0, noise * 100, a.shape) if noise else 0)).astype(np.float32)


def ood_inputs(volumes) -> list[dict]:
    """Every OOD case: the answer must be unknown (or a clear error), never a confident class."""
    rng = np.random.default_rng(7)
    arrays = {
        "white noise": rng.normal(size=(96, 96, 96)),
        "smoothed noise (sigma 2 vox)": sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(
            sitk.GetImageFromArray(rng.normal(size=(96, 96, 96)).astype(np.float32)), 2.0)),
        "constant volume": np.full((64, 64, 64), 7.0),
        "phantom (ellipsoids)": _phantom(0.0, rng),
        "phantom + 2% noise": _phantom(0.02, rng),
    }
    plane = sitk.GetArrayFromImage(read_image(sample_path("stroke_t1_axial.png")))[0]
    arrays["stacked picture"] = np.repeat(plane[None], 60, axis=0)
    arrays["stacked picture + slice noise"] = (arrays["stacked picture"]
                                               + rng.normal(0, 0.05 * plane.std(), (60,) + plane.shape))
    images = {name: sitk.GetImageFromArray(np.asarray(a, np.float32)) for name, a in arrays.items()}
    tests = [v for v in volumes if v.subject in TEST_SUBJECTS and not v.synthetic]
    t1s = [v for v in tests if v.label == MR_T1]
    for v in t1s[:2]:
        images[f"boolean brain mask of {v.name}"] = sitk.Cast(v.image > 0, sitk.sitkUInt8)
        labels = sitk.Cast(v.image > 0, sitk.sitkUInt8) + sitk.Cast(v.image > 300, sitk.sitkUInt8)
        images[f"label map of {v.name}"] = labels
    for kind in ("PET-like", "DWI-like", "PD-like"):
        for k, v in enumerate(t1s[:3]):
            images[f"{kind} brain painted from {v.name}"] = ood_volume(np.random.default_rng([TEST_SEED, k]),
                                                                       template=v.image, kind=kind)
    images["limb phantom"] = ood_volume(np.random.default_rng(TEST_SEED), kind="limb")
    images["blobs"] = ood_volume(np.random.default_rng(TEST_SEED + 1), kind="blobs")
    for v in volumes:
        if v.label == CT and not v.synthetic:
            for k in range(4):
                images[f"{v.name} without HU {k + 1}"] = ct_without_hu(v.image, np.random.default_rng([TEST_SEED, k]))
    out = []
    for name, image in images.items():
        try:
            r = classify_image(image)
            out.append({"input": name, "label": r.label, "confidence": round(r.confidence, 3),
                         "reason": r.reason, "ok": r.label == "unknown"})
        except DLRegError as exc:
            out.append({"input": name, "label": "error", "reason": str(exc), "ok": True})
    return out


def timing(volumes, repeats: int = 3) -> dict:
    """Seconds per 240x240x155 volume with one torch/ITK thread and with the defaults."""
    images = [v.image for v in volumes if v.image.GetSize() == (240, 240, 155) and not v.synthetic][:12]
    out = {"n": len(images) * repeats, "target_s": 0.3, "load_average": os.getloadavg()}
    for threads in (1, None):
        if threads:
            torch.set_num_threads(1)
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
        else:
            torch.set_num_threads(os.cpu_count() or 1)
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(os.cpu_count() or 1)
        classify_image(images[0])
        times = [classify_image(image).elapsed_s for image in images for _ in range(repeats)]
        out["one_thread" if threads else "default_threads"] = {"median_s": statistics.median(times),
                                                               "max_s": max(times)}
    return out


def _metrics_rows(title: str, m: dict) -> list[str]:
    lines = [f"{title}: n={m['n']}, accuracy {m['overall_accuracy']:.3f}, macro F {m['macro']['f_measure']:.3f}, "
             f"G-mean {m['macro']['g_mean']:.3f}", "", _row(("class", "n") + KEYS), _row(["---"] * 8)]
    for c, cm in m["per_class"].items():
        lines.append(_row([c, cm["support"]] + [f"{cm[k]:.3f}" for k in KEYS]))
    lines += ["", f"Confusion (rows: true {', '.join(CLASSES)}; columns: predicted, last = unknown):", ""]
    return lines + ["    " + str(row) for row in m["confusion"]] + [""]


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def markdown(report: dict) -> str:
    lines = ["# Modality classification benchmark", ""]
    for label, loso in (("shipped", report["loso"]), ("paper configuration", report.get("paper_loso"))):
        if not loso:
            continue
        lines += [f"## Cross-validation, {label} ({loso.get('folds', 'one fold per subject')})", ""]
        for key in ("real_mr_original_volumes", "real_mr_native_variants", "real_original_volumes",
                    "all_held_out_samples"):
            if key in loso:
                lines += _metrics_rows(key, loso[key])
        lines += [f"CT vs MR: {loso['ct_vs_mr']}; OOD: {loso.get('ood')}", ""]
        wrong = [r for r in loso["per_volume"] if r["true"] != r["predicted"]]
        lines += [f"Wrong real/pseudo originals ({len(wrong)}): "
                  + "; ".join(f"{r['name']} {r['true']} -> {r['predicted']} ({r['confidence']:.2f})"
                              for r in wrong), ""]
    t = report["test_split"]
    lines += ["## Test split (never trained on)", "",
              f"real volumes {t['real']['right']}/{t['real']['n']}, native-like variants "
              f"{t['native']['right']}/{t['native']['n']}", ""]
    lines += [f"- {r['volume']} ({r['kind']}): {r['true']} -> {r['predicted']} ({r['confidence']})"
              for r in t["rows"] if not r["right"]]
    h = report["header_invariance"]
    lines += ["", f"## Header invariance: {h['identical']}/{h['n']} identical under 3 direction headers", ""]
    lines += [f"- {r['volume']}: {r['label']} -> {r['changed']}" for r in h["changed"]]
    c = report["ct_vs_mr"]
    lines += ["", f"## CT vs MR: {c['n']} inputs ({c['n_ct']} CT), CT recognised {c['ct_called_ct']}, "
              f"MR called CT {c['mr_called_ct']}, CT called an MR contrast {c['ct_called_mr']}; "
              f"raw +1024 without bone answered unknown: {len(c['raw_offset_unknown'])}", ""]
    lines += [f"- WRONG: {r}" for r in c["wrong"]]
    lines += ["", "## OOD inputs", "", _row(("input", "answer", "confidence", "reason")), _row(["---"] * 4)]
    lines += [_row((r["input"], r["label"], r.get("confidence", ""), r["reason"][:90])) for r in report["ood"]]
    t = report["timing"]
    lines += ["", f"## Time per 240x240x155 volume (n={t['n']}, load average {t['load_average']})", "",
              f"one thread: median {t['one_thread']['median_s']:.3f} s, max {t['one_thread']['max_s']:.3f} s; "
              f"default threads: median {t['default_threads']['median_s']:.3f} s (target 0.3 s)"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--paper-card", default=None, help="model card of the paper configuration's run")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args()
    if not Path(args.data).is_dir():
        print(f"note: {args.data} is absent; only bundled and installed volumes are used", file=sys.stderr)
    volumes = load_volumes(args.data, log=lambda m: print("note:", m, file=sys.stderr))
    start = time.time()
    card = model_card(BUNDLED)
    report = {"loso": card["loso_metrics"],
              "paper_loso": json.loads(Path(args.paper_card).read_text())["loso_metrics"] if args.paper_card else None,
              "test_split": test_split(volumes), "header_invariance": header_invariance(volumes),
              "ct_vs_mr": ct_vs_mr(volumes), "ood": ood_inputs(volumes), "timing": timing(volumes)}
    report["seconds"] = round(time.time() - start, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "modality.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "modality.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
