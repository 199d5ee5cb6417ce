"""Acceptance benchmark of dlreg.rigid3d against SimpleITK and itk-elastix rigid (Mattes MI).

Cases: co-registered multi-contrast subjects under --data (T2->T1, FLAIR->T1, T1c->T1;
the true transform between contrasts is the identity) and the real head CT of Debian's
invesalius-examples against itself (CT->CT, mono-modal), each moving volume moved by a
known random rigid motion about the fixed head centre and resampled (linear) onto an
axis-aligned grid that holds the whole moved volume. Rows: paper range (+-15 deg about a
random axis, +-5 mm) and wide range (up to 90 deg, +-30 mm), --cases cases each, seeds
fixed, cases interleaved across rows. Methods: the paper's DCNN + ANN alone (`dcnn_ann`), the
keypoint network alone (`keypoints`), with PCA pre-alignment (`pca_keypoints`), the default
pipeline (`pca_keypoints_refine`), SimpleITK and itk-elastix. TRE: distance at the 8 corners
of the fixed head's bounding box (mean per case); success: TRE < 2 mm. Every method runs with --threads threads
(torch, SimpleITK, ITK). JSON and markdown go to --out after every case, with the load average.

MI floor: per case, `refine_rigid` started AT the true motion ("mi_floor" row: its TRE is how
far mutual information itself moves off the nominal truth, i.e. how well the contrasts are
co-registered). Every method's "vs floor" columns measure its distance to that result, so the
data's co-registration limit shows apart from the method's error; the acceptance numbers are
the nominal-truth ones. Speed ratios: median over cases of (baseline seconds / ours).

    .venv/bin/python benchmarks/rigid3d.py --data ../shared/data --cases 30 [--weights W]
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
import torch
from devdata import BRATS2018, INVESALIUS_CT, read_invesalius

from dlreg.imaging.geometry import apply_matrix, image_corners, rigid_to_matrix
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
RANGES = {"paper": (15.0, 5.0), "wide": (90.0, 30.0)}
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


def sitk_rigid(fixed: sitk.Image, moving: sitk.Image) -> np.ndarray:
    """SimpleITK Mattes-MI rigid: geometric-centre init, 3-level pyramid, regular-step GD."""
    init = sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(),
                                             sitk.CenteredTransformInitializerFilter.GEOMETRY)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(50)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.05, 1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(2.0, 0.01, 200, relaxationFactor=0.5)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2, 1, 0])
    reg.SetInitialTransform(init, inPlace=True)
    reg.Execute(fixed, moving)
    return rigid_to_matrix(np.asarray(init.GetParameters()), init.GetCenter())


def elastix_rigid(fixed: sitk.Image, moving: sitk.Image) -> np.ndarray:
    """itk-elastix with its default rigid parameter map (Mattes MI, 4 resolutions)."""
    import itk

    def to_itk(img: sitk.Image):
        out = itk.image_from_array(sitk.GetArrayFromImage(img).astype(np.float32))
        out.SetOrigin(img.GetOrigin())
        out.SetSpacing(img.GetSpacing())
        out.SetDirection(itk.matrix_from_array(np.asarray(img.GetDirection()).reshape(3, 3)))
        return out

    params = itk.ParameterObject.New()
    params.AddParameterMap(params.GetDefaultParameterMap("rigid"))
    _, result = itk.elastix_registration_method(to_itk(fixed), to_itk(moving), parameter_object=params,
                                                log_to_console=False)
    p = [float(v) for v in result.GetParameter(0, "TransformParameters")]
    center = [float(v) for v in result.GetParameter(0, "CenterOfRotationPoint")]
    return rigid_to_matrix(p, center)


def methods(weights: str | None) -> dict:
    """Ours (network alone, with PCA pre-alignment, the default pipeline) and the baselines;
    `weights` replaces the bundled keypoint model."""
    def ours(estimator: str, **options):
        return lambda f, m: register_images(f, m, n_uncertainty=0, estimator=estimator,
                                            weights=weights if estimator == "keypoints" else None, **options)
    return {
        "dcnn_ann": ours("ann", refine=False, pca_prealign=False),  # the paper's network alone
        "keypoints": ours("keypoints", refine=False, pca_prealign=False),
        "pca_keypoints": ours("keypoints", refine=False),
        "pca_keypoints_refine": ours("keypoints"),  # the default pipeline
        "simpleitk_mattes_rigid": sitk_rigid,
        "elastix_rigid": elastix_rigid,
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
    motion of each range (drawn for every case, so that shards see the motions of a full run)."""

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


def cases(data: Path, n_cases: int) -> Iterator[Case]:
    """The seeded cases: (subject, contrast) in turn, random motions per range."""
    subjects = [(s, c) for s, (_, cs) in SUBJECTS.items() if available(data, s) for c in cs]
    if not subjects:
        raise SystemExit(f"no benchmark subjects under {data}: pass --data")
    rngs = {name: np.random.default_rng(seed) for name, seed in (("paper", 1), ("wide", 2))}
    for k in range(n_cases):
        subject, contrast = subjects[k % len(subjects)]
        fixed = read_volume(data, subject, SUBJECTS[subject][0])
        prepared = prepare(fixed)
        motions = {name: random_rigid(rngs[name], angle, shift, prepared.centroid)
                   for name, (angle, shift) in RANGES.items()}
        yield Case(k, subject, contrast, fixed, prepared, motions)


def method_row(method: Callable, fixed: sitk.Image, moving: sitk.Image, motion: np.ndarray, corners: np.ndarray,
               floor_matrix: np.ndarray | None) -> dict:
    """One method on one case: TRE, rotation error, seconds (and the time to our network's output)."""
    start = time.perf_counter()
    prediction = None
    try:
        out = method(fixed, moving)
        if isinstance(out, RigidResult):  # ours: also the time to the network's prediction
            prediction = sum(out.timings[stage] for stage in PREDICTION_STAGES)
        matrix = out.matrix if isinstance(out, RigidResult) else out
    except Exception as exc:  # a baseline failing is a result, not a crash
        return {"failed": str(exc).splitlines()[0], "seconds": time.perf_counter() - start}
    seconds = time.perf_counter() - start
    return {"tre_mm": corner_distance(matrix, motion, corners),
            "tre_vs_floor_mm": (float("nan") if floor_matrix is None
                                else corner_distance(matrix, floor_matrix, corners)),
            "rotation_error_deg": rotation_angle_deg(matrix[:3, :3] @ motion[:3, :3].T),
            "seconds": seconds, "motion_deg": rotation_angle_deg(motion),
            **({} if prediction is None else {"prediction_seconds": prediction})}


def run(data: Path, n_cases: int, weights: str | None, only: list[str] | None,
        on_case: Callable[[dict], None] | None = None, shard: tuple[int, int] = (0, 1), first: int = 0,
        floor: bool = True) -> dict:
    """Cases interleaved across the ranges (case k of every range, then k + 1), so that a run
    stopped early still has every row; `on_case(results)` after each case. With shard (i, n)
    only the cases k >= first with k % n == i run (the motions stay those of the full run).
    Without `floor` the MI floor is not computed (timing runs) and the vs-floor columns are NaN."""
    results: dict = {}
    for case in cases(data, n_cases):
        k, subject, contrast, motions = case.index, case.subject, case.contrast, case.motions
        if k < first or k % shard[1] != shard[0]:
            continue
        fixed, prep, corners, source = case.fixed, case.prepared, case.corners(), case.source(data)
        for rng_name, motion in motions.items():
            moving = moved_scan(source, motion)
            floor_matrix = None
            if floor:
                start = time.perf_counter()
                floor_matrix = mi_floor(prep, fixed, moving, motion)
                results.setdefault(f"{rng_name}/mi_floor", []).append(
                    {"case": k, "subject": subject, "pair": pair_name(subject, contrast),
                     "tre_mm": corner_distance(floor_matrix, motion, corners), "tre_vs_floor_mm": 0.0,
                     "rotation_error_deg": rotation_angle_deg(floor_matrix[:3, :3] @ motion[:3, :3].T),
                     "seconds": time.perf_counter() - start})
            for name, method in methods(weights).items():
                if only and name not in only:
                    continue
                row = method_row(method, fixed, moving, motion, corners, floor_matrix)
                results.setdefault(f"{rng_name}/{name}", []).append({"case": k, **row} if "failed" in row else
                                                                     {"case": k, "subject": subject,
                                                                      "pair": pair_name(subject, contrast), **row})
                if "tre_mm" in row:
                    print(f"{rng_name} {k} {subject} {contrast} {name}: TRE {row['tre_mm']:.2f} mm, "
                          f"{row['seconds']:.1f} s", flush=True)
        if on_case:
            on_case(results)
    return results


OURS = "pca_keypoints_refine"
BASELINES = ("elastix_rigid", "simpleitk_mattes_rigid")


def summarise(results: dict) -> dict:
    """Per row: TRE and rotation statistics, success, the same against the MI floor, time and,
    for our refined method, the median per-case speed ratio of each baseline."""
    out = {}
    for key, rows in results.items():
        tre = np.array([r.get("tre_mm", np.inf) for r in rows])
        rot = np.array([r.get("rotation_error_deg", np.inf) for r in rows])
        vs_floor = np.array([r.get("tre_vs_floor_mm", np.inf) for r in rows])
        out[key] = {"cases": len(rows), "median_tre_mm": float(np.median(tre)),
                    "p90_tre_mm": float(np.percentile(tre, 90)), "median_rotation_error_deg": float(np.median(rot)),
                    "success_rate": float(np.mean(tre < 2.0)),
                    "median_vs_floor_mm": float(np.median(vs_floor)),
                    "success_vs_floor": float(np.mean(vs_floor < 2.0)) if np.isfinite(vs_floor).all() else np.nan,
                    "median_seconds": float(np.median([r["seconds"] for r in rows]))}
        prediction = [r["prediction_seconds"] for r in rows if "prediction_seconds" in r]
        if prediction:
            out[key]["median_prediction_seconds"] = float(np.median(prediction))
        range_name, method = key.split("/")
        if method == OURS:
            ours = {r["case"]: r["seconds"] for r in rows}
            for base in BASELINES:
                ratios = [r["seconds"] / ours[r["case"]] for r in results.get(f"{range_name}/{base}", [])
                          if r["case"] in ours]
                if ratios:
                    out[key][f"speed_ratio_{base}"] = float(np.median(ratios))
    return out


def subject_table(results: dict) -> list[str]:
    """Markdown lines: median TRE / success / cases per row and subject."""
    subjects = list(dict.fromkeys(r["subject"] for rows in results.values() for r in rows if "subject" in r))
    lines = ["| row | " + " | ".join(subjects) + " |", "|---" * (len(subjects) + 1) + "|"]
    for key, rows in results.items():
        cells = []
        for subject in subjects:
            tre = np.array([r["tre_mm"] for r in rows if r.get("subject") == subject])
            cells.append(f"{np.median(tre):.2f} / {100 * np.mean(tre < 2.0):.0f}% / {len(tre)}" if len(tre) else "-")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return lines


def write(results: dict, out: Path, meta: dict) -> str:
    """Write rigid3d.json and rigid3d.md under `out`; return the markdown table."""
    summary = summarise(results)
    out.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "load_average_at_write": list(os.getloadavg())}
    (out / "rigid3d.json").write_text(json.dumps({"meta": meta, "summary": summary, "cases": results}, indent=2))
    lines = ["| row | cases | median TRE (mm) | p90 TRE (mm) | median rot. err (deg) | success (<2 mm) | "
             "median vs MI floor (mm) | success vs floor | median s |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {k} | {v['cases']} | {v['median_tre_mm']:.2f} | {v['p90_tre_mm']:.2f} | "
              f"{v['median_rotation_error_deg']:.2f} | {100 * v['success_rate']:.0f}% | "
              f"{v['median_vs_floor_mm']:.2f} | {100 * v['success_vs_floor']:.0f}% | {v['median_seconds']:.2f} |"
              for k, v in summary.items()]
    ratios = [f"{k}: {base} / ours = {v[f'speed_ratio_{base}']:.2f}x" for k, v in summary.items()
              for base in BASELINES if f"speed_ratio_{base}" in v]
    prediction = [f"{k} {v['median_prediction_seconds']:.2f} s" for k, v in summary.items()
                  if "median_prediction_seconds" in v]
    table = "\n".join(lines)
    (out / "rigid3d.md").write_text(
        f"{table}\n\nSpeed, median of per-case ratios: {'; '.join(ratios) or 'n/a'}.\n\n"
        f"Prediction (preparing both volumes, pre-alignment, network; no uncertainty runs, refinement "
        f"or metrics), median: {'; '.join(prediction) or 'n/a'}.\n\n"
        f"### Per subject (median TRE mm / success <2 mm / cases)\n\n" + "\n".join(subject_table(results)) +
        f"\n\nCommand: `{meta['command']}`; load average (1, 5, 15 min) "
        f"at start {meta['load_average_at_start']}, at this write "
        f"{meta['load_average_at_write']}; {meta['cpus']} CPUs.\n")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--cases", type=int, default=30)
    parser.add_argument("--weights", default=None, help="keypoint model weights (default: bundled)")
    parser.add_argument("--methods", nargs="*", default=None)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--threads", type=int, default=1, help="threads for torch, SimpleITK and ITK")
    parser.add_argument("--shard", default="0/1", help="I/N: run only the cases k with k %% N == I")
    parser.add_argument("--first", type=int, default=0, help="skip the cases before this one")
    parser.add_argument("--no-floor", action="store_true", help="skip the MI floor (timing runs)")
    parser.add_argument("--merge", nargs="+", help="merge the rigid3d.json of these shard folders into --out")
    args = parser.parse_args()
    if args.merge:
        parts = [json.loads((Path(d) / "rigid3d.json").read_text()) for d in args.merge]
        merged: dict = {}
        for part in parts:
            for key, rows in part["cases"].items():
                merged.setdefault(key, []).extend(rows)
        for key, rows in merged.items():  # a case run by two shards counts once
            merged[key] = sorted({r["case"]: r for r in reversed(rows)}.values(), key=lambda r: r["case"])
        meta = {"command": " ".join(sys.argv), "cpus": os.cpu_count(), "shards": [p["meta"] for p in parts],
                "load_average_at_start": [p["meta"]["load_average_at_start"] for p in parts]}
        print(write(merged, Path(args.out), meta))
        return
    index, count = (int(v) for v in args.shard.split("/"))
    import itk

    torch.set_num_threads(args.threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    itk.MultiThreaderBase.SetGlobalDefaultNumberOfThreads(args.threads)
    meta = {"command": " ".join(sys.argv), "cpus": os.cpu_count(), "load_average_at_start": list(os.getloadavg()),
            "torch_threads": torch.get_num_threads()}
    results = run(Path(args.data), args.cases, args.weights, args.methods,
                  on_case=lambda r: write(r, Path(args.out), meta), shard=(index, count),
                  first=args.first, floor=not args.no_floor)
    print(write(results, Path(args.out), meta))


if __name__ == "__main__":
    main()
