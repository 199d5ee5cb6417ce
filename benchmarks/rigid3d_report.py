"""Tables and the plot of the 3D benchmark (`rigid3d.py`): summary per row and method, the
methods x rows lead table, per-stage times of dlreg, error against start rotation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from rigid3d import AURORA, OURS, RANGES

ROW_TITLES = {"paper": "paper range (15 deg, 5 mm)", "90deg": "up to 90 deg", "180deg": "up to 180 deg",
              AURORA: "aurora, vs MI floor"}
METHOD_TITLES = {OURS: "dlreg (default pipeline)", "dlreg_network": "dlreg network alone (no MI)",
                 "paper_dcnn_ann": "paper's DCNN + ANN alone", "elastix_rigid": "itk-elastix rigid",
                 "simpleitk_rigid": "SimpleITK Mattes rigid", "ants_rigid": "ANTs Rigid", "mi_floor": "MI floor"}


def _ratios(rows: list[dict], ours: list[dict], key: str) -> float:
    """Median over shared cases of (this method's seconds / dlreg's)."""
    mine = {r["case"]: r[key] for r in ours if key in r}
    values = [r[key] / mine[r["case"]] for r in rows if key in r and r["case"] in mine]
    return float(np.median(values)) if values else float("nan")


def summarise(results: dict) -> dict:
    """Per row and method: TRE and rotation statistics, success, the same against the MI floor,
    seconds, the per-case time ratio to dlreg; for dlreg, the flag rate among its successes."""
    out = {}
    for key, rows in results.items():
        row_name, method = key.split("/")
        tre = np.array([r.get("tre_mm", np.inf) for r in rows])
        vs_floor = np.array([r.get("tre_vs_floor_mm", np.inf) for r in rows])
        entry = {"cases": len(rows), "median_tre_mm": float(np.median(tre)),
                 "p90_tre_mm": float(np.percentile(tre, 90)), "success_rate": float(np.mean(tre < 2.0)),
                 "median_rotation_error_deg": float(np.median([r.get("rotation_error_deg", np.inf) for r in rows])),
                 "median_vs_floor_mm": float(np.median(vs_floor)),
                 "p90_vs_floor_mm": float(np.percentile(vs_floor, 90)),
                 "success_vs_floor": float(np.mean(vs_floor < 2.0)),
                 "median_seconds": float(np.median([r.get("seconds", np.nan) for r in rows]))}
        ours = results.get(f"{row_name}/{OURS}", [])
        if method not in (OURS, "mi_floor") and ours:
            entry["time_ratio_to_dlreg"] = _ratios(rows, ours, "seconds")
            entry["cpu_ratio_to_dlreg"] = _ratios(rows, ours, "cpu_seconds")
        if method == OURS:
            ok = [r for r in rows if r.get("tre_mm", np.inf) < 2.0]
            entry["flag_rate_on_successes"] = float(np.mean([r["likely_failed"] for r in ok])) if ok else float("nan")
            entry["flag_rate_on_failures"] = float(np.mean([r["likely_failed"] for r in rows if r not in ok])) \
                if len(ok) < len(rows) else float("nan")
            entry["median_stage_seconds"] = {s: float(np.median([r["stages"][s] for r in rows]))
                                             for s in rows[0]["stages"]}
        out[key] = entry
    return out


def lead_table(summary: dict) -> list[str]:
    """Methods x rows: median / p90 TRE and success (the aurora row against the MI floor), then the
    median of the per-case time ratio to dlreg on the paper range."""
    rows = [r for r in (*RANGES, AURORA) if any(k.startswith(f"{r}/") for k in summary)]
    methods = list(dict.fromkeys(k.split("/")[1] for k in summary))
    head = "| method | " + " | ".join(f"{ROW_TITLES[r]}: median / p90 mm, success" for r in rows)
    lines = [head + " | s per case (paper) | time / dlreg's (paper, median of per-case ratios) |",
             "|---" * (len(rows) + 3) + "|"]
    for method in methods:
        cells = []
        for r in rows:
            v = summary.get(f"{r}/{method}")
            if v is None:
                cells.append("-")
            elif r == AURORA:
                cells.append(f"{v['median_vs_floor_mm']:.2f} / {v['p90_vs_floor_mm']:.2f}, "
                             f"{100 * v['success_vs_floor']:.0f}%")
            else:
                cells.append(f"{v['median_tre_mm']:.2f} / {v['p90_tre_mm']:.2f}, {100 * v['success_rate']:.0f}%")
        paper = summary.get(f"paper/{method}", {})
        ratio = paper.get("time_ratio_to_dlreg")
        lines.append(f"| {METHOD_TITLES.get(method, method)} | " + " | ".join(cells)
                     + f" | {paper.get('median_seconds', float('nan')):.2f} | "
                     + ("1 (reference)" if method == OURS else "-" if ratio is None else f"{ratio:.1f}x") + " |")
    return lines


def detail_table(summary: dict) -> list[str]:
    lines = ["| row | cases | median TRE (mm) | p90 TRE (mm) | median rot. err (deg) | success (<2 mm) | "
             "median vs MI floor (mm) | success vs floor | median s | time / dlreg's | CPU / dlreg's |",
             "|---" * 11 + "|"]
    for k, v in summary.items():
        lines.append(f"| {k} | {v['cases']} | {v['median_tre_mm']:.2f} | {v['p90_tre_mm']:.2f} | "
                     f"{v['median_rotation_error_deg']:.2f} | {100 * v['success_rate']:.0f}% | "
                     f"{v['median_vs_floor_mm']:.2f} | {100 * v['success_vs_floor']:.0f}% | "
                     f"{v['median_seconds']:.2f} | {v.get('time_ratio_to_dlreg', float('nan')):.1f} | "
                     f"{v.get('cpu_ratio_to_dlreg', float('nan')):.1f} |")
    return lines


def stage_lines(summary: dict) -> list[str]:
    """dlreg's median seconds per stage and its flag rates, per row."""
    lines = []
    for key, v in summary.items():
        if key.endswith(f"/{OURS}"):
            stages = ", ".join(f"{s} {t:.2f}" for s, t in v["median_stage_seconds"].items())
            failures = np.nan_to_num(v["flag_rate_on_failures"], nan=0.0)
            lines.append(f"- {key}: {stages} (median s); flagged {100 * v['flag_rate_on_successes']:.1f}% of its "
                         f"successful cases, {100 * failures:.0f}% of its failures")
    return lines


def subject_table(results: dict) -> list[str]:
    """Markdown lines: median TRE / success / cases per row and subject."""
    subjects = list(dict.fromkeys(r["subject"] for rows in results.values() for r in rows if "subject" in r))
    lines = ["| row | " + " | ".join(subjects) + " |", "|---" * (len(subjects) + 1) + "|"]
    for key, rows in results.items():
        cells = []
        for subject in subjects:
            tre = np.array([r.get("tre_mm", np.inf) for r in rows if r.get("subject") == subject])
            cells.append(f"{np.median(tre):.2f} / {100 * np.mean(tre < 2.0):.0f}% / {len(tre)}" if len(tre) else "-")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return lines


def write(results: dict, out: Path, meta: dict) -> str:
    """Write rigid3d.json and rigid3d.md under `out`; return the lead table."""
    summary = summarise(results)
    out.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "load_average_at_write": list(os.getloadavg())}
    (out / "rigid3d.json").write_text(json.dumps({"meta": meta, "summary": summary, "cases": results}, indent=1))
    lead = "\n".join(lead_table(summary))
    (out / "rigid3d.md").write_text(
        f"{lead}\n\n### Every row\n\n" + "\n".join(detail_table(summary))
        + "\n\n### dlreg per stage\n\n" + "\n".join(stage_lines(summary))
        + "\n\n### Per subject (median TRE mm / success <2 mm / cases)\n\n" + "\n".join(subject_table(results))
        + f"\n\nCommand: `{meta['command']}`; load average (1, 5, 15 min) at start {meta['load_average_at_start']}, "
          f"at this write {meta['load_average_at_write']}; {meta['cpus']} CPUs.\n")
    return lead


def plot(results: dict, path: Path) -> None:
    """TRE (log scale) against the start rotation for every method, the test rows pooled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pooled: dict[str, list[dict]] = {}
    for key, rows in results.items():
        row_name, method = key.split("/")
        if row_name in RANGES:
            pooled.setdefault(method, []).extend(r for r in rows if "tre_mm" in r)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for i, (method, rows) in enumerate(pooled.items()):
        ax.scatter([r["motion_deg"] for r in rows], [max(r["tre_mm"], 0.01) for r in rows], s=12, alpha=0.7,
                   marker="os^vDP<>"[i % 8], label=METHOD_TITLES.get(method, method))
    ax.axhline(2.0, color="grey", linestyle="--", linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel("start rotation (degrees)")
    ax.set_ylabel("TRE at the head box corners (mm)")
    ax.set_title("3D rigid, test subjects: error against start rotation (dashed: 2 mm success)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
