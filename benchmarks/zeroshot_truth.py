"""How well are each subject's contrasts co-registered? The MI-floor check behind the 2D benchmark's subjects.

The benchmarks take the contrasts of one subject as co-registered (true transform = identity).
For every subject and every contrast pair the 2D benchmark uses (T2->T1, FLAIR->T1, T1c->T2,
and T1c->T1), the moving contrast is registered rigidly in 3D to the fixed one, started AT the
identity, with two independent metrics: Mattes MI of the intensities and Mattes MI of the
gradient magnitudes (SimpleITK, 2 and 1 mm levels, one thread, fixed sampling seed). Where
both move the brain away from the identity, the nominal truth is off by about that much.
Reported per pair: the mean displacement over the fixed brain mask (3D, and in the axial plane,
which is what a 2D axial-slice benchmark sees), in mm. A subject whose median over the two
metrics exceeds --limit (1 mm) on any pair is excluded from nominal-truth success rates.

    python benchmarks/zeroshot_truth.py [--data DIR] [--limit 1.0]

Writes benchmarks/results/zeroshot_truth.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from zeroshot_cases import DEFAULT_DATA, PAIRS_USED, subject_files  # noqa: E402

METRICS = ("intensity_mi", "gradient_mi")


def _features(image: sitk.Image, metric: str) -> sitk.Image:
    if metric == "gradient_mi":
        return sitk.GradientMagnitudeRecursiveGaussian(image, 1.0)
    return image


def rigid_from_identity(fixed: sitk.Image, moving: sitk.Image, metric: str) -> sitk.Transform:
    """Rigid MI registration of moving to fixed started at the identity (about the brain centre)."""
    f, m = _features(fixed, metric), _features(moving, metric)
    mask = sitk.Cast(fixed > 0, sitk.sitkUInt8)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask)
    transform = sitk.Euler3DTransform()
    transform.SetCenter(stats.GetCentroid(1))
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.1, seed=1)
    reg.SetMetricFixedMask(mask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-4, numberOfIterations=200,
                                                 relaxationFactor=0.6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([2, 1])
    reg.SetSmoothingSigmasPerLevel([1, 0])
    reg.SetInitialTransform(transform, inPlace=False)
    return reg.Execute(f, m)


def displacement(fixed: sitk.Image, transform: sitk.Transform) -> tuple[float, float]:
    """Mean |T(p) - p| over the fixed brain (every 4th voxel), in 3D and in the axial plane (mm)."""
    arr = sitk.GetArrayViewFromImage(fixed)
    zs, ys, xs = np.nonzero(arr[::4, ::4, ::4] > 0)
    idx = np.stack([xs * 4, ys * 4, zs * 4], axis=1)
    pts = np.array([fixed.TransformIndexToPhysicalPoint([int(i) for i in p]) for p in idx])
    moved = np.array([transform.TransformPoint(p.tolist()) for p in pts])
    d = moved - pts
    return float(np.linalg.norm(d, axis=1).mean()), float(np.linalg.norm(d[:, :2], axis=1).mean())


def check_subject(files: dict[str, Path]) -> dict:
    """{pair: {metric: (3D mm, in-plane mm)}} for the contrast pairs present."""
    images = {c: sitk.DICOMOrient(sitk.ReadImage(str(p), sitk.sitkFloat32), "LPS") for c, p in files.items()}
    out = {}
    for mv, fx in PAIRS_USED:
        if mv in images and fx in images:
            out[f"{mv}->{fx}"] = {m: displacement(images[fx], rigid_from_identity(images[fx], images[mv], m))
                                  for m in METRICS}
    return out


def excluded_subjects(results: dict, limit: float) -> dict[str, float]:
    """{subject: mm} where both metrics move some contrast pair more than limit mm (3D)."""
    worst = {s: max(min(v[0] for v in bm.values()) for bm in pairs.values()) for s, pairs in results.items()}
    return {s: w for s, w in worst.items() if w > limit}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--limit", type=float, default=1.0, help="mm: a subject further off on any pair is excluded")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args(argv)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    results = {}
    print("| subject | pair | intensity MI 3D / in-plane mm | gradient MI 3D / in-plane mm | both agree, 3D mm |")
    print("|---|---|---|---|---|")
    for subject, files in subject_files(args.data).items():
        results[subject] = check_subject(files)
        for pair, by_metric in results[subject].items():
            med = min(v[0] for v in by_metric.values())
            cells = " | ".join(f"{by_metric[m][0]:.2f} / {by_metric[m][1]:.2f}" for m in METRICS)
            print(f"| {subject} | {pair} | {cells} | {med:.2f} |", flush=True)
    print(f"excluded: {excluded_subjects(results, args.limit)}")
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"limit_mm": args.limit, "results": results, "excluded": excluded_subjects(results, args.limit)}
    (args.out / "zeroshot_truth.json").write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
