"""Acceptance benchmark of dlreg.zeroshot against SimpleITK and ANTs, side by side, on real brain MR slices.

Cases (see zeroshot_cases.py): an axial slice of one subject's fixed contrast and the moving
contrast resampled through a random affine (translation up to 50 px, shear up to 0.03 rad,
rotation up to 0.3 rad, paper section 2.8). Rows:
- mono: T1 -> T1; multi: T2 -> T1, FLAIR -> T1, T1c -> T2; on the test subjects
  (devdata.TEST_SUBJECTS, none of them used to tune anything), rotation up to 0.3 rad;
- wide: the multi pairs with any rotation (up to 180 degrees);
- aurora: the multi pairs of aurora, whose contrasts are 1-2 mm apart: measured against the MI
  floor, never against the nominal truth.
Methods, all with the same thread count (--threads, default 1): the default and paper modes
(n = 10 uncertainty runs), SimpleITK affine Mattes MI, ANTs affine (antspyx, its standard
"Affine"), and "floor": SimpleITK started AT the true transform (the MI optimum nearest the
nominal truth). Error: mean grid error in px (= mm) against the truth; success: < 2 px. Speed:
per case, the peer's time / the default mode's time, median over the cases of the row (same run).

    python benchmarks/zeroshot.py [--data DIR] [--pairs 60] [--methods ...] [--rows ...]
        [--plot docs/zeroshot_rotation.png]

Writes benchmarks/results/zeroshot.json and zeroshot.md (the table) and the plot of error
against start rotation for every method (rows mono, multi and wide).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def _threads_argument(argv: list[str]) -> str:
    """The --threads value, read before numpy and ITK load: their pool sizes are fixed at import."""
    for i, a in enumerate(argv):
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
    return "1"


for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"):
    os.environ[_var] = _threads_argument(sys.argv[1:])

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402
from zeroshot_cases import (  # noqa: E402
    REPO,
    TASKS,
    ants_affine,
    grid_error,
    load_slices,
    make_cases,
    sitk_affine_mattes,
    split_subjects,
)

from dlreg.errors import DLRegError  # noqa: E402
from dlreg.zeroshot import register_arrays  # noqa: E402

# row: (contrast pairs, split, largest start rotation in rad, seed offset)
ROWS = {"mono": (TASKS["mono"], "test", 0.3, 0), "multi": (TASKS["multi"], "test", 0.3, 1),
        "wide": (TASKS["multi"], "test", np.pi, 2), "aurora": (TASKS["multi"], "aurora", 0.3, 3)}
PEERS = {"simpleitk": lambda c: sitk_affine_mattes(c["fixed"], c["moving"]),
         "ants": lambda c: ants_affine(c["fixed"], c["moving"]),
         "floor": lambda c: sitk_affine_mattes(c["fixed"], c["moving"], c["true"])}
PLOT_ROWS = ("mono", "multi", "wide")


def run_method(method: str, case: dict, seed: int) -> dict:
    """Register one case with one method: its matrix, error, time, and the zero-shot signals."""
    out: dict = {}
    t0 = time.perf_counter()
    try:
        if method in PEERS:
            mat = PEERS[method](case)
            elapsed = time.perf_counter() - t0
        else:
            res = register_arrays(case["fixed"], case["moving"], mode=method, n_uncertainty=10, seed=seed)
            mat, elapsed = res.matrix, res.elapsed_s
            out = {"predicted_error_px": res.uncertainty_summary["predicted_grid_error_px"],
                   "likely_failed": res.likely_failed, "failure_reasons": res.failure_reasons,
                   "confidence": res.uncertainty_summary.get("confidence")}
    except DLRegError as exc:  # a refused registration counts as the identity, and as flagged
        mat, elapsed = np.eye(3), time.perf_counter() - t0
        out = {"refused": str(exc), "likely_failed": True}
        print(f"  {method}: refused, counted as identity: {exc}", file=sys.stderr)
    return {**out, "error_px": grid_error(mat, case["true"]), "time_s": elapsed, "matrix": np.asarray(mat).tolist()}


def summarise(rows: list[dict], against: str = "error_px") -> dict:
    """Median / p90 error, success rate, median time; flag rate and Spearman for the zero-shot modes."""
    err = np.array([r[against] for r in rows])
    out = {"n": len(rows), "median_px": float(np.median(err)), "p90_px": float(np.percentile(err, 90)),
           "success": float(np.mean(err < 2.0)), "median_time_s": float(np.median([r["time_s"] for r in rows]))}
    if all("likely_failed" in r for r in rows):
        ok = err < 2.0
        out["flag_rate_on_success"] = float(np.mean([r["likely_failed"] for r, s in zip(rows, ok) if s])) \
            if ok.any() else None
        pred = [r.get("predicted_error_px") for r in rows]
        if all(p is not None for p in pred):
            out["spearman_unc_err"] = float(stats.spearmanr(pred, err).statistic)
    return out


def add_comparisons(summary: dict, raw: dict) -> None:
    """Per-case speed ratios (method time / default time) and distances to the MI floor, same cases."""
    base, floor = raw.get("default"), raw.get("floor")
    for method, rows in raw.items():
        if base is not None and len(base) == len(rows):
            summary[method]["time_vs_default"] = float(np.median(
                [r["time_s"] / b["time_s"] for r, b in zip(rows, base)]))
        if floor is not None and len(floor) == len(rows) and method != "floor":
            for r, f in zip(rows, floor):
                r["vs_floor_px"] = grid_error(np.array(r["matrix"]), np.array(f["matrix"]))
            vs = summarise(rows, "vs_floor_px")
            summary[method].update(median_vs_floor_px=vs["median_px"], success_vs_floor=vs["success"])


def table(results: dict) -> str:
    """The lead table: methods x rows."""
    lines = ["| row | method | n | median px | p90 px | success <2 px | median s | x default's time "
             "| median px vs MI floor | success vs floor | flagged successes |", "|" + "---|" * 11]
    for row, methods in results.items():
        for method, s in methods.items():
            ratio, flag = s.get("time_vs_default"), s.get("flag_rate_on_success")
            vs = (f"{s['median_vs_floor_px']:.2f} | {100 * s['success_vs_floor']:.0f}%"
                  if "median_vs_floor_px" in s else " | ")
            lines.append(f"| {row} | {method} | {s['n']} | {s['median_px']:.3f} | {s['p90_px']:.2f} | "
                         f"{100 * s['success']:.0f}% | {s['median_time_s']:.3f} | "
                         f"{'' if ratio is None else f'{ratio:.2f}'} | {vs} | "
                         f"{'' if flag is None else f'{100 * flag:.1f}%'} |")
    return "\n".join(lines)


def plot(raw: dict, path: Path) -> None:
    """Error against start rotation, one marker per method, rows mono, multi and wide together."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    methods = sorted({m for r in PLOT_ROWS if r in raw for m in raw[r]})
    for k, method in enumerate(methods):
        xs, ys = [], []
        for row in PLOT_ROWS:
            for res in raw.get(row, {}).get(method, []):
                xs.append(res["rotation_deg"])
                ys.append(max(res["error_px"], 1e-3))
        ax.scatter(xs, ys, s=10, alpha=0.7, label=method, marker="osv^D"[k % 5])
    ax.axhline(2.0, color="grey", lw=0.8, ls="--")
    ax.set(yscale="log", xlabel="start rotation (degrees)", ylabel="grid error (px, log)",
           title="2D affine registration on test subjects: error against start rotation")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--pairs", type=int, default=60, help="cases per row (>= 30 for acceptance)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--methods", default="default,paper,simpleitk,ants,floor")
    ap.add_argument("--rows", default="mono,multi,wide,aurora")
    ap.add_argument("--split", default="test", choices=("test", "train"),
                    help="subjects of the mono/multi/wide rows (train: for tuning only)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--plot", type=Path, help="PNG of error against start rotation")
    ap.add_argument("--append", action="store_true", help="keep the other rows/methods of an earlier run in --out")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for torch, BLAS, SimpleITK and ANTs alike")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    if not args.data.is_dir():
        print(f"data folder {args.data} is absent: the benchmark needs the development images", file=sys.stderr)
        return 1
    load = os.getloadavg()
    print(f"load average at the start: {load}", file=sys.stderr)
    json_path = args.out / f"zeroshot{'' if args.split == 'test' else '_train'}.json"
    results, raw = {}, {}
    if args.append and json_path.is_file():
        earlier = json.loads(json_path.read_text())
        results, raw = earlier["summary"], earlier["cases"]
    for row in args.rows.split(","):
        pairs, split, max_rot, offset = ROWS[row]
        subjects = split_subjects(args.data, args.split if split == "test" else split)
        cases = make_cases(load_slices(args.data, subjects), pairs, args.pairs, args.seed + offset, max_rot)
        results.setdefault(row, {})
        raw.setdefault(row, {})
        for method in args.methods.split(","):
            rows = [run_method(method, c, seed=i) for i, c in enumerate(cases)]
            for r, c in zip(rows, cases):
                r.update(subject=c["subject"], pair=c["pair"], slice=c["slice"], rotation_deg=c["rotation_deg"])
            raw[row][method] = rows
            results[row][method] = summarise(rows)
            print(f"{row:6s} {method:9s} {json.dumps(results[row][method])}", file=sys.stderr, flush=True)
        add_comparisons(results[row], raw[row])
    text = table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({"summary": results, "cases": raw, "load_average_start": load,
                                     "args": {k: str(v) for k, v in vars(args).items()}}, indent=1, default=float))
    cmd = "python benchmarks/zeroshot.py " + " ".join(argv if argv is not None else sys.argv[1:])
    end = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    json_path.with_suffix(".md").write_text(f"Last command: `{cmd}` (load average at the end: {end})\n\n{text}\n")
    if args.plot:
        plot(raw, args.plot)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
