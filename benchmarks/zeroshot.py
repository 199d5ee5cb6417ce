"""Acceptance benchmark of dlreg.zeroshot (issue 3) on real brain MR slices.

Protocol (paper section 2.8): an axial slice of a co-registered multi-contrast volume is
placed on a 256x256 canvas; the moving contrast is resampled through a random affine with
translation up to 50 px in x and y, rotation up to 0.3 rad and shear up to 0.03 rad about
the canvas centre (the true transform between contrasts is the identity). Pairs: mono-modal
T1->T1 and multi-modal T2->T1, FLAIR->T1, T1c->T2 from brats, aurora and stroke (stroke has
no T1c). Grid error = mean over all 256x256 fixed pixels of |A_est p - A_true p| in px;
success = grid error < 2 px. Methods: paper mode, default mode (both with n = 10
uncertainty runs) and SimpleITK affine registration with Mattes MI, on the same pairs.
"floor" starts the SimpleITK Mattes MI registration AT the true transform: how far the
intensity optimum lies from the nominal ground truth (the contrasts are co-registered only
to about a pixel), i.e. the accuracy floor any intensity method can reach on these pairs.

    python benchmarks/zeroshot.py [--data ../shared/data] [--pairs 50] [--seed 2024]

Writes benchmarks/results/zeroshot.json and zeroshot.md and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def _threads_argument(argv: list[str]) -> str:
    """The --threads value, read before numpy loads: its BLAS pool size is fixed at import."""
    for i, a in enumerate(argv):
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
    return "1"


for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _threads_argument(sys.argv[1:])

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402
import torch  # noqa: E402
from scipy import ndimage, stats  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dlreg import metrics  # noqa: E402
from dlreg.errors import DLRegError  # noqa: E402
from dlreg.zeroshot import register_arrays  # noqa: E402

CANVAS = 256
VOLUMES = {
    "brats": {"t1": "brats_gli_00001_000/BraTS-GLI-00001-000-t1n.nii.gz",
              "t1c": "brats_gli_00001_000/BraTS-GLI-00001-000-t1c.nii.gz",
              "t2": "brats_gli_00001_000/BraTS-GLI-00001-000-t2w.nii.gz",
              "flair": "brats_gli_00001_000/BraTS-GLI-00001-000-t2f.nii.gz"},
    "aurora": {"t1": "aurora/t1.nii.gz", "t1c": "aurora/t1c.nii.gz",
               "t2": "aurora/t2.nii.gz", "flair": "aurora/flair.nii.gz"},
    "stroke": {"t1": "stroke/stroke_T1.nii.gz", "t2": "stroke/stroke_T2.nii.gz",
               "flair": "stroke/stroke_FLAIR.nii.gz"},
}
TASKS = {"mono": [("t1", "t1")], "multi": [("t2", "t1"), ("flair", "t1"), ("t1c", "t2")]}


def load_slices(data: Path) -> dict[str, dict[str, np.ndarray]]:
    """{dataset: {contrast: (Z, 256, 256) float32 axial slices}} of the brain-bearing slices."""
    out = {}
    for name, files in VOLUMES.items():
        vols = {}
        for contrast, rel in files.items():
            img = sitk.DICOMOrient(sitk.ReadImage(str(data / rel), sitk.sitkFloat32), "LPS")
            vols[contrast] = sitk.GetArrayFromImage(img)  # (z, y, x)
        area = (vols["t1"] > np.percentile(vols["t1"], 99) * 0.1).sum(axis=(1, 2))
        keep = np.flatnonzero(area >= 0.5 * area.max())
        for contrast, arr in vols.items():
            arr = arr[keep]
            pad_y, pad_x = CANVAS - arr.shape[1], CANVAS - arr.shape[2]
            arr = np.pad(arr, ((0, 0), (pad_y // 2, pad_y - pad_y // 2), (pad_x // 2, pad_x - pad_x // 2)))
            vols[contrast] = np.clip(arr, 0, None).astype(np.float32)
        out[name] = vols
    return out


def random_matrix(rng: np.random.Generator) -> np.ndarray:
    """Fixed-pixel -> moving-pixel affine of the protocol, about the canvas centre."""
    theta = rng.uniform(-0.3, 0.3)
    shear = rng.uniform(-0.03, 0.03)
    t = rng.uniform(-50, 50, size=2)
    c, s = np.cos(theta), np.sin(theta)
    lin = np.array([[c, -s], [s, c]]) @ np.array([[1.0, np.tan(shear)], [0.0, 1.0]])
    centre = np.array([(CANVAS - 1) / 2.0] * 2)
    m = np.eye(3)
    m[:2, :2] = lin
    m[:2, 2] = centre - lin @ centre + t
    return m


def warp_with(image: np.ndarray, matrix: np.ndarray, order: int = 3) -> np.ndarray:
    """out(p) = image(matrix p), p = (x, y); scipy works in (row, col)."""
    swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1.0]])
    m = swap @ matrix @ swap
    return ndimage.affine_transform(image, m[:2, :2], offset=m[:2, 2], order=order, mode="constant")


def make_pairs(slices: dict, task: str, n: int, seed: int) -> list[dict]:
    """n pairs (fixed, moving, true matrix) for a task, reproducible from the seed."""
    rng = np.random.default_rng(seed)
    pairs = []
    options = [(ds, mv, fx) for ds, vols in slices.items() for mv, fx in TASKS[task]
               if mv in vols and fx in vols]
    for i in range(n):
        ds, mv, fx = options[i % len(options)]
        z = int(rng.integers(0, len(slices[ds][fx])))
        true = random_matrix(rng)
        moving = warp_with(slices[ds][mv][z], np.linalg.inv(true))
        pairs.append({"dataset": ds, "pair": f"{mv}->{fx}", "slice": z, "true": true,
                      "fixed": slices[ds][fx][z], "moving": np.clip(moving, 0, None)})
    return pairs


def grid_error(est: np.ndarray, true: np.ndarray, shape=(CANVAS, CANVAS)) -> float:
    """Mean distance between estimated and true mapped positions over the fixed grid."""
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    p = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    d = (est - true)[:2] @ p
    return float(np.mean(np.hypot(d[0], d[1])))


def pixel_spearman(unc_map: np.ndarray, est: np.ndarray, true: np.ndarray, step: int = 4) -> float | None:
    """Within one pair: Spearman of the uncertainty map with the true error map (every step-th pixel)."""
    h, w = unc_map.shape
    ys, xs = np.mgrid[0:h:step, 0:w:step]
    p = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    d = (est - true)[:2] @ p
    u = unc_map[::step, ::step].ravel()
    if np.ptp(u) == 0:
        return None
    return float(stats.spearmanr(u, np.hypot(d[0], d[1])).statistic)


def sitk_affine_mattes(fixed: np.ndarray, moving: np.ndarray, start: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """SimpleITK affine registration, Mattes MI; returns (fixed->moving pixel matrix, resampled).

    Initialised by image moments, or at `start` (a fixed->moving pixel matrix) when given.
    """
    f, m = sitk.GetImageFromArray(fixed.astype(np.float32)), sitk.GetImageFromArray(moving.astype(np.float32))
    if start is None:
        init = sitk.CenteredTransformInitializer(f, m, sitk.AffineTransform(2),
                                                 sitk.CenteredTransformInitializerFilter.MOMENTS)
    else:
        init = sitk.AffineTransform(2)
        init.SetMatrix(start[:2, :2].ravel().tolist())
        init.SetTranslation(start[:2, 2].tolist())
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.25, seed=1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-4, numberOfIterations=200,
                                                 relaxationFactor=0.6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2, 1, 0])
    reg.SetInitialTransform(init, inPlace=False)
    tx = reg.Execute(f, m)
    affine = sitk.AffineTransform(tx.GetNthTransform(0) if isinstance(tx, sitk.CompositeTransform) else tx)
    lin = np.array(affine.GetMatrix()).reshape(2, 2)
    c = np.array(affine.GetCenter())
    t = np.array(affine.GetTranslation())
    mat = np.eye(3)
    mat[:2, :2] = lin
    mat[:2, 2] = c + t - lin @ c  # spacing 1, origin 0: physical = pixel (x, y)
    resampled = sitk.GetArrayFromImage(sitk.Resample(m, f, affine, sitk.sitkLinear, 0.0))
    return mat, resampled


def run_method(method: str, pair: dict, seed: int) -> dict:
    """Register one pair with one method; error, metrics, time, uncertainty."""
    fixed, moving = pair["fixed"], pair["moving"]
    t0 = time.perf_counter()
    try:
        if method in ("simpleitk", "floor"):
            mat, resampled = sitk_affine_mattes(fixed, moving, pair["true"] if method == "floor" else None)
            elapsed = time.perf_counter() - t0
            before, after = metrics.all_metrics(fixed, moving), metrics.all_metrics(fixed, resampled)
            unc = pixel_rho = None
        else:
            res = register_arrays(fixed, moving, mode=method, n_uncertainty=10, seed=seed)
            mat, elapsed = res.matrix, res.elapsed_s
            before, after = res.metrics_before, res.metrics_after
            unc = res.uncertainty_summary["predicted_grid_error_px"]
            pixel_rho = pixel_spearman(res.uncertainty_map, mat, pair["true"])
    except DLRegError as exc:  # a refused registration counts as the identity
        mat, elapsed = np.eye(3), time.perf_counter() - t0
        before = after = metrics.all_metrics(fixed, moving)
        unc, pixel_rho = float("inf"), None
        print(f"  registration failed, counted as identity: {exc}", file=sys.stderr)
    return {"error_px": grid_error(mat, pair["true"]), "time_s": elapsed, "before": before,
            "after": after, "uncertainty": unc, "pixel_spearman": pixel_rho, "matrix": np.asarray(mat).tolist()}


def summarise(rows: list[dict]) -> dict:
    """Median/p90 error, success rate, mean metric change, median time, Spearman."""
    err = np.array([r["error_px"] for r in rows])
    out = {"n": len(rows), "median_px": float(np.median(err)), "p90_px": float(np.percentile(err, 90)),
           "success": float(np.mean(err < 2.0)), "median_time_s": float(np.median([r["time_s"] for r in rows]))}
    for k in ("dice", "ssim", "mi", "mse"):
        out[f"d_{k}"] = float(np.mean([r["after"][k] - r["before"][k] for r in rows]))
    unc = [r["uncertainty"] for r in rows]
    if all(u is not None for u in unc):
        out["spearman_unc_err"] = float(stats.spearmanr(unc, err).statistic)
        out["median_predicted_error_px"] = float(np.median(unc))
    rho = [r.get("pixel_spearman") for r in rows if r.get("pixel_spearman") is not None]
    if rho:
        out["pixel_spearman_median"] = float(np.median(rho))
    return out


def table(results: dict) -> str:
    """Markdown table of the summaries."""
    head = ("| task | method | n | median px | p90 px | success <2px | dDice | dSSIM | dMI | dMSE "
            "| median time s | x faster than SimpleITK | Spearman(unc, err) | median px vs floor | success vs floor |")
    lines = [head, "|" + "---|" * 15]
    for task, methods in results.items():
        for method, s in methods.items():
            sp, speed = s.get("spearman_unc_err"), s.get("speedup_vs_simpleitk")
            lines.append(f"| {task} | {method} | {s['n']} | {s['median_px']:.2f} | {s['p90_px']:.2f} | "
                         f"{100 * s['success']:.0f}% | {s['d_dice']:+.3f} | {s['d_ssim']:+.3f} | "
                         f"{s['d_mi']:+.3f} | {s['d_mse']:+.4f} | {s['median_time_s']:.3f} | "
                         f"{'' if speed is None else f'{speed:.2f}'} | "
                         f"{'' if sp is None else f'{sp:.2f}'} | "
                         + (f"{s['median_px_vs_floor']:.2f} | {100 * s['success_vs_floor']:.0f}% |"
                            if "median_px_vs_floor" in s else " |  |"))
    return "\n".join(lines)


def add_comparisons(summary: dict, raw: dict, ran: list[str], n_pairs: int) -> None:
    """Speed ratios against SimpleITK timed in the same run, and errors against the MI floor."""
    if "simpleitk" in ran:  # speed ratio only between methods timed in this run, pair by pair
        base = raw["simpleitk"]
        for method in ran:
            if method not in ("simpleitk", "floor"):
                summary[method]["speedup_vs_simpleitk"] = float(np.median(
                    [b["time_s"] / r["time_s"] for r, b in zip(raw[method], base)]))
    floor = raw.get("floor")
    if floor is None or len(floor) != n_pairs:
        return
    for method, rows in raw.items():  # extra, clearly separate: error vs the MI floor
        if method != "floor" and len(rows) == n_pairs and all("matrix" in r for r in rows):
            d = np.array([grid_error(np.array(r["matrix"]), np.array(f["matrix"])) for r, f in zip(rows, floor)])
            summary[method]["median_px_vs_floor"] = float(np.median(d))
            summary[method]["success_vs_floor"] = float(np.mean(d < 2.0))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--pairs", type=int, default=50, help="pairs per task (>= 50 for acceptance)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--methods", default="paper,default,simpleitk")
    ap.add_argument("--tasks", default="mono,multi")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--append", action="store_true",
                    help="keep the other methods' rows of an earlier run in --out (run methods separately)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for torch and SimpleITK alike")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    if not args.data.is_dir():
        print(f"data folder {args.data} is absent: the benchmark needs the development images", file=sys.stderr)
        return 1
    slices = load_slices(args.data)
    results, raw = {}, {}
    print(f"load average at the start: {os.getloadavg()}", file=sys.stderr)
    previous = args.out / "zeroshot.json"
    if args.append and previous.is_file():
        earlier = json.loads(previous.read_text())
        results, raw = earlier["summary"], earlier["pairs"]
    for ti, task in enumerate(args.tasks.split(",")):
        pairs = make_pairs(slices, task, args.pairs, args.seed + ti)
        results.setdefault(task, {})
        raw.setdefault(task, {})
        for method in args.methods.split(","):
            rows = [run_method(method, p, seed=i) for i, p in enumerate(pairs)]
            for r, p in zip(rows, pairs):
                r.update(dataset=p["dataset"], pair=p["pair"], slice=p["slice"])
            results[task][method] = summarise(rows)
            raw[task][method] = rows
            print(f"{task:5s} {method:9s} {json.dumps(results[task][method])}", file=sys.stderr)
        add_comparisons(results[task], raw[task], args.methods.split(","), len(pairs))
    text = table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "zeroshot.json").write_text(json.dumps({"summary": results, "pairs": raw,
                                                        "args": {k: str(v) for k, v in vars(args).items()}},
                                                       indent=1, default=float))
    cmd = "python benchmarks/zeroshot.py " + " ".join(argv if argv is not None else sys.argv[1:])
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    (args.out / "zeroshot.md").write_text(f"Last command: `{cmd}` (load average at the end: {load})\n\n{text}\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
