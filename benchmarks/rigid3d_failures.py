"""Does register3d say when it failed? Created failures, the failure flag, AUROC and Spearman.

Failures are made the way users meet them, on the pairs of `benchmarks/rigid3d.py` (a
contrast moved by a known motion against its subject's T1):
- paper / wide: ordinary motions (up to 15 deg / 5 mm, up to 180 deg / 30 mm);
- wrong_init: the moving header places the head 150-250 mm away, turned 90-180 deg;
- thick: the moving volume acquired in 3-7 mm slices (a clinical scan; a registration that
  should succeed, so the flag's false alarms on coarse data show);
- truncated: the moving field of view keeps only 35-60% of the slices;
- noise: Gaussian noise of 0.5-1.5x the image's 99th percentile added to the moving volume;
- other_subject: the same contrast of ANOTHER subject (no right answer: always a failure);
- flipped: the moving header mirrored (no rigid answer: always a failure).
A case failed when its TRE (head-box corners, as the main benchmark) is >= 2 mm or it is
other_subject / flipped. Every case runs the default pipeline (`register_images` with
default options) and records `checks`, `failure_score` and `likely_failed`.

`--split train` uses the subjects the shipped models were trained on (not the test split,
not aurora, whose truth is 2-3 mm off): the flag's thresholds are chosen there
(`--choose`: each signal's threshold at the largest value among the successful training
cases times a margin). `--split test` uses devdata.TEST_SUBJECTS and reports the AUROC of
`failure_score` (failed vs successful), Spearman rho of the score against the TRE (cases with
a TRE), and the flag rate on the successful cases.

    .venv/bin/python benchmarks/rigid3d_failures.py --data DATA_DIR --split test --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from devdata import DEFAULT_DATA, INEXACT_SUBJECTS, TEST_SUBJECTS
from rigid3d import CT_SUBJECT, SUBJECTS, available, corner_distance, moved_scan, read_volume
from scipy.stats import spearmanr

from dlreg.imaging.rigid import axis_angle_matrix, move_image, random_rigid
from dlreg.rigid3d.pipeline import failure_score, register_images
from dlreg.rigid3d.preprocess import image_box_corners, prepare

KINDS = ("paper", "wide", "wrong_init", "thick", "truncated", "noise", "other_subject", "flipped")
ALWAYS_FAILED = ("other_subject", "flipped")
SIGNALS = {"mirror_gain": 1.0, "DSC": -1.0, "spread_mm": 1.0, "landmark_residual_mm": 1.0,
           "refinement_shift_mm": 1.0, "MI": -1.0, "SSIM": -1.0}  # +1: larger is worse


def split_subjects(data: Path, split: str, excluded: tuple[str, ...]) -> list[str]:
    """The benchmark's subjects of a split (the head CT and inexact or excluded subjects left out)."""
    subjects = [s for s in SUBJECTS if s != CT_SUBJECT and available(data, s)
                and s not in INEXACT_SUBJECTS and s not in excluded]
    return [s for s in subjects if (s in TEST_SUBJECTS) == (split == "test")]


def mirrored(image: sitk.Image) -> sitk.Image:
    """The same voxels with the first index axis reversed in the header: a mirror image."""
    direction = np.asarray(image.GetDirection()).reshape(3, 3).copy()
    direction[:, 0] *= -1.0
    out = sitk.Image(image)
    out.SetDirection(direction.ravel().tolist())
    return out


def thick_slices(image: sitk.Image, rng: np.random.Generator) -> sitk.Image:
    """The volume as acquired in 3-7 mm slices along its third axis (averaged, then sampled)."""
    thickness = rng.uniform(3.0, 7.0)
    spacing = list(image.GetSpacing())
    smooth = sitk.SmoothingRecursiveGaussian(image, [0.01, 0.01, thickness / 2.355])
    size = list(image.GetSize())[:2] + [int(image.GetSize()[2] * spacing[2] / thickness)]
    return sitk.Resample(smooth, size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(), spacing[:2] + [thickness],
                         image.GetDirection(), 0.0, sitk.sitkFloat32)


def truncated(image: sitk.Image, rng: np.random.Generator) -> sitk.Image:
    """A contiguous 35-60% of the slices (third index axis), from the top or the bottom."""
    size = list(image.GetSize())
    keep = int(round(size[2] * rng.uniform(0.35, 0.6)))
    start = 0 if rng.random() < 0.5 else size[2] - keep
    return sitk.RegionOfInterest(image, size[:2] + [keep], [0, 0, start])


def noisy(image: sitk.Image, rng: np.random.Generator) -> sitk.Image:
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    sigma = rng.uniform(0.5, 1.5) * float(np.percentile(array, 99))
    out = sitk.GetImageFromArray(array + rng.normal(0.0, sigma, array.shape).astype(np.float32))
    out.CopyInformation(image)
    return out


def far_motion(rng: np.random.Generator, center: np.ndarray) -> np.ndarray:
    """A header that puts the head 150-250 mm away, turned 90-180 degrees about a random axis."""
    motion = np.eye(4)
    motion[:3, :3] = axis_angle_matrix(rng.normal(size=3), np.radians(rng.uniform(90.0, 180.0)))
    direction = rng.normal(size=3)
    motion[:3, 3] = center + direction / np.linalg.norm(direction) * rng.uniform(150.0, 250.0) - motion[:3, :3] @ center
    return motion


def make_moving(kind: str, source: sitk.Image, other: sitk.Image | None, center: np.ndarray,
                rng: np.random.Generator) -> tuple[sitk.Image, np.ndarray]:
    """The moving volume of a case and the true fixed->moving motion."""
    if kind == "wrong_init":
        motion = far_motion(rng, center)
        return move_image(source, motion), motion
    motion = random_rigid(rng, *((180.0, 30.0) if kind == "wide" else (15.0, 5.0)), center)
    moved = moved_scan(other if kind == "other_subject" else source, motion)
    if kind == "thick":
        moved = thick_slices(moved, rng)
    elif kind == "truncated":
        moved = truncated(moved, rng)
    elif kind == "noise":
        moved = noisy(moved, rng)
    elif kind == "flipped":
        moved = mirrored(moved)
    return moved, motion


def run(data: Path, subjects: list[str], rounds: int, out: Path, meta: dict) -> list[dict]:
    """Every kind on every pair of the subjects, `rounds` times (new motions each round); rows
    written as they come."""
    pairs = [(s, c) for s in subjects for c in SUBJECTS[s][1]]
    rows: list[dict] = []
    for k in range(rounds):
        for kind_index, kind in enumerate(KINDS):
            for pair_index, (subject, contrast) in enumerate(pairs):
                rng = np.random.default_rng([k, kind_index, pair_index])
                others = [s for s in subjects if s != subject and contrast in SUBJECTS[s][1]]
                other_subject = others[(k + pair_index) % len(others)]
                rows.append(one_case(data, kind, subject, contrast, other_subject, rng) | {"round": k})
                (out / f"rigid3d_failures_{meta['split']}.json").write_text(
                    json.dumps({"meta": {**meta, "load_average_at_write": list(os.getloadavg())}, "cases": rows},
                               indent=1, default=float))
    return rows


def one_case(data: Path, kind: str, subject: str, contrast: str, other_subject: str,
             rng: np.random.Generator) -> dict:
    """The default pipeline on one created case: TRE (None when no rigid answer exists), checks, flag."""
    fixed = read_volume(data, subject, SUBJECTS[subject][0])
    prepared = prepare(fixed)
    corners = image_box_corners(prepared.image, prepared.mask)
    source = read_volume(data, subject, SUBJECTS[subject][1][contrast])
    other = read_volume(data, other_subject, SUBJECTS[other_subject][1][contrast]) if kind == "other_subject" else None
    moving, motion = make_moving(kind, source, other, prepared.centroid, rng)
    result = register_images(fixed, moving)
    tre = None if kind in ALWAYS_FAILED else corner_distance(result.matrix, motion, corners)
    row = {"kind": kind, "subject": subject, "pair": f"{contrast}->T1",
           "other_subject": other_subject if kind == "other_subject" else None, "tre_mm": tre,
           "failed": tre is None or tre >= 2.0, "likely_failed": result.likely_failed,
           "failure_score": failure_score(result.checks), "reasons": result.failure_reasons,
           "checks": result.checks, "MI": result.metrics["MI"], "SSIM": result.metrics["SSIM"],
           "seconds": result.elapsed_s}
    print(kind, subject, contrast, "TRE", "-" if tre is None else f"{tre:.2f}", "flag", result.likely_failed,
          f"score {row['failure_score']:.2f}", flush=True)
    return row


def auroc(score: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a positive case scores above a negative one (ties count half)."""
    pos, neg = score[positive], score[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def signal_value(row: dict, name: str) -> float:
    value = row["checks"].get(name, row.get(name))
    return SIGNALS[name] * float(np.nan_to_num(value, nan=0.0))


def report(rows: list[dict]) -> dict:
    """AUROC of failure_score and of each signal alone, Spearman (score, TRE), flag rates; the
    score and flag recomputed from the saved checks with the pipeline's current limits."""
    rows = [{**r, "failure_score": failure_score(r["checks"]), "likely_failed": failure_score(r["checks"]) > 1.0}
            for r in rows]
    failed = np.array([r["failed"] for r in rows])
    score = np.array([r["failure_score"] for r in rows])
    flagged = np.array([r["likely_failed"] for r in rows])
    with_tre = [r for r in rows if r["tre_mm"] is not None]
    rho = spearmanr([r["failure_score"] for r in with_tre], [r["tre_mm"] for r in with_tre]).statistic
    kinds = {kind: {"cases": sum(r["kind"] == kind for r in rows),
                    "failed": int(sum(r["failed"] for r in rows if r["kind"] == kind)),
                    "flagged": int(sum(r["likely_failed"] for r in rows if r["kind"] == kind)),
                    "flagged_of_failed": int(sum(r["likely_failed"] and r["failed"] for r in rows
                                                 if r["kind"] == kind))} for kind in KINDS}
    return {"cases": len(rows), "failed": int(failed.sum()), "auroc": auroc(score, failed),
            "spearman_score_tre": float(rho),
            "flag_rate_on_successes": float(flagged[~failed].mean()) if (~failed).any() else float("nan"),
            "flag_rate_on_failures": float(flagged[failed].mean()) if failed.any() else float("nan"),
            "signal_auroc": {name: auroc(np.array([signal_value(r, name) for r in rows]), failed) for name in SIGNALS},
            "kinds": kinds}


def choose(rows: list[dict], margin: float) -> dict:
    """Limits from the successful cases: the landmark residual modelled as a + b h (least squares
    over h, the coarsest voxel in mm, at least 1), its limit `margin` x the largest ratio of a
    residual to that model; for every other signal, its worst successful value."""
    successes = [r for r in rows if not r["failed"]]
    residual = np.array([r["checks"]["landmark_residual_mm"] for r in successes])
    h = np.maximum(1.0, [r["checks"]["coarsest_spacing_mm"] for r in successes])
    (a, b), *_ = np.linalg.lstsq(np.stack([np.ones_like(h), h], 1), residual, rcond=None)
    factor = margin * float(np.max(residual / (a + b * h)))
    worst = {name: SIGNALS[name] * max(signal_value(r, name) for r in successes) for name in SIGNALS}
    return {"residual_limit_mm": [factor * a, factor * b], "residual_model": [float(a), float(b)],
            "largest_ratio": factor / margin, "margin": margin, "successes": len(successes), "worst": worst}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--split", choices=("train", "test"), default="test")
    parser.add_argument("--rounds", type=int, default=1, help="times every kind runs on every pair")
    parser.add_argument("--exclude", nargs="*", default=[], help="subjects to leave out (MI floor check)")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--report", action="store_true", help="only report the saved cases")
    parser.add_argument("--choose", type=float, default=None, metavar="MARGIN",
                        help="print each signal's worst successful value (the threshold before MARGIN)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"rigid3d_failures_{args.split}.json"
    if args.report:
        rows = json.loads(path.read_text())["cases"]
    else:
        data = Path(args.data)
        meta = {"command": " ".join(sys.argv), "split": args.split, "load_average_at_start": list(os.getloadavg())}
        rows = run(data, split_subjects(data, args.split, tuple(args.exclude)), args.rounds, out, meta)
    summary = report(rows)
    if args.choose is not None:
        summary["worst_successful"] = choose(rows, args.choose)
    print(json.dumps(summary, indent=1))
    (out / f"rigid3d_failures_{args.split}_summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
