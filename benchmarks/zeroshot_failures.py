"""Does the zero-shot 2D failure flag tell a failed registration from a successful one?

Failures are rare on the benchmark's pairs, so they are created as users meet them, on top
of the normal cases (zeroshot_cases.py: mono and multi with rotations up to 0.3 rad, and
multi with any rotation: the rows of zeroshot.py):
- wrong_init: a start far off (rotation 90-180 degrees and a 60-100 px shift: part of the
  moving anatomy leaves the canvas), as a wrong header or initialisation gives;
- truncated: the moving image keeps only a band of 35-65% of its field of view;
- noise: heavy Gaussian noise on the moving image (sigma 0.2-1.5x its 99th percentile);
- flipped: the moving image mirrored left-right (no rotation undoes it);
- wrong_pair: the moving slice is of another subject;
- other_slice: the moving slice is 25 or more slices away in the same subject (a slice
  registered against the wrong part of a volume);
- unrelated: the moving image is uniform noise.
A case is a failure when its grid error is >= 2 px; the last three have no true transform and
are failures by definition. Reported per split: AUROC of the result's failure score
(1 - confidence) for failures, Spearman rho of the score against the grid error (cases with a
true transform), and the flag rates. The flag's threshold (quality.LOCK_MIN) is the
"youden_threshold" of --split train (subjects outside devdata.TEST_SUBJECTS); --split test reports.

    python benchmarks/zeroshot_failures.py --split test [--data DIR] [--per-kind 12]

Writes benchmarks/results/zeroshot_failures_<split>.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402
from zeroshot_cases import (  # noqa: E402
    CANVAS,
    REPO,
    TASKS,
    grid_error,
    load_slices,
    make_cases,
    random_matrix,
    split_subjects,
    warp_with,
)

from dlreg.errors import DLRegError  # noqa: E402
from dlreg.zeroshot import register_arrays  # noqa: E402

NORMAL_ROWS = (("mono", "mono", 0.3), ("multi", "multi", 0.3), ("wide", "multi", np.pi))
KINDS = ("wrong_init", "truncated", "noise", "flipped", "wrong_pair", "other_slice", "unrelated")
NO_TRUTH = ("wrong_pair", "other_slice", "unrelated")
MIRROR_X = np.array([[-1.0, 0.0, CANVAS - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def _far_matrix(rng: np.random.Generator) -> np.ndarray:
    """A start far off: rotation 90-180 degrees either way, shift 60-100 px in any direction."""
    m, _ = random_matrix(rng, 0.0)
    theta = rng.choice([-1.0, 1.0]) * rng.uniform(np.pi / 2, np.pi)
    c, s = np.cos(theta), np.sin(theta)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    centre = np.array([[1.0, 0, (CANVAS - 1) / 2], [0, 1.0, (CANVAS - 1) / 2], [0, 0, 1.0]])
    phi, r = rng.uniform(-np.pi, np.pi), rng.uniform(60, 100)
    shift = np.array([[1.0, 0, r * np.cos(phi)], [0, 1.0, r * np.sin(phi)], [0, 0, 1.0]])
    return shift @ centre @ rot @ np.linalg.inv(centre) @ m


def _truncate(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Keep a band of 35-65% of the field of view along a random axis, from a random side."""
    out = image.copy()
    keep = int(CANVAS * rng.uniform(0.35, 0.65))
    axis, side = int(rng.integers(0, 2)), int(rng.integers(0, 2))
    cut = slice(keep, None) if side == 0 else slice(0, CANVAS - keep)
    if axis == 0:
        out[cut, :] = 0.0
    else:
        out[:, cut] = 0.0
    return out


def _created(kind: str, base: dict, slices: dict, rng: np.random.Generator) -> dict:
    """One created failure from a normal case: (fixed, moving, true matrix or None)."""
    fixed, true = base["fixed"], base["true"]
    subject, mv = base["subject"], base["pair"].split("->")[0]
    source = slices[subject][mv][base["slice"]]
    moving = base["moving"]
    if kind == "wrong_init":
        true = _far_matrix(rng)
        moving = np.clip(warp_with(source, np.linalg.inv(true)), 0, None)
    elif kind == "truncated":
        moving = _truncate(moving, rng)
    elif kind == "noise":
        sigma = rng.uniform(0.2, 1.5) * np.percentile(moving[moving > 0], 99)
        moving = np.clip(moving + rng.normal(0.0, sigma, moving.shape), 0, None).astype(np.float32)
    elif kind == "flipped":
        moving, true = moving[:, ::-1].copy(), MIRROR_X @ true
    elif kind == "wrong_pair":
        other = [s for s in slices if s != subject]
        pick = other[int(rng.integers(0, len(other)))]
        z = int(rng.integers(0, len(slices[pick][mv])))
        moving, true = np.clip(warp_with(slices[pick][mv][z], np.linalg.inv(true)), 0, None), None
    elif kind == "other_slice":
        n = len(slices[subject][mv])
        far = [z for z in range(n) if abs(z - base["slice"]) >= 25]
        z = far[int(rng.integers(0, len(far)))] if far else (base["slice"] + n // 2) % n
        moving, true = np.clip(warp_with(slices[subject][mv][z], np.linalg.inv(true)), 0, None), None
    elif kind == "unrelated":
        moving, true = rng.uniform(0, float(fixed.max()), fixed.shape).astype(np.float32), None
    return {"kind": kind, "fixed": fixed, "moving": moving.astype(np.float32), "true": true,
            "subject": subject, "pair": base["pair"]}


def make_failure_set(slices: dict, n_normal: int, per_kind: int, seed: int) -> list[dict]:
    """n_normal cases of each normal row (mono, multi, wide) and per_kind created failures of each kind."""
    normal = []
    for k, (row, task, max_rotation) in enumerate(NORMAL_ROWS):
        normal += [{**c, "kind": f"normal_{row}"} for c in make_cases(slices, TASKS[task], n_normal, seed + k,
                                                                      max_rotation)]
    bases = make_cases(slices, TASKS["multi"] + TASKS["mono"], per_kind * len(KINDS), seed + 10)
    rng = np.random.default_rng(seed + 20)
    created = [_created(KINDS[i % len(KINDS)], b, slices, rng) for i, b in enumerate(bases)]
    return normal + created


def run_case(case: dict, seed: int) -> dict:
    """The zero-shot result's flag, confidence and signals, and the true grid error."""
    try:
        res = register_arrays(case["fixed"], case["moving"], n_uncertainty=10, seed=seed)
    except DLRegError as exc:  # refused: the user is told, as good as a flag
        return {"refused": str(exc), "likely_failed": True, "confidence": 0.0,
                "error_px": None if case["true"] is None else grid_error(np.eye(3), case["true"])}
    return {"likely_failed": res.likely_failed, "failure_reasons": res.failure_reasons,
            "confidence": res.uncertainty_summary["confidence"], "final_metric": res.details.get("final_metric"),
            "predicted_error_px": res.uncertainty_summary["predicted_grid_error_px"],
            "error_px": None if case["true"] is None else grid_error(res.matrix, case["true"])}


def youden_threshold(lock: np.ndarray, failed: np.ndarray) -> float:
    """The lock below which flagging maximises Youden's J = (flagged failures) - (flagged successes), as rates."""
    levels = np.unique(lock)
    j = [np.mean(lock[failed] < t) - np.mean(lock[~failed] < t) for t in levels]
    return float(levels[int(np.argmax(j))])


def evaluate(rows: list[dict]) -> dict:
    """AUROC of (1 - confidence) for failures, Spearman against the error, flag rates."""
    failed = np.array([r["error_px"] is None or r["error_px"] >= 2.0 for r in rows])
    score = np.array([1.0 - r["confidence"] for r in rows])
    flag = np.array([r["likely_failed"] for r in rows])
    out = {"n": len(rows), "failures": int(failed.sum())}
    if 0 < failed.sum() < len(rows):
        out["auroc"] = float(stats.mannwhitneyu(score[failed], score[~failed]).statistic
                             / (failed.sum() * (~failed).sum()))
    with_truth = [i for i, r in enumerate(rows) if r["error_px"] is not None]
    out["spearman_score_error"] = float(stats.spearmanr(score[with_truth],
                                                        [rows[i]["error_px"] for i in with_truth]).statistic)
    out["flag_rate_on_successes"] = float(flag[~failed].mean()) if (~failed).any() else None
    out["flag_rate_on_failures"] = float(flag[failed].mean()) if failed.any() else None
    normal_ok = [i for i, r in enumerate(rows) if r["kind"].startswith("normal") and not failed[i]]
    out["flag_rate_on_normal_successes"] = float(flag[normal_ok].mean()) if normal_ok else None
    if 0 < failed.sum() < len(rows):  # how the flag's threshold is chosen (on --split train)
        out["youden_threshold"] = youden_threshold(np.array([r["confidence"] for r in rows]), failed)
    out["by_kind"] = {}
    for kind in sorted({r["kind"] for r in rows}):
        idx = [i for i, r in enumerate(rows) if r["kind"] == kind]
        out["by_kind"][kind] = {"n": len(idx), "failures": int(failed[idx].sum()), "flagged": int(flag[idx].sum()),
                                "flagged_failures": int((flag[idx] & failed[idx]).sum())}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--split", default="test", choices=("test", "train"))
    ap.add_argument("--normal", type=int, default=60, help="normal cases per row (mono, multi, wide)")
    ap.add_argument("--per-kind", type=int, default=12, help="created failures of each kind")
    ap.add_argument("--seed", type=int, default=4048)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    slices = load_slices(args.data, split_subjects(args.data, args.split))
    cases = make_failure_set(slices, args.normal, args.per_kind, args.seed)
    rows = []
    for i, case in enumerate(cases):
        rows.append({"kind": case["kind"], "subject": case["subject"], "pair": case["pair"], **run_case(case, i)})
    summary = evaluate(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"zeroshot_failures_{args.split}.json").write_text(
        json.dumps({"summary": summary, "cases": rows, "args": {k: str(v) for k, v in vars(args).items()}},
                   indent=1, default=float))
    print(json.dumps({k: v for k, v in summary.items() if k != "by_kind"}, indent=1))
    print("| kind | n | failures | flagged | flagged failures |\n|---|---|---|---|---|")
    for kind, s in summary["by_kind"].items():
        print(f"| {kind} | {s['n']} | {s['failures']} | {s['flagged']} | {s['flagged_failures']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
