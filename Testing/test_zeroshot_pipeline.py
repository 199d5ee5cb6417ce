"""register_arrays and the CLI on the shipped sample slices (stroke T1 / T2, 124x160)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from dlreg.errors import InputImageError, MismatchedInputsError
from dlreg.sampledata import SAMPLE_DATA_DIR
from dlreg.zeroshot import register_arrays
from dlreg.zeroshot.warping import warp

SAMPLE = SAMPLE_DATA_DIR


def load(name: str) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(SAMPLE / name))).astype(np.float32)


@pytest.fixture(scope="module")
def pair():
    """Fixed T1, moving T2 resampled through a known fixed->moving affine."""
    t1, t2 = load("stroke_t1_axial.png"), load("stroke_t2_axial.png")
    h, w = t1.shape
    th = 0.15
    true = np.eye(3)
    true[:2, :2] = [[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    true[:2, 2] = c - true[:2, :2] @ c + [6.0, -4.0]
    moving = warp(torch.from_numpy(t2)[None], np.linalg.inv(true))[0].numpy()
    return t1, moving, true


def grid_error(a: np.ndarray, b: np.ndarray, shape) -> float:
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    p = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    d = (a - b)[:2] @ p
    return float(np.hypot(d[0], d[1]).mean())


def test_default_mode_recovers_known_transform_multimodal(pair):
    fixed, moving, true = pair
    before = (fixed.copy(), moving.copy())
    res = register_arrays(fixed, moving, n_uncertainty=4, seed=0)
    assert grid_error(res.matrix, true, fixed.shape) < 1.5
    assert np.array_equal(fixed, before[0]) and np.array_equal(moving, before[1])  # inputs untouched
    assert res.uncertainty_map.shape == fixed.shape and np.all(res.uncertainty_map >= 0)
    assert res.resampled.shape == fixed.shape and res.param_variance.shape == (6,)
    assert res.metrics_after["mi"] > res.metrics_before["mi"]
    assert res.metrics_after["dice"] > res.metrics_before["dice"]
    json.dumps(res.to_json())


def test_same_seed_same_result(pair):
    fixed, moving, _ = pair
    a = register_arrays(fixed, moving, n_uncertainty=3, seed=7)
    b = register_arrays(fixed, moving, n_uncertainty=3, seed=7)
    assert np.array_equal(a.matrix, b.matrix) and np.array_equal(a.uncertainty_map, b.uncertainty_map)


def test_paper_mode_runs_literally(pair):
    fixed, moving, _ = pair
    res = register_arrays(fixed, moving, mode="paper", n_uncertainty=3, seed=0)
    assert res.mode == "paper" and res.estimator == "mlp" and res.details["refined"] is False
    assert res.details["keypoints"] <= 128 and np.isfinite(res.matrix).all()
    assert res.uncertainty_summary["runs"] == 3


@pytest.mark.parametrize("estimator", ["closed-form", "robust"])
def test_other_estimators_in_paper_mode(pair, estimator):
    fixed, moving, _ = pair
    res = register_arrays(fixed, moving, mode="paper", estimator=estimator, n_uncertainty=0)
    assert res.estimator == estimator and np.isfinite(res.matrix).all()


def test_bad_inputs_give_clear_errors(pair):
    fixed, moving, _ = pair
    with pytest.raises(MismatchedInputsError, match="same size"):
        register_arrays(fixed, moving[:-4])
    with pytest.raises(InputImageError, match="blank"):
        register_arrays(fixed, np.zeros_like(moving))
    bad = moving.copy()
    bad[3, 3] = np.nan
    with pytest.raises(InputImageError, match="NaN"):
        register_arrays(fixed, bad)
    with pytest.raises(InputImageError, match="2D"):
        register_arrays(np.stack([fixed, fixed]), np.stack([moving, moving]))


def test_no_overlap_is_an_error(pair):
    fixed, _, _ = pair
    h, w = fixed.shape
    moving = np.zeros_like(fixed)
    moving[:6, :6] = 1.0  # a speck in a corner: nothing in common with the brain
    with pytest.raises(MismatchedInputsError, match="overlap|common"):
        register_arrays(fixed, moving, n_uncertainty=0)


def test_cli_register2d_and_train(tmp_path, capsys):
    from dlreg.cli import main

    out = tmp_path / "t.tfm"
    code = main(["register2d", str(SAMPLE / "stroke_t1_axial.png"), str(SAMPLE / "stroke_t2_axial.png"),
                 "--output-transform", str(out), "--output-uncertainty", str(tmp_path / "u.nii.gz"),
                 "--output-image", str(tmp_path / "r.nii.gz"), "--n-uncertainty", "3"])
    assert code == 0 and out.is_file() and (tmp_path / "u.nii.gz").is_file()
    code = main(["train-affine-mlp", "--steps", "5", "--batch-size", "16", "--output", str(tmp_path / "m.pt")])
    card = json.loads((tmp_path / "m.json").read_text())
    assert code == 0 and card["file"] == "m.pt" and len(card["sha256"]) == 64
    assert "deprecated" not in capsys.readouterr().err


def test_old_cli_spellings_still_work_with_a_deprecation_message(tmp_path, capsys):
    from dlreg.cli import main

    code = main(["register2d", str(SAMPLE / "stroke_t1_axial.png"), str(SAMPLE / "stroke_t2_axial.png"),
                 "--output-transform", str(tmp_path / "t.tfm"), "--uncertainty", str(tmp_path / "u.nii.gz"),
                 "--n-uncertainty", "2"])
    assert code == 0 and (tmp_path / "u.nii.gz").is_file()
    assert "--uncertainty is deprecated" in capsys.readouterr().err
    code = main(["train-affine-mlp", "--steps", "3", "--batch", "8", "--out", str(tmp_path / "m.pt")])
    err = capsys.readouterr().err
    assert code == 0 and (tmp_path / "m.pt").is_file()
    assert "--batch is deprecated" in err and "--out is deprecated" in err


def test_cli_refuses_a_volume_without_slice(tmp_path, capsys):
    from dlreg.cli import main

    volume = SAMPLE / "stroke_t1_2mm.nrrd"
    code = main(["register2d", str(volume), str(volume), "--output-transform", str(tmp_path / "t.tfm")])
    assert code == 2 and "--slice" in capsys.readouterr().err
