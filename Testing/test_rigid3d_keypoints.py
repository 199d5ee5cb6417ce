"""The keypoint estimator: closed-form fit, tiny training run, weights files, the bundled model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_rigid3d_parts import bundled_training_folder, corrupted_checkpoint, resampled_move

from dlreg.errors import WeightsError
from dlreg.imaging.geometry import apply_matrix
from dlreg.imaging.io import read_image
from dlreg.imaging.rigid import random_rigid
from dlreg.rigid3d.keypoints import kabsch
from dlreg.rigid3d.model import load_model
from dlreg.rigid3d.pipeline import register_images
from dlreg.rigid3d.preprocess import image_box_corners, prepare
from dlreg.sampledata import sample_path
from dlreg.training.rigid.keypoints import train_from_folder


def test_kabsch_recovers_a_rigid_motion_and_ignores_zero_weight_outliers():
    rng = np.random.default_rng(0)
    motion = random_rigid(rng, 40.0, 20.0)
    source = rng.uniform(-60, 60, (2, 12, 3))
    target = apply_matrix(motion, source.reshape(-1, 3)).reshape(2, 12, 3)
    target[1, :3] += 50.0  # three outliers in the second set, given no weight
    weights = np.ones((2, 12))
    weights[1, :3] = 0.0
    fitted = kabsch(torch.from_numpy(source), torch.from_numpy(target), torch.from_numpy(weights)).numpy()
    np.testing.assert_allclose(fitted, np.stack([motion, motion]), atol=1e-9)
    assert np.isclose(np.linalg.det(fitted[0, :3, :3]), 1.0)  # a rotation, never a reflection


@pytest.fixture(scope="module")
def tiny_keypoint_run(tmp_path_factory):
    """A 4-step CPU training run on two bundled subjects (one validation subject)."""
    root = tmp_path_factory.mktemp("keypoints")
    data = bundled_training_folder(root)
    steps = []
    weights = train_from_folder(data, root / "out", steps=4, batch_size=2, device="cpu", seed=0,
                                progress=lambda f, m: steps.append((f, m)))
    return weights, root, steps


def test_tiny_keypoint_training_writes_weights_card_and_resumes(tiny_keypoint_run):
    weights, root, steps = tiny_keypoint_run
    card = json.loads(weights.with_suffix(".json").read_text())
    assert card["file"] == weights.name and card["history"][-1]["step"] == 4
    assert len(card["training_groups"]["train"]) == 1 and len(card["training_groups"]["val"]) == 1
    assert np.isfinite(card["history"][-1]["val_corner_mm"])
    assert steps[-1][0] == 1.0
    model = load_model(weights, estimator="keypoints")
    assert model.iterations == 3
    again = train_from_folder(root / "data", root / "out", steps=4, batch_size=2, device="cpu", seed=0)
    assert json.loads(again.with_suffix(".json").read_text())["history"] == card["history"]


def test_keypoint_checkpoint_and_weights_errors_are_clear(tiny_keypoint_run, tmp_path):
    weights, root, _ = tiny_keypoint_run
    out = corrupted_checkpoint(tmp_path / "out", "keypoint_checkpoint.pt")
    with pytest.raises(WeightsError, match="corrupted"):
        train_from_folder(root / "data", out, steps=2, batch_size=2, device="cpu")
    with pytest.raises(WeightsError, match="not a dlreg 3D rigid 'ann' model"):
        load_model(weights, estimator="ann")
    with pytest.raises(WeightsError, match="unknown rigid estimator"):
        load_model(weights, estimator="sideways")


def test_bundled_keypoint_network_alone_aligns_a_t2_to_a_t1():
    """No refinement: the shipped network's own prediction on a 15 deg / 5 mm multi-modal case."""
    fixed = read_image(sample_path("stroke_t1_2mm.nrrd"))
    prepared = prepare(fixed)
    corners = image_box_corners(prepared.image, prepared.mask)
    motion = random_rigid(np.random.default_rng(3), 15.0, 5.0, prepared.centroid)
    moving = resampled_move(read_image(sample_path("stroke_t2_2mm.nrrd")), motion)
    before = np.linalg.norm(apply_matrix(np.eye(4), corners) - apply_matrix(motion, corners), axis=1).mean()
    result = register_images(fixed, moving, refine=False, n_uncertainty=2)
    tre = np.linalg.norm(apply_matrix(result.matrix, corners) - apply_matrix(motion, corners), axis=1).mean()
    assert result.estimator == "keypoints"
    assert tre < 3.0 < before, (tre, before)
    # both sampling frames perturbed: the passes cannot undo it, the spread is the network's own
    assert 0.05 < result.uncertainty["corner_mm"] < 5.0, result.uncertainty


def test_a_lone_volume_gets_the_landmarks_it_gets_in_a_batch():
    net = load_model(None, estimator="keypoints").net
    volumes = torch.rand(2, 64, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        batch_points, batch_weights = net(volumes)
        points, weights = net(volumes[1:])
    assert points.shape == (1, 32, 3) and weights.shape == (1, 32)
    torch.testing.assert_close(points[0], batch_points[1], atol=1e-4, rtol=0)
    torch.testing.assert_close(weights[0], batch_weights[1], atol=1e-6, rtol=1e-4)
