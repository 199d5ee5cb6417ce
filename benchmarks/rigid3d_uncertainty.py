"""Does the rigid pipeline's uncertainty track its error? Spearman(spread, TRE) of the network.

Same cases and motions as `benchmarks/rigid3d.py`; per case the default pipeline without
refinement (`refine=False`, `--samples` perturbed predictions) gives the network's TRE and
its reported spread (`uncertainty["corner_mm"]`, RMS over the head-box corners).

    .venv/bin/python benchmarks/rigid3d_uncertainty.py --data DATA_DIR --cases 30
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from devdata import DEFAULT_DATA
from rigid3d import RANGES, cases, corner_distance, moved_scan
from scipy.stats import spearmanr

from dlreg.rigid3d.pipeline import register_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--cases", type=int, default=30)
    parser.add_argument("--samples", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    data = Path(args.data)
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in RANGES}
    for case in cases(data, args.cases):
        corners, source = case.corners(), case.source(data)
        for name, motion in case.motions.items():
            result = register_images(case.fixed, moved_scan(source, motion), refine=False,
                                     n_uncertainty=args.samples)
            tre, spread = corner_distance(result.matrix, motion, corners), result.uncertainty["corner_mm"]
            rows[name].append((tre, spread))
            print(name, case.index, case.subject, case.contrast, f"TRE {tre:.2f} mm, spread {spread:.2f} mm",
                  flush=True)
    for name, values in rows.items():
        tre, spread = np.array(values).T
        print(f"{name}: Spearman(spread, TRE) {spearmanr(spread, tre).statistic:.2f}; median TRE {np.median(tre):.2f} "
              f"mm, median spread {np.median(spread):.2f} mm; TRE > 2 mm: {int(np.sum(tre > 2))} cases, their "
              f"median spread {np.median(spread[tre > 2]) if np.any(tre > 2) else float('nan'):.2f} mm")


if __name__ == "__main__":
    main()
