"""register3d reliability: byte-identical repeats, thin and anisotropic volumes, mirrored headers."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from test_rigid3d_parts import resampled_move

from dlreg.errors import InputImageError
from dlreg.imaging.geometry import apply_matrix
from dlreg.imaging.io import read_image
from dlreg.imaging.rigid import random_rigid
from dlreg.rigid3d.pipeline import register_images
from dlreg.rigid3d.preprocess import image_box_corners, prepare
from dlreg.sampledata import sample_path


@pytest.fixture(scope="module")
def stroke_pair():
    """Bundled stroke T1 (fixed) and T2 moved by up to 15 degrees / 5 mm, with the motion and the
    fixed head's box corners."""
    fixed = read_image(sample_path("stroke_t1_2mm.nrrd"))
    prepared = prepare(fixed)
    motion = random_rigid(np.random.default_rng(11), 15.0, 5.0, prepared.centroid)
    moving = resampled_move(read_image(sample_path("stroke_t2_2mm.nrrd")), motion)
    return fixed, moving, motion, image_box_corners(prepared.image, prepared.mask)


def corner_error(matrix: np.ndarray, motion: np.ndarray, corners: np.ndarray) -> float:
    return float(np.linalg.norm(apply_matrix(matrix, corners) - apply_matrix(motion, corners), axis=1).mean())


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlreg", *args], capture_output=True, text=True, timeout=300)


def test_same_inputs_and_seed_give_the_same_bytes_on_several_threads(stroke_pair):
    fixed, moving, motion, corners = stroke_pair
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(2, threads))
    try:
        first = register_images(fixed, moving, n_uncertainty=2, seed=7)
        second = register_images(fixed, moving, n_uncertainty=2, seed=7)
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    assert first.refined and first.matrix.tobytes() == second.matrix.tobytes()
    assert first.uncertainty == second.uncertainty and first.checks == second.checks
    assert corner_error(first.matrix, motion, corners) < 1.5
    assert not first.likely_failed, first.failure_reasons


def test_cli_run_twice_writes_identical_transform_files(stroke_pair, tmp_path):
    fixed, moving, _, _ = stroke_pair
    sitk.WriteImage(fixed, str(tmp_path / "fixed.nrrd"))
    sitk.WriteImage(moving, str(tmp_path / "moving.nrrd"))
    for name in ("a.tfm", "b.tfm"):
        result = run_cli("register3d", str(tmp_path / "fixed.nrrd"), str(tmp_path / "moving.nrrd"),
                         "--output-transform", str(tmp_path / name), "--seed", "7", "--uncertainty", "2")
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "a.tfm").read_bytes() == (tmp_path / "b.tfm").read_bytes()


def _resampled(image: sitk.Image, size, spacing) -> sitk.Image:
    """`image` resampled (linear) on an axis-aligned grid of `size` x `spacing` centred on it."""
    center = image.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2.0 for s in image.GetSize()])
    origin = np.asarray(center) - (np.asarray(size) - 1) / 2.0 * np.asarray(spacing)
    return sitk.Resample(image, [int(s) for s in size], sitk.Transform(), sitk.sitkLinear, origin.tolist(),
                         [float(s) for s in spacing], np.eye(3).ravel().tolist(), 0.0, sitk.sitkFloat32)


@pytest.mark.parametrize("size, spacing, thin", [((240, 240, 10), (0.5, 0.5, 0.5), "5.0 mm along its axis 2"),
                                                 ((62, 62, 62), (0.1, 0.1, 10.0), "6.2 mm along its axis 0")])
def test_thin_or_anisotropic_volumes_are_one_clear_error(stroke_pair, tmp_path, size, spacing, thin):
    fixed, _, _, _ = stroke_pair
    slab = _resampled(fixed, size, spacing)
    with pytest.raises(InputImageError, match=f"moving image covers only {thin}"):
        register_images(fixed, slab, n_uncertainty=0)
    sitk.WriteImage(fixed, str(tmp_path / "fixed.nrrd"))
    sitk.WriteImage(slab, str(tmp_path / "slab.nrrd"))
    result = run_cli("register3d", str(tmp_path / "fixed.nrrd"), str(tmp_path / "slab.nrrd"),
                     "--output-transform", str(tmp_path / "t.tfm"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "at least 20 mm along every axis" in result.stderr and "Traceback" not in result.stderr


def test_thick_slices_register(stroke_pair):
    fixed, moving, motion, corners = stroke_pair
    thick = _resampled(moving, (120, 120, 25), (2.0, 2.0, 7.0))  # 7 mm slices: 25 voxels of the working grid
    result = register_images(fixed, thick, n_uncertainty=0)
    assert corner_error(result.matrix, motion, corners) < 2.0
    assert not result.likely_failed, result.failure_reasons


def _mirrored_header(image: sitk.Image) -> sitk.Image:
    """The same voxels with the first index axis pointing the other way: a mirror image."""
    direction = np.asarray(image.GetDirection()).reshape(3, 3).copy()
    direction[:, 0] *= -1.0
    out = sitk.Image(image)
    out.SetDirection(direction.ravel().tolist())
    return out


def test_a_mirrored_header_is_flagged_in_the_result_and_the_cli(stroke_pair, tmp_path):
    fixed, moving, _, _ = stroke_pair
    mirrored = _mirrored_header(moving)
    result = register_images(fixed, mirrored, n_uncertainty=0)
    assert result.likely_failed and result.checks["mirror_gain"] > 0.05
    assert any("mirror image" in reason for reason in result.failure_reasons)
    sitk.WriteImage(fixed, str(tmp_path / "fixed.nrrd"))
    sitk.WriteImage(mirrored, str(tmp_path / "mirrored.nrrd"))
    args = ("register3d", str(tmp_path / "fixed.nrrd"), str(tmp_path / "mirrored.nrrd"), "--output-transform",
            str(tmp_path / "t.tfm"), "--uncertainty", "0")
    payload = json.loads(run_cli(*args, "--json").stdout)
    assert payload["likely_failed"] and payload["failure_checks"]["mirror_gain"] > 0.05
    text = run_cli(*args)
    assert text.returncode == 0 and "LIKELY FAILED" in text.stdout and "mirror image" in text.stdout
