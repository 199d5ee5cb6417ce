"""dlreg.rigid3d parts on their own: augmentation, ground truth, DCNN, Bayesian-LM ANN, metrics,
MI refinement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from dlreg.errors import InputImageError
from dlreg.imaging.geometry import apply_matrix
from dlreg.imaging.io import read_image
from dlreg.imaging.rigid import (
    axis_angle_matrix,
    cube_rotations,
    move_image,
    principal_frame,
    random_rigid,
    rotation_angle_deg,
)
from dlreg.rigid3d.ann import ANNModel
from dlreg.rigid3d.dcnn import N_FEATURES, RigidDCNN
from dlreg.rigid3d.preprocess import image_box_corners, prepare
from dlreg.rigid3d.quality import overlap_metrics
from dlreg.rigid3d.refine import crop_to_head, refine_rigid
from dlreg.sampledata import sample_path
from dlreg.training.rigid.ann_lm import r_squared, train_lm
from dlreg.training.rigid.augmentation import augment_image, augment_pairs
from dlreg.training.rigid.groundtruth import generate_ground_truth


def resampled_move(image: sitk.Image, motion: np.ndarray) -> sitk.Image:
    """Moved by `motion` and interpolated onto an axis-aligned grid (a realistic moving scan)."""
    moved = move_image(image, motion)
    return sitk.Resample(moved, image.GetSize(), sitk.Transform(), sitk.sitkLinear,
                         (np.asarray(image.GetOrigin()) + motion[:3, 3]).tolist(), image.GetSpacing(),
                         image.GetDirection(), 0.0, sitk.sitkFloat32)


def bundled_training_folder(root: Path) -> Path:
    """A training folder of bundled volumes: stroke (T1 + T2) and mni (one T1, a self pair)."""
    data = root / "data"
    for subject, names in {"stroke": ("stroke_t1_2mm.nrrd", "stroke_t2_2mm.nrrd"),
                           "mni": ("mni_t1_2mm.nrrd",)}.items():
        (data / subject).mkdir(parents=True)
        for name in names:
            (data / subject / name).symlink_to(sample_path(name))
    return data


def corrupted_checkpoint(folder: Path, name: str) -> Path:
    """`folder` (created) holding a checkpoint file `name` that is not a checkpoint."""
    folder.mkdir()
    (folder / name).write_bytes(b"not a checkpoint")
    return folder


def test_random_rigid_respects_ranges():
    rng = np.random.default_rng(0)
    center = np.array([10.0, -20.0, 30.0])
    motions = [random_rigid(rng, 15.0, 5.0, center) for _ in range(500)]
    angles = np.array([rotation_angle_deg(m) for m in motions])
    shifts = np.array([apply_matrix(m, center) - center for m in motions])
    assert angles.max() <= 15.0 + 1e-9 and angles.max() > 13.0
    assert np.abs(shifts).max() <= 5.0 + 1e-9 and np.abs(shifts).max() > 4.5
    for m in motions[:20]:
        np.testing.assert_allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-12)
        assert np.linalg.det(m[:3, :3]) == pytest.approx(1.0)
    wide = [rotation_angle_deg(random_rigid(rng, 90.0, 30.0)) for _ in range(200)]
    assert max(wide) > 60.0


def test_augmentation_keeps_splits_and_is_seeded():
    aug = augment_pairs(["train", "val", "train"], 4, seed=3)
    assert len(aug) == 12
    assert [a.split for a in aug] == ["train"] * 4 + ["val"] * 4 + ["train"] * 4
    again = augment_pairs(["train", "val", "train"], 4, seed=3)
    assert all(np.array_equal(a.motion, b.motion) for a, b in zip(aug, again))


def test_move_image_is_exact(stroke_t1):
    [(moved, motion)] = augment_image(stroke_t1, 1, seed=1)
    index = [10, 20, 30]
    before = np.asarray(stroke_t1.TransformIndexToPhysicalPoint(index))
    after = np.asarray(moved.TransformIndexToPhysicalPoint(index))
    np.testing.assert_allclose(after, apply_matrix(motion, before), atol=1e-6)
    assert moved[index] == stroke_t1[index]


def test_principal_frame_follows_the_head():
    rng = np.random.default_rng(0)
    # A skewed ellipsoid-like cloud: distinct variances and third moments on every axis.
    cloud = rng.gamma(2.0, 1.0, size=(5000, 3)) * [30.0, 20.0, 10.0]
    motion = random_rigid(np.random.default_rng(1), 90.0, 30.0)
    frame = principal_frame(cloud)
    moved_frame = principal_frame(apply_matrix(motion, cloud))
    np.testing.assert_allclose(moved_frame, motion @ frame, atol=1e-6)
    assert np.linalg.det(frame[:3, :3]) == pytest.approx(1.0)


def test_cube_rotations_are_the_24_proper_ones():
    rots = cube_rotations()
    assert len(rots) == 24 and np.array_equal(rots[0], np.eye(3))
    assert all(np.isclose(np.linalg.det(r), 1.0) for r in rots)
    assert len({r.tobytes() for r in rots}) == 24


def test_ground_truth_recovers_a_known_transform():
    fixed = read_image(sample_path("stroke_t1_2mm.nrrd"))
    moving = read_image(sample_path("stroke_t2_2mm.nrrd"))
    prepared = prepare(fixed)
    motion = random_rigid(np.random.default_rng(7), 15.0, 5.0, prepared.centroid)  # 4 mm grid: ~1 mm
    truth = generate_ground_truth(fixed, resampled_move(moving, motion), spacing=4.0, seed=0)
    corners = image_box_corners(prepared.image, prepared.mask)
    tre = np.linalg.norm(apply_matrix(truth, corners) - apply_matrix(motion, corners), axis=1)
    assert np.median(tre) < 2.0, tre


def test_dcnn_shapes_and_features():
    torch.manual_seed(0)
    model = RigidDCNN().eval()
    fixed, moving = torch.rand(2, 64, 64, 64), torch.rand(2, 64, 64, 64)
    with torch.no_grad():
        assert model(fixed, moving).shape == (2, 6)
        assert model.pair_features(fixed, moving).shape == (2, 2 * N_FEATURES)
    assert N_FEATURES == 128
    assert any(isinstance(m, torch.nn.LeakyReLU) and m.negative_slope == 0.1 for m in model.modules())
    assert sum(p.numel() for p in model.parameters()) * 4 < 4e6  # a few MB at most


def _regression_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 20))
    w = np.random.default_rng(100).normal(size=(20, 6)) / 4
    return x, np.tanh(x @ w) + 0.3 * rng.normal(size=(n, 6))


def test_bayesian_regularisation_updates_hyperparameters_and_generalises():
    x, y = _regression_data(60, 0)
    x_val, y_val = _regression_data(300, 1)
    br = train_lm(x, y, bayesian=True, iterations=25, x_val=x_val, y_val=y_val, seed=0)
    lm = train_lm(x, y, bayesian=False, iterations=25, x_val=x_val, y_val=y_val, seed=0)
    hist = br.history
    n_params = br.w1.size + br.b1.size + br.w2.size + br.b2.size
    assert len({round(h["alpha"], 6) for h in hist}) > 5 and len({round(h["beta"], 6) for h in hist}) > 5
    assert 0 < br.gamma < n_params  # effective number of parameters below the count
    assert br.alpha > 0 and br.beta > 0 and lm.alpha == 0 and lm.beta == 1
    assert hist[-1]["val_mse"] < hist[0]["val_mse"]  # validation error fell during training
    assert hist[-1]["val_mse"] < lm.history[-1]["val_mse"]  # and ends below plain LM's
    assert r_squared(y_val, br.predict(x_val)) > r_squared(y_val, lm.predict(x_val))
    again = ANNModel.from_state(br.state())
    np.testing.assert_allclose(again.predict(x_val), br.predict(x_val))


def test_overlap_metrics_match_the_paper_definitions():
    x = np.zeros((10, 10, 10), bool)
    y = np.zeros_like(x)
    x[:5], y[3:8] = True, True  # |x| = |y| = 500, |x&y| = 200, |x|y| = 800
    m = overlap_metrics(x, y)
    assert m["DSC"] == pytest.approx(0.4) and m["JSC"] == pytest.approx(0.25)
    assert m["Rp"] == pytest.approx(0.4) and m["Rs"] == pytest.approx(0.4) and m["CMS"] == pytest.approx(0.4)


def test_refinement_recovers_a_start_10_mm_and_10_degrees_off_deterministically():
    fixed = read_image(sample_path("stroke_t1_2mm.nrrd"))
    prep_f = prepare(fixed)
    motion = random_rigid(np.random.default_rng(5), 15.0, 5.0, prep_f.centroid)
    moving = resampled_move(fixed, motion)  # mono-modal: the truth is exact
    prep_m = prepare(moving)
    offset = np.eye(4)  # 10 degrees about an oblique axis through the head centre, then 6 mm
    offset[:3, :3] = axis_angle_matrix((1.0, 1.0, 0.5), np.radians(10.0))
    offset[:3, 3] = prep_f.centroid - offset[:3, :3] @ prep_f.centroid + (6.0, 0.0, 0.0)
    start = motion @ offset
    corners = image_box_corners(prep_f.image, prep_f.mask)

    def tre(matrix: np.ndarray) -> float:
        return float(np.linalg.norm(apply_matrix(matrix, corners) - apply_matrix(motion, corners), axis=1).mean())

    assert tre(start) > 10.0, tre(start)
    refined = refine_rigid(prep_f, prep_m, start, fixed_image=fixed, moving_image=moving, seed=0)
    assert tre(refined) < 0.5, tre(refined)
    again = refine_rigid(prep_f, prep_m, start, fixed_image=fixed, moving_image=moving, seed=0)
    np.testing.assert_allclose(again, refined, atol=1e-9)


def test_refinement_refuses_a_volume_that_misses_the_head():
    fixed = read_image(sample_path("stroke_t1_2mm.nrrd"))
    elsewhere = sitk.Image(fixed)
    elsewhere.SetOrigin((np.asarray(fixed.GetOrigin()) + 1000.0).tolist())
    with pytest.raises(InputImageError, match="head mask does not lie inside"):
        crop_to_head(elsewhere, prepare(fixed))


def test_head_mask_closing_and_filling_within_the_box_equals_the_whole_grid():
    from dlreg.rigid3d.preprocess import CLOSING_RADIUS, _close_and_fill_within_box
    rng = np.random.default_rng(4)
    a = np.zeros((30, 40, 50), np.uint8)
    a[5:30, 8:30, 0:35] = 1  # touches two faces of the grid
    a[rng.random(a.shape) < 0.08] = 0  # pepper holes for the closing to fill
    a[12, 15, 20:23] = 0
    a[14:22, 14:22, 12:22] = 0  # a cavity wider than the closing: only the hole filling closes it
    mask = sitk.GetImageFromArray(a)
    whole = sitk.BinaryFillhole(sitk.BinaryMorphologicalClosing(mask, [CLOSING_RADIUS] * 3))
    assert sitk.GetArrayFromImage(whole)[18, 18, 17] == 1
    boxed = _close_and_fill_within_box(mask, CLOSING_RADIUS)
    assert np.array_equal(sitk.GetArrayFromImage(boxed), sitk.GetArrayFromImage(whole))
    assert sitk.GetArrayFromImage(boxed).sum() > a.sum()


def test_axis_permuted_sample_equals_sampling_the_rotated_frame():
    from dlreg.rigid3d.pipeline import axis_permuted
    from dlreg.rigid3d.preprocess import sample_canonical

    prepared = prepare(read_image(sample_path("stroke_t1_2mm.nrrd")))
    frame = principal_frame(prepared.points)
    base = sample_canonical(prepared.image, frame, 32, 8.0)
    for rotation in cube_rotations():
        rotated = frame.copy()
        rotated[:3, :3] = frame[:3, :3] @ rotation
        np.testing.assert_allclose(axis_permuted(base, rotation), sample_canonical(prepared.image, rotated, 32, 8.0),
                                   atol=1e-4)
