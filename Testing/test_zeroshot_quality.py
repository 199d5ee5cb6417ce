"""The zero-shot failure flag (edge lock), the mutual-information stage and the contrast choice."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from dlreg.sampledata import sample_path
from dlreg.zeroshot import register_arrays, search
from dlreg.zeroshot.features import robust_unit
from dlreg.zeroshot.modes import SAME_CONTRAST, contrast_correlation
from dlreg.zeroshot.mutual_info import MutualInformation, refine_mi
from dlreg.zeroshot.quality import LOCK_MIN
from dlreg.zeroshot.refine import edge_lock
from dlreg.zeroshot.warping import warp


def load(name: str) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(sample_path(name)))).astype(np.float32)


def moved(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """image resampled so that fixed pixel p shows image(matrix p)."""
    return warp(torch.from_numpy(image)[None], np.linalg.inv(matrix))[0].numpy()


def known_affine(shape, theta=0.1, shift=(5.0, -3.0), shear=0.02) -> np.ndarray:
    h, w = shape
    m = np.eye(3)
    m[:2, :2] = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]) @ [[1, shear], [0, 1]]
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    m[:2, 2] = c - m[:2, :2] @ c + shift
    return m


def grid_error(a: np.ndarray, b: np.ndarray, shape) -> float:
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    d = (a - b)[:2] @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    return float(np.hypot(d[0], d[1]).mean())


@pytest.fixture(scope="module")
def stroke():
    return load("stroke_t1_axial.png"), load("stroke_t2_axial.png")


def test_edge_lock_is_one_for_an_image_against_itself_and_near_zero_for_noise(stroke):
    t1 = robust_unit(stroke[0])
    eye = torch.eye(3, dtype=torch.float64)
    assert edge_lock(t1, t1[None], eye, 2.0) == pytest.approx(1.0, abs=1e-6)
    noise = torch.from_numpy(np.random.default_rng(0).uniform(0, 1, t1.shape).astype(np.float32))
    assert abs(edge_lock(t1, noise[None], eye, 2.0)) < 0.1


def test_a_good_registration_is_not_flagged_and_noise_is(stroke):
    t1, t2 = stroke
    true = known_affine(t1.shape)
    good = register_arrays(t1, moved(t2, true), n_uncertainty=3, seed=0)
    assert grid_error(good.matrix, true, t1.shape) < 1.0
    assert not good.likely_failed and good.failure_reasons == []
    assert good.uncertainty_summary["confidence"] > LOCK_MIN
    noise = np.random.default_rng(1).uniform(0, float(t2.max()), t2.shape).astype(np.float32)
    bad = register_arrays(t1, noise, n_uncertainty=3, seed=0)  # a brain against uniform noise
    assert bad.likely_failed and "lock" in bad.failure_reasons[0]
    assert bad.uncertainty_summary["confidence"] < LOCK_MIN
    payload = bad.to_json()
    assert payload["likely_failed"] is True and payload["uncertainty"]["confidence"] < LOCK_MIN
    json.dumps(payload)


def test_another_anatomy_is_flagged():
    volume = sitk.GetArrayFromImage(sitk.ReadImage(str(sample_path("stroke_t1_2mm.nrrd")))).astype(np.float32)
    fixed, other = volume[35], volume[10]  # a mid-brain slice against one 50 mm lower
    result = register_arrays(fixed, other, n_uncertainty=0, seed=0)
    assert result.likely_failed and result.uncertainty_summary["confidence"] < LOCK_MIN


def test_the_final_stage_follows_the_contrast(stroke):
    t1, t2 = stroke
    true = known_affine(t1.shape, theta=-0.05, shift=(2.0, 4.0))
    mono = register_arrays(t1, moved(t1, true), n_uncertainty=0, seed=0)
    multi = register_arrays(t1, moved(t2, true), n_uncertainty=0, seed=0)
    assert mono.details["final_metric"] == "ngf" and multi.details["final_metric"] == "mi"
    assert grid_error(mono.matrix, true, t1.shape) < 0.2
    fu = robust_unit(t1)
    eye = torch.eye(3, dtype=torch.float64)
    assert contrast_correlation(fu, fu, eye) == pytest.approx(1.0)
    assert contrast_correlation(fu, robust_unit(t2), eye) < SAME_CONTRAST


def test_mutual_information_gradient_and_refinement(stroke):
    fixed, moving = robust_unit(stroke[0]), robust_unit(stroke[1])  # co-registered T1 / T2
    mi = MutualInformation(fixed, moving)
    start = torch.eye(3, dtype=torch.float64)
    start[0, 2], start[1, 2] = 1.5, -1.0
    value, grad = mi.evaluate(start)
    for k in (2, 5):  # the translations: analytic gradient against a central difference over +-0.5 px
        d = torch.zeros(6, dtype=torch.float64)
        d[k] = 0.5
        numeric = (mi.evaluate(mi.update(start, d), gradient=False)
                   - mi.evaluate(mi.update(start, -d), gradient=False)) / 1.0
        assert float(grad[k]) == pytest.approx(numeric, rel=0.2)
    out, out_value = refine_mi(mi, start)
    assert out_value > value
    assert grid_error(out.numpy(), np.eye(3), fixed.shape) < 0.6
    again, _ = refine_mi(MutualInformation(fixed, moving), start)
    assert torch.equal(out, again)  # deterministic


def test_translation_search_finds_a_large_shift_and_rotation(stroke):
    t1 = stroke[0]
    true = known_affine(t1.shape, theta=np.radians(60), shift=(30.0, -25.0), shear=0.0)
    fu, mu = robust_unit(t1), robust_unit(moved(t1, true))
    theta = np.radians(np.arange(-180, 180, 10))
    turns = np.stack([[[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]] for a in theta])
    found = search.rigid_candidates(fu, mu, turns)
    best = found[np.argmin([grid_error(m, true, t1.shape) for m in found])]
    assert found.shape == (36, 3, 3) and grid_error(best, true, t1.shape) < 4.0  # within a coarse pixel


def test_a_truncated_field_of_view_registers(stroke):
    t1, t2 = stroke
    true = known_affine(t1.shape, theta=0.2, shift=(8.0, -6.0))
    cut = moved(t2, true)
    cut[:, : int(0.3 * cut.shape[1])] = 0.0  # the moving slab misses a third of the head
    result = register_arrays(t1, cut, n_uncertainty=0, seed=0)
    assert result.details["translation_search"] and grid_error(result.matrix, true, t1.shape) < 2.0
