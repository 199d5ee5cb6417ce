"""What determinism costs: dlreg's MI refinement against the ITK refinement it replaced.

The ITK refinement (SimpleITK Mattes MI + regular-step gradient descent: coarse 8/4/2 mm on
the working grids with a dilated head mask, fine ~1 mm on the cropped inputs; kept here as
`itk_refine`, the code of the previous version) is not reproducible with more than one
thread: ITK sums the metric over threads in a varying order. dlreg's refinement
(`refine.refine_rigid`: numpy Mattes MI with an exact gradient, BFGS) sums in a fixed order.
Per case (test subjects, paper range) every refinement starts from the network's prediction
and runs twice; the table gives TRE, wall and CPU seconds and whether the two runs gave the
same bytes, for ITK with 1 and 2 threads and for dlreg (which uses one thread).

    .venv/bin/python benchmarks/rigid3d_refinement.py --data DATA_DIR --cases 12
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from devdata import DEFAULT_DATA
from rigid3d import cases, corner_distance, moved_scan

from dlreg.imaging.geometry import matrix_to_rigid, rigid_to_matrix
from dlreg.rigid3d.pipeline import register_images
from dlreg.rigid3d.preprocess import Prepared, prepare
from dlreg.rigid3d.refine import crop_to_head, fine_image, refine_rigid


def _itk_stage(fixed: sitk.Image, moving: sitk.Image, matrix: np.ndarray, center: np.ndarray, *, bins: int,
               strategy: int, sampling: float, seed: int, shrink: tuple[int, ...], relaxation: float,
               min_step: float, mask: sitk.Image | None = None) -> np.ndarray:
    transform = sitk.Euler3DTransform()
    transform.SetCenter([float(c) for c in center])
    transform.SetParameters([float(p) for p in matrix_to_rigid(matrix, center)])
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=bins)
    reg.SetMetricSamplingStrategy(strategy)
    reg.SetMetricSamplingPercentage(sampling, seed + 1)
    if mask is not None:
        reg.SetMetricFixedMask(mask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=min_step, numberOfIterations=100,
                                                 relaxationFactor=relaxation, gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(list(shrink))
    reg.SetSmoothingSigmasPerLevel([0.5 * (f - 1) for f in shrink])
    reg.SetInitialTransform(transform, inPlace=True)
    reg.Execute(fixed, moving)
    return rigid_to_matrix(np.asarray(transform.GetParameters()), center)


def itk_refine(fixed: Prepared, moving: Prepared, matrix: np.ndarray, fixed_image: sitk.Image,
               moving_image: sitk.Image, seed: int = 0) -> np.ndarray:
    """The previous version's refinement (ITK), for comparison."""
    center = fixed.centroid
    mask = sitk.BinaryDilate(fixed.mask, [2, 2, 2])
    matrix = _itk_stage(fixed.image, moving.image, matrix, center, bins=32,
                        strategy=sitk.ImageRegistrationMethod.RANDOM, sampling=0.10, seed=seed, shrink=(4, 2, 1),
                        relaxation=0.7, min_step=0.01, mask=mask)
    fine_f = crop_to_head(fine_image(fixed_image, fixed.modality), fixed)
    fine_m = crop_to_head(fine_image(moving_image, moving.modality), moving)
    sampling = min(1.0, 30_000 / float(np.prod(fine_f.GetSize())))
    return _itk_stage(fine_f, fine_m, matrix, center, bins=64, strategy=sitk.ImageRegistrationMethod.REGULAR,
                      sampling=sampling, seed=seed, shrink=(1,), relaxation=0.8, min_step=0.002)


def twice(refine, *args, threads: int) -> dict:
    """Run a refinement twice with `threads` ITK threads: TRE inputs, seconds, identical bytes."""
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    outputs, walls, cpus = [], [], []
    for _ in range(2):
        wall, cpu = time.perf_counter(), time.process_time()
        outputs.append(refine(*args))
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"matrix": outputs[0], "seconds": float(np.mean(walls)), "cpu_seconds": float(np.mean(cpus)),
            "identical": outputs[0].tobytes() == outputs[1].tobytes(),
            "difference": float(np.abs(outputs[0] - outputs[1]).max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--cases", type=int, default=12)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = Path(args.data)
    rows = []
    for case in cases(data, args.cases):
        motion = case.motions["paper"]
        moving = moved_scan(case.source(data), motion)
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
        start = register_images(case.fixed, moving, refine=False, n_uncertainty=0).matrix
        prep_m = prepare(moving)
        refine_args = (case.prepared, prep_m, start, case.fixed, moving)
        row = {"case": case.index, "subject": case.subject, "pair": f"{case.contrast}->T1",
               "itk_2_threads": twice(itk_refine, *refine_args, threads=2),
               "itk_1_thread": twice(itk_refine, *refine_args, threads=1),
               "dlreg": twice(lambda *a: refine_rigid(*a[:3], fixed_image=a[3], moving_image=a[4]), *refine_args,
                              threads=2)}
        for name in ("itk_2_threads", "itk_1_thread", "dlreg"):
            row[name]["tre_mm"] = corner_distance(row[name].pop("matrix"), motion, case.corners())
        print(json.dumps(row), flush=True)
        rows.append(row)
    summary = {name: {"median_tre_mm": float(np.median([r[name]["tre_mm"] for r in rows])),
                      "median_seconds": float(np.median([r[name]["seconds"] for r in rows])),
                      "median_cpu_seconds": float(np.median([r[name]["cpu_seconds"] for r in rows])),
                      "identical_reruns": f"{sum(r[name]['identical'] for r in rows)}/{len(rows)}",
                      "largest_rerun_difference": float(max(r[name]["difference"] for r in rows))}
               for name in ("itk_2_threads", "itk_1_thread", "dlreg")}
    meta = {"command": " ".join(sys.argv), "load_average": list(os.getloadavg())}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rigid3d_refinement.json").write_text(json.dumps({"meta": meta, "summary": summary, "cases": rows},
                                                            indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
