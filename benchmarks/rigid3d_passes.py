"""How many passes the keypoint network needs: TRE of the network alone after each pass.

Same cases and motions as `benchmarks/rigid3d.py`; per case, the pipeline's own frames
(centroid shift on the paper range, PCA pre-alignment on the wide range), then `--passes`
predictions, each from the moving volume re-sampled in the frame the previous one moved.

    .venv/bin/python benchmarks/rigid3d_passes.py --data DATA_DIR --cases 30 --passes 4
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from devdata import DEFAULT_DATA
from rigid3d import RANGES, cases, corner_distance, moved_scan

from dlreg.rigid3d.model import load_model
from dlreg.rigid3d.pipeline import fixed_frame, moving_frame
from dlreg.rigid3d.preprocess import prepare, sample_canonical


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--cases", type=int, default=30)
    parser.add_argument("--passes", type=int, default=4)
    parser.add_argument("--weights", default=None, help="keypoint model weights (default: bundled)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    data = Path(args.data)
    model = load_model(args.weights, "cpu", "keypoints")
    tre: dict[str, list[list[float]]] = {name: [] for name in RANGES}
    for case in cases(data, args.cases):
        prep_f, corners, source = case.prepared, case.corners(), case.source(data)
        frame_f = fixed_frame(prep_f)
        fixed_c = torch.from_numpy(sample_canonical(prep_f.image, frame_f))[None]
        for name, motion in case.motions.items():
            prep_m = prepare(moved_scan(source, motion))
            frame_m, _ = moving_frame(prep_f, prep_m, frame_f, pca=name == "wide")
            row = [corner_distance(frame_m @ np.linalg.inv(frame_f), motion, corners)]
            for _ in range(args.passes):
                moving_c = torch.from_numpy(sample_canonical(prep_m.image, frame_m))[None]
                step, fixed_c, _ = model.transforms(fixed_c, moving_c)
                frame_m = frame_m @ step[0]
                row.append(corner_distance(frame_m @ np.linalg.inv(frame_f), motion, corners))
            tre[name].append(row)
            print(name, case.index, case.subject, case.contrast, " ".join(f"{v:.2f}" for v in row), flush=True)
    for name, rows in tre.items():
        values = np.array(rows)
        cells = [f"{np.median(values[:, p]):.2f} mm / {100 * np.mean(values[:, p] < 2.0):.0f}%"
                 for p in range(values.shape[1])]
        print(f"{name}: start {cells[0]}; " + "; ".join(f"{p} pass(es) {c}" for p, c in enumerate(cells[1:], 1)))


if __name__ == "__main__":
    main()
