"""The keypoint trainer under torchrun: 2 CPU processes (gloo) average their gradients (DDP)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import torch

from dlreg.rigid3d.keypoints import KeypointDCNN
from dlreg.sampledata import SAMPLE_DATA_DIR
from dlreg.training.rigid.keypoints import cube_corners, draw_pairs, groups_from_pairs, pair_loss, prepare_groups

SEED, LR = 3, 2e-3


def one_step(groups, rngs) -> dict[str, torch.Tensor]:
    """Parameters after one Adam step on the mean of the losses of one pair per random stream."""
    torch.manual_seed(SEED)
    model = KeypointDCNN()
    optimiser = torch.optim.Adam(model.parameters(), lr=LR / 10)  # a 1-step run is all in the last quarter
    model.train()
    corners = torch.from_numpy(cube_corners())
    for rng in rngs:
        fixed, moving, motions = draw_pairs(groups, 1, rng)
        (pair_loss(model, fixed, moving, motions, corners)[0] / len(rngs)).backward()
    optimiser.step()
    return {name: p.detach() for name, p in model.named_parameters()}


def test_two_processes_train_as_one_with_the_averaged_gradient(tmp_path):
    data = tmp_path / "data" / "subject"
    data.mkdir(parents=True)
    for contrast in ("t1", "t2", "flair"):
        shutil.copy(SAMPLE_DATA_DIR / f"stroke_{contrast}_2mm.nrrd", data)
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "dlreg", "train-rigid", str(data.parent), "--output", str(out), "--steps", "1",
                          "--batch-size", "1", "--lr", str(LR), "--device", "cpu", "--seed", str(SEED)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    trained = torch.load(out / "keypoint_checkpoint.pt", weights_only=False)
    assert trained["config"]["processes"] == 2 and (out / "rigid3d_keypoints.json").is_file()

    train, _ = groups_from_pairs(data.parent, SEED)
    groups = prepare_groups(train)
    both = one_step(groups, [np.random.default_rng([SEED, 0, rank]) for rank in (0, 1)])
    alone = one_step(groups, [np.random.default_rng([SEED, 0, 0])])
    state = trained["model"]
    # Adam's first step moves each weight by about +-lr, its gradient's sign: the averaged gradient
    # decides it, and process 0's own gradient alone would move many weights the other way. (The
    # heatmap biases get no gradient but rounding noise: a softmax ignores a constant.)
    def agreement(expected: dict) -> float:
        same = sum(int(torch.isclose(state[n], p, atol=1e-4 * LR).sum()) for n, p in expected.items())
        return same / sum(p.numel() for p in expected.values())

    assert agreement(both) > 0.999 and agreement(alone) < 0.9, (agreement(both), agreement(alone))
