"""Whole processes, start-up included: `python -m dlreg register3d` against itk-elastix and ANTs.

Per case (test subjects, paper range, as `rigid3d.py`), the fixed and moved volumes are
written as NIfTI files and each tool runs as its own process with --threads threads: read
both files, register, write the transform. Wall time and peak memory (the child's maximum
resident set size, from os.wait4) are measured per process; the TRE of each written
transform checks that the speed is not bought with accuracy. With --memory the default
register3d also runs on two 256^3 volumes (a T1 and its moved T2 on 256^3 1 mm grids).

    .venv/bin/python benchmarks/rigid3d_process.py --data DATA_DIR --cases 12 --threads 1 --memory
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from devdata import DEFAULT_DATA
from rigid3d import cases, corner_distance, moved_scan

from dlreg.imaging.transforms import read_transform

ELASTIX = """
import sys, numpy as np, itk
fixed, moving = (itk.imread(p, itk.F) for p in sys.argv[1:3])
params = itk.ParameterObject.New()
params.AddParameterMap(params.GetDefaultParameterMap("rigid"))
_, result = itk.elastix_registration_method(fixed, moving, parameter_object=params, log_to_console=False)
np.save(sys.argv[3], np.array([float(v) for v in result.GetParameter(0, "TransformParameters")]
                              + [float(v) for v in result.GetParameter(0, "CenterOfRotationPoint")]))
"""
ANTS = """
import sys, shutil, numpy as np, ants
fixed, moving = (ants.image_read(p) for p in sys.argv[1:3])
result = ants.registration(fixed, moving, type_of_transform="Rigid")
shutil.copy(result["fwdtransforms"][0], sys.argv[3] + ".mat")
t = ants.read_transform(sys.argv[3] + ".mat")
np.save(sys.argv[3], np.concatenate([np.asarray(t.parameters, float), np.asarray(t.fixed_parameters, float)]))
"""


def run_process(command: list[str], threads: int) -> tuple[float, float]:
    """Run to completion; (wall seconds, peak resident memory in MiB) of that child alone."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads), "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": str(threads)}
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    stderr = child.stderr.read().decode(errors="replace")
    child.stderr.close()
    if status != 0:
        raise RuntimeError(f"{command[:4]} failed ({status}): {stderr.strip().splitlines()[-1:]}")
    return seconds, usage.ru_maxrss / 1024.0


def matrix_from(values: np.ndarray, tool: str) -> np.ndarray:
    """Fixed->moving 4x4 from elastix (Euler angles, translation, centre) or ANTs (3x3, t, centre)."""
    from dlreg.imaging.geometry import rigid_to_matrix

    if tool == "elastix":
        return rigid_to_matrix(values[:6], values[6:9])
    matrix = np.eye(4)
    matrix[:3, :3] = values[:9].reshape(3, 3)
    matrix[:3, 3] = values[9:12] + values[12:15] - matrix[:3, :3] @ values[12:15]
    return matrix


def tools(folder: Path, threads: int) -> dict[str, tuple[list[str], Path]]:
    """Each tool's command line (fixed.nii.gz, moving.nii.gz in `folder`) and its output."""
    fixed, moving = str(folder / "fixed.nii.gz"), str(folder / "moving.nii.gz")
    return {
        "dlreg": ([sys.executable, "-m", "dlreg", "register3d", fixed, moving, "--output-transform",
                   str(folder / "dlreg.tfm")], folder / "dlreg.tfm"),
        "elastix": ([sys.executable, "-c", ELASTIX, fixed, moving, str(folder / "elastix")], folder / "elastix.npy"),
        "ants": ([sys.executable, "-c", ANTS, fixed, moving, str(folder / "ants")], folder / "ants.npy"),
    }


def race(data: Path, n_cases: int, threads: int) -> list[dict]:
    rows = []
    for case in cases(data, n_cases):
        motion = case.motions["paper"]
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            sitk.WriteImage(case.fixed, str(folder / "fixed.nii.gz"))
            sitk.WriteImage(moved_scan(case.source(data), motion), str(folder / "moving.nii.gz"))
            row = {"case": case.index, "subject": case.subject, "pair": f"{case.contrast}->T1"}
            for name, (command, output) in tools(folder, threads).items():
                seconds, memory = run_process(command, threads)
                matrix = read_transform(output) if name == "dlreg" else matrix_from(np.load(output), name)
                row[name] = {"seconds": seconds, "peak_mib": memory,
                             "tre_mm": corner_distance(matrix, motion, case.corners())}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def memory_256(data: Path, threads: int) -> dict:
    """Peak memory of the default register3d on two 256^3 volumes (1 mm)."""
    case = next(cases(data, 1))
    grid = sitk.Image([256] * 3, sitk.sitkFloat32)
    grid.SetDirection(case.fixed.GetDirection())
    center = case.fixed.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in case.fixed.GetSize()])
    direction = np.asarray(case.fixed.GetDirection()).reshape(3, 3)
    grid.SetOrigin((np.asarray(center) - direction @ np.full(3, 127.5)).tolist())
    fixed = sitk.Resample(case.fixed, grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    moving = sitk.Resample(moved_scan(case.source(data), case.motions["paper"]), grid, sitk.Transform(),
                           sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sitk.WriteImage(fixed, str(folder / "fixed.nii.gz"))
        sitk.WriteImage(moving, str(folder / "moving.nii.gz"))
        command, output = tools(folder, threads)["dlreg"]
        seconds, memory = run_process(command, threads)
        tre = corner_distance(read_transform(output), case.motions["paper"], case.corners())
    return {"size": [256] * 3, "voxel_type": "float32", "seconds": seconds, "peak_mib": memory, "tre_mm": tre}


def summary(rows: list[dict]) -> dict:
    out = {}
    for name in ("dlreg", "elastix", "ants"):
        out[name] = {"median_seconds": float(np.median([r[name]["seconds"] for r in rows])),
                     "median_tre_mm": float(np.median([r[name]["tre_mm"] for r in rows])),
                     "median_peak_mib": float(np.median([r[name]["peak_mib"] for r in rows]))}
        if name != "dlreg":
            out[name]["time_ratio_to_dlreg"] = float(np.median([r[name]["seconds"] / r["dlreg"]["seconds"]
                                                                for r in rows]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--cases", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--memory", action="store_true", help="also the peak memory on two 256^3 volumes")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    meta = {"command": " ".join(sys.argv), "threads": args.threads, "load_average_at_start": list(os.getloadavg())}
    data = Path(args.data)
    result = {"meta": meta}
    if args.memory:
        result["memory_256"] = memory_256(data, args.threads)
        print(json.dumps(result["memory_256"]), flush=True)
    rows = race(data, args.cases, args.threads) if args.cases else []
    result |= {"cases": rows, "summary": summary(rows) if rows else {}}
    result["meta"]["load_average_at_end"] = list(os.getloadavg())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rigid3d_process.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
