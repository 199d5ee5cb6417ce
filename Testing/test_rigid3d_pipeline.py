"""dlreg.rigid3d end to end: tiny training run, registration, CLI, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from test_rigid3d_parts import bundled_training_folder, corrupted_checkpoint, resampled_move

from dlreg.cli import main
from dlreg.errors import CancelledError, InputImageError, WeightsError
from dlreg.imaging.geometry import apply_matrix
from dlreg.imaging.io import read_image
from dlreg.imaging.rigid import random_rigid
from dlreg.imaging.transforms import read_transform
from dlreg.rigid3d.pipeline import register_images
from dlreg.rigid3d.preprocess import image_box_corners, prepare
from dlreg.sampledata import sample_path
from dlreg.training.rigid.dcnn_ann import train_from_folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Weights from a 2-epoch CPU training run on the bundled volumes (and the run's folder)."""
    root = tmp_path_factory.mktemp("rigid3d_train")
    data = bundled_training_folder(root)
    steps = []
    weights = train_from_folder(data, root / "out", epochs=2, n_augment=2, ann_iterations=3, device="cpu",
                                seed=0, progress=lambda f, m: steps.append((f, m)))
    return weights, root, steps


@pytest.fixture(scope="module")
def stroke_case():
    fixed = read_image(sample_path("stroke_t1_2mm.nrrd"))
    moving = read_image(sample_path("stroke_t2_2mm.nrrd"))
    prepared = prepare(fixed)
    motion = random_rigid(np.random.default_rng(3), 15.0, 5.0, prepared.centroid)
    return fixed, resampled_move(moving, motion), motion, image_box_corners(prepared.image, prepared.mask)


def test_tiny_training_run_writes_weights_card_and_checkpoint(tiny_model):
    weights, root, steps = tiny_model
    card = json.loads((root / "out" / "rigid3d_model.json").read_text())
    assert weights.is_file() and (root / "out" / "checkpoint.pt").is_file()
    assert card["file"] == weights.name and len(card["dcnn_history"]) == 2
    assert set(card["r2_validation"]) == {"dcnn", "ann_bayesian_lm", "ann_lm"}
    assert card["ann_hyperparameters"]["alpha"] > 0
    assert steps[-1][0] == 1.0
    # Resuming a finished run trains no further epoch.
    again = train_from_folder(root / "data", root / "out", epochs=2, n_augment=2, ann_iterations=3,
                              device="cpu", seed=0)
    assert json.loads((root / "out" / "rigid3d_model.json").read_text())["dcnn_history"] == card["dcnn_history"]
    assert again == weights


def test_corrupted_checkpoint_is_a_clear_error(tiny_model, tmp_path):
    _, root, _ = tiny_model
    out = corrupted_checkpoint(tmp_path / "out", "checkpoint.pt")
    with pytest.raises(WeightsError, match="corrupted"):
        train_from_folder(root / "data", out, epochs=1, n_augment=1, device="cpu")


def test_registration_with_refinement_is_accurate_and_deterministic(tiny_model, stroke_case):
    weights, _, _ = tiny_model
    fixed, moving, motion, corners = stroke_case
    steps = []
    result = register_images(fixed, moving, weights=str(weights), estimator="ann", n_uncertainty=2,
                             progress=lambda f, m: steps.append(f))
    tre = np.linalg.norm(apply_matrix(result.matrix, corners) - apply_matrix(motion, corners), axis=1)
    assert np.median(tre) < 1.5, tre
    assert steps[0] == 0.0 and steps[-1] == 1.0
    assert set(result.metrics) == {"DSC", "JSC", "Rp", "Rs", "CMS", "SSIM", "MI"}
    assert result.metrics["DSC"] > 0.85
    assert set(result.uncertainty) >= {"rotation_deg", "translation_mm", "corner_mm"}
    payload = json.loads(json.dumps(result.to_json()))
    assert np.allclose(payload["matrix_lps_fixed_to_moving"], result.matrix)
    assert list(payload["stage_seconds"]) == ["prepare", "prealign", "predict", "refine", "metrics", "checks"]
    assert set(payload["failure_checks"]) == {"DSC", "spread_mm", "landmark_residual_mm", "refinement_shift_mm",
                                              "mirror_gain", "coarsest_spacing_mm"}
    assert 0 < sum(result.timings.values()) <= result.elapsed_s
    again = register_images(fixed, moving, weights=str(weights), estimator="ann", n_uncertainty=2)
    assert again.matrix.tobytes() == result.matrix.tobytes()


def test_cancel_stops_the_registration(tiny_model, stroke_case):
    fixed, moving, _, _ = stroke_case
    calls = []
    with pytest.raises(CancelledError):
        register_images(fixed, moving, weights=str(tiny_model[0]), estimator="ann",
                        progress=lambda f, m: calls.append(f) or len(calls) < 2)
    assert len(calls) == 2


def test_cli_register3d_writes_transform_and_json(tiny_model, stroke_case, tmp_path, capsys):
    fixed, moving, _, _ = stroke_case
    sitk.WriteImage(fixed, str(tmp_path / "fixed.nrrd"))
    sitk.WriteImage(moving, str(tmp_path / "moving.nrrd"))
    code = main(["register3d", str(tmp_path / "fixed.nrrd"), str(tmp_path / "moving.nrrd"),
                 "--output-transform", str(tmp_path / "t.tfm"), "--output-image",
                 str(tmp_path / "r.nii.gz"), "--no-refine", "--n-uncertainty", "1",
                 "--weights", str(tiny_model[0]), "--estimator", "ann", "--json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose(read_transform(tmp_path / "t.tfm"), payload["matrix_lps_fixed_to_moving"],
                               atol=1e-6)
    assert payload["refined"] is False and read_image(tmp_path / "r.nii.gz").GetSize() == fixed.GetSize()


def test_two_dimensional_input_is_refused(tiny_model, stroke_case):
    fixed, _, _, _ = stroke_case
    picture = read_image(sample_path("stroke_t2_axial.png"))
    with pytest.raises(InputImageError, match="not a 3D volume"):
        register_images(fixed, picture, weights=str(tiny_model[0]), estimator="ann")
    with pytest.raises(InputImageError, match="fixed image"):  # both bad: the fixed one is named
        register_images(picture, picture, weights=str(tiny_model[0]), estimator="ann")


def test_empty_head_mask_is_refused(tiny_model, stroke_case):
    fixed, _, _, _ = stroke_case
    blank = sitk.Image(fixed.GetSize(), sitk.sitkFloat32)
    blank.CopyInformation(fixed)
    blank[5, 5, 5], blank[6, 5, 5] = 100.0, 50.0  # a speck, no head
    with pytest.raises(InputImageError, match="moving image: the head mask is empty"):
        register_images(fixed, blank, weights=str(tiny_model[0]), estimator="ann")


def test_mismatched_weights_are_refused(tmp_path, stroke_case):
    fixed, moving, _, _ = stroke_case
    other = tmp_path / "other.pt"
    torch.save({"features.0.weight": torch.zeros(3)}, other)
    with pytest.raises(WeightsError, match="not a dlreg 3D rigid .keypoints. model"):
        register_images(fixed, moving, weights=str(other))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsError, match="cannot read"):
        register_images(fixed, moving, weights=str(garbage))
