"""dlreg.zeroshot building blocks, dlreg.metrics and dlreg.weights (fast, no external data)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlreg import metrics, weights
from dlreg.errors import MismatchedInputsError, WeightsError
from dlreg.zeroshot import estimators as est
from dlreg.zeroshot.keypoints import centres_of_mass
from dlreg.zeroshot.mlp import AffineMLP, predict
from dlreg.zeroshot.uncertainty import FRACTION, blackening_masks, position_variance_map


def random_affine(rng: np.random.Generator) -> np.ndarray:
    m = np.eye(3)
    m[:2, :2] += rng.uniform(-0.1, 0.1, (2, 2))
    m[:2, 2] = rng.uniform(-20, 20, 2)
    return m


def test_params_roundtrip():
    m = random_affine(np.random.default_rng(0))
    assert np.allclose(est.params_to_matrix(est.matrix_to_params(m)), m)


def test_closed_form_is_exact_on_clean_points():
    rng = np.random.default_rng(1)
    m = random_affine(rng)
    x = rng.uniform(0, 200, (40, 2))
    y = x @ m[:2, :2].T + m[:2, 2]
    assert np.allclose(est.closed_form(x, y), m, atol=1e-8)


def test_robust_survives_outlier_channels():
    rng = np.random.default_rng(2)
    m = random_affine(rng)
    x = rng.uniform(0, 200, (60, 2))
    y = x @ m[:2, :2].T + m[:2, 2] + rng.normal(0, 0.3, (60, 2))
    y[:20] = rng.uniform(0, 200, (20, 2))  # a third of the channels disagree
    fit, w = est.robust(x, y, rng=np.random.default_rng(0))
    assert np.abs(fit - m).max() < 0.3 and (w[:20] > 0).sum() <= 3


def test_robust_refuses_too_few_points():
    with pytest.raises(MismatchedInputsError, match="overlap"):
        est.robust(np.zeros((2, 2)), np.zeros((2, 2)), rng=np.random.default_rng(0))


def test_centre_of_mass_of_thresholded_map():
    maps = torch.zeros(1, 2, 32, 48)
    maps[0, 0, 10:14, 20:30] = 1.0
    maps[0, 0, 0, 0] = 0.5  # below 95% of the max: ignored (paper eq. 1)
    pts, valid = centres_of_mass(maps, (0.95,))
    assert np.allclose(pts[0, 0], [24.5, 11.5]) and valid[0, 0] and not valid[0, 1]


def test_mlp_predict_shapes_and_residual_identity():
    model = AffineMLP().eval()
    x = np.random.default_rng(0).uniform(0, 1, (3, 64, 2))
    out = predict(model, x, x, residual_steps=2)
    assert out.shape == (3, 3, 3) and np.allclose(out[:, 2], [0, 0, 1])


def test_blackening_is_seeded_and_variance_map_is_zero_for_equal_runs():
    a = blackening_masks((250, 256), 4, torch.Generator().manual_seed(3))
    b = blackening_masks((250, 256), 4, torch.Generator().manual_seed(3))
    assert a.shape == (4, 250, 256) and torch.equal(a, b)
    assert abs(float(1 - a.mean()) - FRACTION) < 0.05  # the blackened share of the image
    assert not torch.equal(a, blackening_masks((250, 256), 4, torch.Generator().manual_seed(4)))
    assert np.allclose(position_variance_map(np.stack([np.eye(3)] * 3), (5, 6)), 0)


def test_metrics_identity_and_shift():
    rng = np.random.default_rng(0)
    img = np.zeros((64, 64))
    img[16:48, 12:40] = 1.0 + 0.1 * rng.random((32, 28))
    same = metrics.all_metrics(img, img)
    assert same == pytest.approx({"dice": 1.0, "ssim": 1.0, "mi": 1.0, "mse": 0.0})
    moved = metrics.all_metrics(img, np.roll(img, 6, axis=1))
    assert moved["dice"] < 1 and moved["ssim"] < 1 and moved["mi"] < 1 and moved["mse"] > 0
    assert 0.0 <= moved["mi"] <= 1.0
    assert metrics.mutual_information_to(img, [img, np.roll(img, 6, axis=1)]) == [1.0, moved["mi"]]


def test_mutual_information_is_scikit_images_normalised_mi_rescaled():
    """Our MI (kept for speed) is 2 (1 - 1/Y) of scikit-image's Y = (H(F) + H(M)) / H(F, M)."""
    from skimage.metrics import normalized_mutual_information

    rng = np.random.default_rng(1)
    fixed = rng.gamma(2.0, size=(40, 50, 30))
    moving = np.sqrt(fixed) + rng.normal(0, 0.3, fixed.shape)
    y = normalized_mutual_information(metrics.unit_range(fixed), metrics.unit_range(moving), bins=metrics.MI_BINS)
    assert metrics.mutual_information(fixed, moving) == pytest.approx(2 * (1 - 1 / y), abs=1e-12)
    assert 0.05 < metrics.mutual_information(fixed, moving) < 0.95  # neither independent nor identical


def test_ssim_works_in_3d_and_falls_with_noise():
    rng = np.random.default_rng(2)
    volume = np.zeros((24, 30, 28))
    volume[6:18, 8:22, 5:20] = 1.0
    noisy = volume + rng.normal(0, 0.2, volume.shape)
    assert metrics.ssim(volume, volume) == pytest.approx(1.0)
    assert metrics.ssim(volume, noisy) < metrics.ssim(volume, volume + rng.normal(0, 0.05, volume.shape)) < 1.0


def test_bundled_vgg_checksum_and_shapes():
    state = weights.load_vgg_conv1()
    assert state["features.0.weight"].shape == (64, 3, 3, 3)
    assert weights.sha256_of(weights.bundled_path("vgg16_conv1_imagenet")) == \
        weights.model_card("vgg16_conv1_imagenet")["sha256"]
    assert "CC BY 4.0" in weights.model_card("vgg16_conv1_imagenet")["license"]


def test_corrupt_bundled_file_is_refused(tmp_path, monkeypatch):
    card = weights.model_card("vgg16_conv1_imagenet")
    (tmp_path / "vgg16_conv1_imagenet.json").write_text(__import__("json").dumps(card))
    (tmp_path / card["file"]).write_bytes(b"not weights")
    monkeypatch.setattr(weights, "MODELS_DIR", tmp_path)
    with pytest.raises(WeightsError, match="corrupted"):
        weights.load_vgg_conv1()
    with pytest.raises(WeightsError, match="no bundled model"):
        weights.model_card("nope")


def test_user_vgg_file_and_hub_cache(tmp_path):
    state = weights.load_vgg_conv1()
    hub = tmp_path / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save({**state, "features.5.weight": torch.zeros(1)}, hub / "vgg19-dcbb9e9d.pth")
    loaded = weights.load_vgg_conv1(tmp_path / "hub")
    assert torch.equal(loaded["features.2.weight"], state["features.2.weight"])
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(64, 1, 3, 3)}, bad)
    with pytest.raises(WeightsError, match="features.0.weight"):
        weights.load_vgg_conv1(bad)
    with pytest.raises(WeightsError, match="do not exist"):
        weights.load_vgg_conv1(tmp_path / "missing.pth")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WeightsError, match="no vgg"):
        weights.load_vgg_conv1(empty)


def test_bundled_mlp_verifies_and_loads():
    from dlreg.zeroshot.mlp import load_bundled_mlp

    card = weights.model_card("affine_mlp_paper")
    assert weights.sha256_of(weights.bundled_path("affine_mlp_paper")) == card["sha256"]
    assert "synthetic" in card["training_data"]
    x = np.random.default_rng(0).uniform(0, 1, (1, 64, 2))
    assert np.isfinite(predict(load_bundled_mlp(), x, x)).all()


def _blob_image(size: int = 96) -> np.ndarray:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    img = np.zeros((size, size))
    for cx, cy, r, v in ((40, 45, 22, 1.0), (60, 38, 9, 0.4), (35, 60, 7, 0.7), (55, 62, 5, 0.2)):
        img += v / (1 + np.exp(np.hypot(xs - cx, ys - cy) - r))
    return img.astype(np.float32)


def test_variance_map_closed_form_matches_direct():
    rng = np.random.default_rng(3)
    mats = np.tile(np.eye(3), (6, 1, 1))
    mats[:, :2] += rng.normal(0, 0.01, (6, 2, 3))
    h, w = 17, 23
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    mapped = np.einsum("nij,jhw->nihw", mats[:, :2], np.stack([xs, ys, np.ones_like(xs)]))
    assert np.allclose(position_variance_map(mats, (h, w)), mapped.var(axis=0).sum(axis=0), atol=1e-12)


def test_gauss_newton_ngf_recovers_shift_with_inverted_contrast():
    from dlreg.zeroshot.refine import blackening_response, refine_affine
    from dlreg.zeroshot.warping import warp
    fixed = torch.from_numpy(_blob_image())
    true = torch.eye(3, dtype=torch.float64)
    true[0, 2], true[1, 2] = 2.5, -1.5
    true[:2, :2] = torch.tensor([[np.cos(0.05), -np.sin(0.05)], [np.sin(0.05), np.cos(0.05)]])
    moving = 1.5 - warp(fixed[None], np.linalg.inv(true.numpy()))[0]  # other "contrast": inverted
    moving = moving * (warp(torch.ones_like(fixed)[None], np.linalg.inv(true.numpy()))[0] > 0.5)
    out, score = refine_affine(fixed, moving[None], torch.eye(3, dtype=torch.float64)[None],
                               levels=(2, 1), iterations=(10, 10))
    assert torch.allclose(out[0, :2], true[:2], atol=0.4)  # NGF optimum within 0.4 px of the truth
    assert 0 < float(score[0]) <= 1
    keep = blackening_masks(tuple(fixed.shape), 5, torch.Generator().manual_seed(0))
    runs, hess, res_var = blackening_response(fixed, moving[None], out[0], keep)
    assert runs.shape == (5, 3, 3) and torch.isfinite(runs).all() and hess.shape == (6, 6)
    assert float(res_var) >= 0 and float((runs - out).abs().max()) < 2.0


def test_robust_batch_equals_one_set_at_a_time():
    rng = np.random.default_rng(5)
    c, s = np.cos(0.2), np.sin(0.2)
    m = np.array([[1.02 * c, -s + 0.01, 5.0], [s, c, -7.0], [0.0, 0.0, 1.0]])  # near-rigid, as in images
    x = rng.uniform(0, 200, (3, 40, 2))
    y = x @ m[:2, :2].T + m[:2, 2]
    y[:, :8] = rng.uniform(0, 200, (3, 8, 2))  # outlier channels in every set
    batch, w = est.robust(x, y, rng=np.random.default_rng(0))
    assert batch.shape == (3, 3, 3) and w.shape == (3, 40)
    for k in range(3):  # exact inliers: every set ends on the same affine, alone or in the batch
        one, w_one = est.robust(x[k], y[k], rng=np.random.default_rng(k + 1))
        assert np.allclose(batch[k], m, atol=1e-6) and np.allclose(one, m, atol=1e-6)
        assert np.array_equal(w[k] > 0, w_one > 0) and not (w[k, :8] > 0).any()
    assert np.allclose(est.closed_form(x[:, 8:], y[:, 8:]), m, atol=1e-8)


def test_closed_form_refuses_collinear_points():
    x = np.c_[np.arange(10.0), 2 * np.arange(10.0)]
    with pytest.raises(MismatchedInputsError, match="collinear"):
        est.closed_form(x, x)


def test_gaussian_blur_equals_replicate_padded_convolution():
    from dlreg.zeroshot.features import _gauss1d, gaussian_blur
    x = torch.from_numpy(np.random.default_rng(0).random((2, 3, 37, 50)).astype(np.float32))
    for sigma in (1.0, 4.0, 16.0):
        k = _gauss1d(sigma)
        r = k.numel() // 2
        p = torch.nn.functional.pad(x, (r, r, r, r), mode="replicate")
        ref = torch.nn.functional.conv2d(p.reshape(-1, 1, *p.shape[-2:]), (k[:, None] * k[None])[None, None])
        assert torch.allclose(gaussian_blur(x, sigma), ref.reshape(x.shape), atol=1e-5)


def test_refinement_refuses_a_fixed_image_without_edges():
    from dlreg.zeroshot.refine import refine_affine
    flat = torch.zeros((40, 40))
    with pytest.raises(MismatchedInputsError, match="no edges"):
        refine_affine(flat, flat[None], torch.eye(3, dtype=torch.float64)[None], levels=(1,), iterations=(2,))
