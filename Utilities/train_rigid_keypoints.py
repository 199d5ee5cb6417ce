"""Train the bundled keypoint model of dlreg.rigid3d (`dlreg/models/rigid3d_keypoints.pt`).

Groups (co-registered volumes of one subject) come from `benchmarks/devdata.load_volumes`:
the real contrasts of the shared subjects, the MNI sample, Colin27 and the InVesalius head
CT where installed, each T1 with its painted pseudo-CT, pseudo-T2 and pseudo-FLAIR.
tcga_du_7294 is held out for validation (never trained on). One thread, CPU:

    OMP_NUM_THREADS=1 .venv/bin/python Utilities/train_rigid_keypoints.py --data ../shared/data \
        --output /tmp/kp --steps 1500
    cp /tmp/kp/rigid3d_keypoints.* dlreg/models/
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import SimpleITK as sitk
import torch

from dlreg.progress import log_progress
from dlreg.training.rigid.keypoints import JITTER, MOTION, prepare_groups, save_with_card, train_keypoints

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from devdata import DEFAULT_DATA, load_volumes  # noqa: E402

VALIDATION = "tcga_du_7294"
LIMITS = [
    "Trained on 3 patients (aurora, brats, stroke), the MNI and Colin27 T1 templates and one real "
    "head CT, with pseudo-CT/T2/FLAIR volumes painted from the T1s: expect larger errors on other "
    "scanners, children, heavy pathology or a different field of view.",
    "Skull-stripped brain MR dominates; MR with skull is represented by Colin27 alone, real CT by one "
    "scan (no real CT/MR pair).",
    "Trained for residual motions up to 20 degrees and 8 mm in the head frame: larger misalignments "
    "need the PCA pre-alignment (on by default) and are corrected over the repeated passes.",
    "The network's prediction is a starting point; the default pipeline refines it by mutual information.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--output", required=True)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    groups: dict[str, list] = defaultdict(list)
    names: dict[str, list] = defaultdict(list)
    for volume in load_volumes(args.data):
        groups[volume.subject].append(volume.image)
        names[volume.subject].append(volume.name)
    prepared = prepare_groups(groups)
    train = [g for g in prepared if g.name != VALIDATION]
    val = [g for g in prepared if g.name == VALIDATION]
    model, history = train_keypoints(train, val, args.output, steps=args.steps, seed=args.seed, device="cpu",
                                     progress=log_progress)
    weights = save_with_card(model, Path(args.output) / "rigid3d_keypoints.pt", history, {
        "license": "MIT (weights trained by this project)",
        "training_groups": {g.name: names[g.name] for g in train},
        "validation_groups": {g.name: names[g.name] for g in val},
        "recipe": {"steps": args.steps, "batch": 4, "lr": 2e-3, "seed": args.seed, "optimizer": "Adam",
                   "motion_deg_mm": MOTION, "frame_jitter_deg_mm": JITTER,
                   "command": "Utilities/train_rigid_keypoints.py"},
        "data_licences": "see dlreg/models/modality_dcnn.json (same sources; the InVesalius CT is "
                         "GPL-2 and read at run time, not shipped)",
        "limits": LIMITS})
    print(weights)


if __name__ == "__main__":
    main()
