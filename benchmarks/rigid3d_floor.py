"""How well are each subject's contrasts co-registered? Three metrics from the nominal alignment.

For every subject of `benchmarks/rigid3d.py` and each contrast against its T1, the UNMOVED
pair is registered from the identity (the nominal truth) with SimpleITK (Euler3D about the
fixed head centre, regular-step gradient descent, levels at 2 and 1 mm, one thread) under
three metrics: Mattes MI of the intensities, correlation of the gradient magnitudes and
Mattes MI of the gradient magnitudes. Each result's distance from the identity (mean over
the corners of the fixed head's box, as the benchmark's TRE) is how far that metric says
the nominal alignment is off. Three different metrics agreeing on a shift say that the
data, not a metric, is off. A subject is excluded from the nominal-truth rows when the
median of the three metrics exceeds `--limit` (1 mm) on any of its contrasts.

    .venv/bin/python benchmarks/rigid3d_floor.py --data DATA_DIR --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from devdata import DEFAULT_DATA
from rigid3d import CT_SUBJECT, SUBJECTS, available, corner_distance, read_volume

from dlreg.imaging.geometry import rigid_to_matrix
from dlreg.rigid3d.preprocess import image_box_corners, prepare

METRICS = ("mattes_intensity", "correlation_gradient", "mattes_gradient")


def _register(fixed: sitk.Image, moving: sitk.Image, center: np.ndarray, metric: str,
              mask: sitk.Image) -> np.ndarray:
    transform = sitk.Euler3DTransform()
    transform.SetCenter([float(c) for c in center])
    reg = sitk.ImageRegistrationMethod()
    if metric == "correlation_gradient":
        reg.SetMetricAsCorrelation()
    else:
        reg.SetMetricAsMattesMutualInformation(64)
    reg.SetMetricSamplingStrategy(reg.REGULAR)
    reg.SetMetricSamplingPercentage(0.25, 1)
    reg.SetMetricFixedMask(mask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(1.0, 1e-3, 200, relaxationFactor=0.7)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([2, 1])
    reg.SetSmoothingSigmasPerLevel([1.0, 0.0])
    reg.SetInitialTransform(transform, inPlace=True)
    reg.Execute(fixed, moving)
    return rigid_to_matrix(np.asarray(transform.GetParameters()), center)


def offsets(fixed: sitk.Image, moving: sitk.Image) -> dict[str, float]:
    """Distance (mm, head-box corners) of each metric's optimum from the nominal identity."""
    prepared = prepare(fixed)
    center, corners = prepared.centroid, image_box_corners(prepared.image, prepared.mask)
    mask = sitk.Resample(sitk.BinaryDilate(prepared.mask, [3, 3, 3]), fixed, sitk.Transform(),
                         sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    f, m = sitk.Cast(fixed, sitk.sitkFloat32), sitk.Cast(moving, sitk.sitkFloat32)
    images = {"mattes_intensity": (f, m)}
    gradient = [sitk.GradientMagnitudeRecursiveGaussian(img, 1.0) for img in (f, m)]
    images["correlation_gradient"] = images["mattes_gradient"] = tuple(gradient)
    return {metric: corner_distance(_register(*images[metric], center, metric, mask), np.eye(4), corners)
            for metric in METRICS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--limit", type=float, default=1.0, help="mm: exclude a subject beyond this")
    parser.add_argument("--subjects", nargs="*", default=None)
    args = parser.parse_args()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for subject, (fixed_name, movers) in SUBJECTS.items():
        if subject == CT_SUBJECT or not available(data, subject) or (args.subjects and subject not in args.subjects):
            continue
        fixed = read_volume(data, subject, fixed_name)
        for contrast, name in movers.items():
            result = offsets(fixed, read_volume(data, subject, name))
            result["median"] = float(np.median([result[m] for m in METRICS]))
            rows.setdefault(subject, {})[contrast] = result
            print(subject, contrast, " ".join(f"{k} {v:.2f}" for k, v in result.items()), flush=True)
        write(rows, out, args.limit)


def write(rows: dict, out: Path, limit: float) -> None:
    """rigid3d_floor.json / .md: per subject and contrast, each metric's offset (mm) and the verdict."""
    excluded = sorted(s for s, contrasts in rows.items() if max(c["median"] for c in contrasts.values()) > limit)
    meta = {"command": " ".join(sys.argv), "limit_mm": limit, "load_average": list(os.getloadavg())}
    (out / "rigid3d_floor.json").write_text(json.dumps({"meta": meta, "offsets": rows, "excluded": excluded},
                                                       indent=2))
    lines = ["| subject | contrast | " + " | ".join(METRICS) + " | median | verdict |", "|---" * 7 + "|"]
    for subject, contrasts in rows.items():
        for contrast, r in contrasts.items():
            verdict = "excluded" if subject in excluded else "kept"
            lines.append(f"| {subject} | {contrast} | " + " | ".join(f"{r[m]:.2f}" for m in METRICS)
                         + f" | {r['median']:.2f} | {verdict} |")
    (out / "rigid3d_floor.md").write_text("\n".join(lines) + f"\n\nExcluded (median offset > {limit} mm on a "
                                          f"contrast): {', '.join(excluded) or 'none'}. Command: `{meta['command']}`"
                                          f"; load average {meta['load_average']}.\n")


if __name__ == "__main__":
    main()
