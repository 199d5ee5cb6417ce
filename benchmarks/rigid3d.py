"""Acceptance benchmark of dlreg.rigid3d against itk-elastix, SimpleITK and ANTs (one run).

Cases: the contrasts of each test subject (devdata.TEST_SUBJECTS, less any subject the MI
floor check excluded: T2, FLAIR and T1c against the T1; the true transform between them is
the identity), each moving volume moved by a known random rigid motion about the fixed
head centre and resampled (linear) onto an axis-aligned grid that holds the whole moved
volume. Rows: `paper` (+-15 deg about a random axis, +-5 mm), `90deg` (up to 90 deg, +-30 mm)
and `180deg` (up to 180 deg about any axis, +-30 mm), --cases cases each (the pairs in turn,
seeds fixed, cases interleaved across rows), and `aurora` (paper-range motions of aurora's
contrasts, --aurora-cases cases): aurora's contrasts are 2-3 mm apart, so its row is
measured against the MI floor and is in no nominal-truth median or success rate.

Methods: `dlreg` (the default pipeline: `register_images` with default options),
`dlreg_network` (its network alone: PCA pre-alignment + keypoint DCNN, no refinement),
`paper_dcnn_ann` (the paper's DCNN + ANN alone) and the peers of `rigid3d_peers.py`
(itk-elastix default rigid map, SimpleITK Mattes MI, ANTs `Rigid`). Every method runs with
--threads threads (torch, SimpleITK, ITK, ANTs, BLAS) on the same volumes in memory.

TRE: mean distance at the 8 corners of the fixed head's bounding box; success: TRE < 2 mm.
MI floor: per case, `refine_rigid` started AT the true motion; each method's "vs floor"
columns are its distance to that result (the aurora row's measure). Speed: median over the
cases of (method seconds / dlreg seconds), wall clock and CPU time. For dlreg: the time of
each stage, the failure flag (its rate among successful cases). JSON and markdown go to
--out after every case, with the load average; --plot draws TRE against the start rotation.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1 \\
        .venv/bin/python benchmarks/rigid3d.py --data DATA_DIR --cases 36 --threads 1 \\
        --plot docs/rigid3d_error_vs_rotation.png
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import SimpleITK as sitk
from devdata import BRATS2018, DEFAULT_DATA, INVESALIUS_CT, TEST_SUBJECTS, read_invesalius

from dlreg.imaging.geometry import apply_matrix, image_corners
from dlreg.imaging.io import read_image
from dlreg.imaging.rigid import move_image, random_rigid, rotation_angle_deg
from dlreg.rigid3d.pipeline import RigidResult, register_images
from dlreg.rigid3d.preprocess import CT_AIR_HU, Prepared, image_box_corners, prepare
from dlreg.rigid3d.refine import refine_rigid

CT_SUBJECT, CT_NAME = "cranium_ct", "Cranium.inv3"  # read from INVESALIUS_CT, not from --data


def _brats2018(subject: str) -> tuple[str, dict[str, str]]:
    path = f"brats2018/{subject}/{subject}_{{}}.nii.gz"
    return path.format("t1"), {"T2": path.format("t2"), "FLAIR": path.format("flair"), "T1c": path.format("t1ce")}


# subject -> (fixed T1, {contrast: moving}), paths under --data
SUBJECTS = {
    "aurora": ("aurora/t1.nii.gz", {"T2": "aurora/t2.nii.gz", "FLAIR": "aurora/flair.nii.gz",
                                    "T1c": "aurora/t1c.nii.gz"}),
    "tcga_du_7294": ("tcga_du_7294/t1.nii.gz", {"T2": "tcga_du_7294/t2.nii.gz", "FLAIR": "tcga_du_7294/fla.nii.gz",
                                                "T1c": "tcga_du_7294/t1c.nii.gz"}),
    "brats_gli_00001_000": ("brats_gli_00001_000/BraTS-GLI-00001-000-t1n.nii.gz",
                            {c: f"brats_gli_00001_000/BraTS-GLI-00001-000-{n}.nii.gz"
                             for c, n in (("T2", "t2w"), ("FLAIR", "t2f"), ("T1c", "t1c"))}),
    "stroke": ("stroke/stroke_T1.nii.gz", {"T2": "stroke/stroke_T2.nii.gz", "FLAIR": "stroke/stroke_FLAIR.nii.gz"}),
    **{subject: _brats2018(subject) for subject in BRATS2018},
    CT_SUBJECT: (CT_NAME, {"CT": CT_NAME}),
}
# Subjects whose contrasts the MI floor check (rigid3d_floor.py) found > 1 mm apart: none of the
# 15 BraTS 2018 subjects (largest median offset 0.67 mm, of a test subject 0.54 mm); aurora (1.8-2.8 mm)
# has its own row.
EXCLUDED: tuple[str, ...] = ()
AURORA = "aurora"
RANGES = {"paper": (15.0, 5.0), "90deg": (90.0, 30.0), "180deg": (180.0, 30.0)}
OURS = "dlreg"
PREDICTION_STAGES = ("prepare", "prealign", "predict")  # RigidResult.timings up to the network's output


def moved_scan(image: sitk.Image, motion: np.ndarray) -> sitk.Image:
    """The image moved by `motion`, resampled on an axis-aligned grid holding all of it; the
    corners the scan did not cover read as 0, or as air in a CT (not 0 HU, which is water)."""
    moved = move_image(image, motion)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    corners = image_corners(moved) @ direction  # in the original axes
    lo, hi = corners.min(0), corners.max(0)
    spacing = np.asarray(image.GetSpacing())
    size = np.ceil((hi - lo) / spacing).astype(int) + 1
    background = min(0.0, float(sitk.GetArrayViewFromImage(image).min()))
    background = background if background < CT_AIR_HU else 0.0
    return sitk.Resample(moved, size.tolist(), sitk.Transform(), sitk.sitkLinear, (direction @ lo).tolist(),
                         spacing.tolist(), image.GetDirection(), background, sitk.sitkFloat32)


def available(data: Path, subject: str) -> bool:
    return INVESALIUS_CT.is_file() if subject == CT_SUBJECT else (data / SUBJECTS[subject][0]).is_file()


def read_volume(data: Path, subject: str, name: str) -> sitk.Image:
    return read_invesalius() if subject == CT_SUBJECT else read_image(data / name)


def pair_name(subject: str, contrast: str) -> str:
    return f"{contrast}->{'CT' if subject == CT_SUBJECT else 'T1'}"


def methods(weights: str | None, peers: dict[str, Callable]) -> dict[str, Callable]:
    """Ours (the default pipeline, its network alone, the paper's network alone) and the peers;
    `weights` replaces the bundled keypoint model."""
    return {
        OURS: lambda f, m: register_images(f, m, weights=weights),
        "dlreg_network": lambda f, m: register_images(f, m, weights=weights, refine=False, n_uncertainty=0),
        "paper_dcnn_ann": lambda f, m: register_images(f, m, estimator="ann", refine=False, pca_prealign=False,
                                                       n_uncertainty=0),
        **peers,
    }


def corner_distance(a: np.ndarray, b: np.ndarray, corners: np.ndarray) -> float:
    """Mean distance (mm) between two fixed->moving transforms at the given corners."""
    return float(np.linalg.norm(apply_matrix(a, corners) - apply_matrix(b, corners), axis=1).mean())


def mi_floor(prep_fixed: Prepared, fixed: sitk.Image, moving: sitk.Image, motion: np.ndarray) -> np.ndarray:
    """The pipeline's MI refinement started at the true transform (`prep_fixed` = prepare(fixed))."""
    return refine_rigid(prep_fixed, prepare(moving), motion, fixed_image=fixed, moving_image=moving)


@dataclass
class Case:
    """Benchmark case `index`: the fixed volume of (subject, contrast), prepared, and the
    motion of each row (drawn for every case, so that shards see the motions of a full run)."""

    index: int
    subject: str
    contrast: str
    fixed: sitk.Image
    prepared: Prepared
    motions: dict[str, np.ndarray]

    def corners(self) -> np.ndarray:
        return image_box_corners(self.prepared.image, self.prepared.mask)

    def source(self, data: Path) -> sitk.Image:
        """The moving volume before its motion (the fixed one for a self pair)."""
        fixed_name, movers = SUBJECTS[self.subject]
        name = movers[self.contrast]
        return self.fixed if name == fixed_name else read_volume(data, self.subject, name)


def test_pairs(data: Path) -> list[tuple[str, str]]:
    """(subject, contrast) of the available test subjects, less the excluded ones."""
    return [(s, c) for s in TEST_SUBJECTS if s not in EXCLUDED and available(data, s) for c in SUBJECTS[s][1]]


def cases(data: Path, n_cases: int, n_aurora: int = 0) -> Iterator[Case]:
    """The seeded cases: test pairs in turn with a motion per range, then aurora's (paper range)."""
    pairs = test_pairs(data)
    if not pairs:
        raise SystemExit(f"no benchmark subjects under {data}: pass --data")
    rngs = {name: np.random.default_rng(seed) for seed, name in enumerate((*RANGES, AURORA), start=1)}
    aurora = [(AURORA, c) for c in SUBJECTS[AURORA][1]] if available(data, AURORA) else []
    jobs = [(k, pairs[k % len(pairs)], RANGES) for k in range(n_cases)]
    jobs += [(n_cases + k, aurora[k % len(aurora)], {AURORA: RANGES["paper"]})
             for k in range(n_aurora if aurora else 0)]
    for k, (subject, contrast), rows in jobs:
        fixed = read_volume(data, subject, SUBJECTS[subject][0])
        prepared = prepare(fixed)
        motions = {name: random_rigid(rngs[name], angle, shift, prepared.centroid)
                   for name, (angle, shift) in rows.items()}
        yield Case(k, subject, contrast, fixed, prepared, motions)


def timed(method: Callable, fixed: sitk.Image, moving: sitk.Image) -> tuple[object, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = method(fixed, moving)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def method_row(method: Callable, fixed: sitk.Image, moving: sitk.Image, motion: np.ndarray, corners: np.ndarray,
               floor_matrix: np.ndarray | None) -> dict:
    """One method on one case: TRE, rotation error, seconds (and, for dlreg, its stages and flag)."""
    try:
        out, seconds, cpu = timed(method, fixed, moving)
    except Exception as exc:  # a peer failing is a result, not a crash
        return {"failed": str(exc).splitlines()[0]}
    matrix = out.matrix if isinstance(out, RigidResult) else out
    row = {"tre_mm": corner_distance(matrix, motion, corners),
           "tre_vs_floor_mm": float("nan") if floor_matrix is None else corner_distance(matrix, floor_matrix, corners),
           "rotation_error_deg": rotation_angle_deg(matrix[:3, :3] @ motion[:3, :3].T),
           "seconds": seconds, "cpu_seconds": cpu, "motion_deg": rotation_angle_deg(motion)}
    if isinstance(out, RigidResult):
        row |= {"stages": dict(out.timings), "likely_failed": out.likely_failed,
                "failure_score": out.failure_score,
                "prediction_seconds": sum(out.timings[stage] for stage in PREDICTION_STAGES)}
    return row


def run(data: Path, n_cases: int, n_aurora: int, weights: str | None, only: list[str] | None,
        on_case: Callable[[dict], None] | None = None, shard: tuple[int, int] = (0, 1), first: int = 0,
        peers: dict[str, Callable] | None = None, rows: tuple[str, ...] | None = None) -> dict:
    """Every method on every case of every row (of `rows`, when given); `on_case(results)` after
    each case. With shard (i, n) only the cases k >= first with k % n == i run (the motions stay
    those of a full run, whatever the rows)."""
    results: dict = {}
    chosen = {k: v for k, v in methods(weights, peers or {}).items() if not only or k in only}
    for case in cases(data, n_cases, n_aurora):
        k, subject, contrast = case.index, case.subject, case.contrast
        if k < first or k % shard[1] != shard[0]:
            continue
        fixed, prep, corners, source = case.fixed, case.prepared, case.corners(), case.source(data)
        for row_name, motion in case.motions.items():
            if rows and row_name not in rows:
                continue
            moving = moved_scan(source, motion)
            floor_matrix, seconds, _ = timed(lambda f, m, p=prep, t=motion: mi_floor(p, f, m, t), fixed, moving)
            label = {"case": k, "subject": subject, "pair": pair_name(subject, contrast)}
            results.setdefault(f"{row_name}/mi_floor", []).append(
                {**label, "tre_mm": corner_distance(floor_matrix, motion, corners), "tre_vs_floor_mm": 0.0,
                 "rotation_error_deg": rotation_angle_deg(floor_matrix[:3, :3] @ motion[:3, :3].T),
                 "seconds": seconds, "motion_deg": rotation_angle_deg(motion)})
            for name, method in chosen.items():
                row = method_row(method, fixed, moving, motion, corners, floor_matrix)
                results.setdefault(f"{row_name}/{name}", []).append({**label, **row})
                print(f"{row_name} {k} {subject} {contrast} {name}: "
                      + (f"TRE {row['tre_mm']:.2f} mm, {row['seconds']:.1f} s" if "tre_mm" in row else row["failed"]),
                      flush=True)
        if on_case:
            on_case(results)
    return results


def set_threads(threads: int) -> None:
    """The same thread count for every method: torch, SimpleITK, ITK (itk-elastix) and ANTs."""
    import itk
    import torch

    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(threads)  # ANTs: read at its first use
    torch.set_num_threads(threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    itk.MultiThreaderBase.SetGlobalDefaultNumberOfThreads(threads)


def merge(folders: list[str]) -> tuple[dict, dict]:
    """The cases of several shard folders (a case run twice counts once) and their metadata."""
    parts = [json.loads((Path(d) / "rigid3d.json").read_text()) for d in folders]
    merged: dict = {}
    for part in parts:
        for key, rows in part["cases"].items():
            merged.setdefault(key, []).extend(rows)
    for key, rows in merged.items():
        merged[key] = sorted({r["case"]: r for r in reversed(rows)}.values(), key=lambda r: r["case"])
    meta = {"command": " ".join(sys.argv), "cpus": os.cpu_count(), "shards": [p["meta"] for p in parts],
            "load_average_at_start": [p["meta"]["load_average_at_start"] for p in parts]}
    return merged, meta


def main() -> None:
    from rigid3d_peers import PEERS
    from rigid3d_report import plot, write

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--cases", type=int, default=36, help="cases per test row")
    parser.add_argument("--aurora-cases", type=int, default=9)
    parser.add_argument("--weights", default=None, help="keypoint model weights (default: bundled)")
    parser.add_argument("--methods", nargs="*", default=None)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--threads", type=int, default=1, help="threads of every method")
    parser.add_argument("--shard", default="0/1", help="I/N: run only the cases k with k %% N == I")
    parser.add_argument("--first", type=int, default=0, help="skip the cases before this one")
    parser.add_argument("--merge", nargs="+", help="merge the rigid3d.json of these shard folders into --out")
    parser.add_argument("--rows", nargs="*", default=None, help="only these rows (default: all)")
    parser.add_argument("--plot", default=None, help="PNG of TRE against the start rotation, every method")
    args = parser.parse_args()
    if args.merge:
        results, meta = merge(args.merge)
    else:
        index, count = (int(v) for v in args.shard.split("/"))
        set_threads(args.threads)
        meta = {"command": " ".join(sys.argv), "cpus": os.cpu_count(), "threads": args.threads,
                "load_average_at_start": list(os.getloadavg())}
        results = run(Path(args.data), args.cases, args.aurora_cases, args.weights, args.methods,
                      on_case=lambda r: write(r, Path(args.out), meta), shard=(index, count),
                      first=args.first, peers=PEERS, rows=args.rows)
    print(write(results, Path(args.out), meta))
    if args.plot:
        plot(results, Path(args.plot))


if __name__ == "__main__":
    main()
