"""Modality core without the network: input grid, gates, calibration, metrics, ordering, pseudo-CT."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from dlreg.errors import DLRegError, InputImageError
from dlreg.imaging.io import read_image
from dlreg.modality.calibration import softmax
from dlreg.modality.classes import CLASSES
from dlreg.modality.gates import sanity_reason
from dlreg.modality.ordering import order_results
from dlreg.modality.preprocess import CHANNELS, GRID_SIZE, canonical_input
from dlreg.modality.result import ModalityResult
from dlreg.sampledata import sample_path
from dlreg.training.modality.calibration import choose_threshold, fit_temperature
from dlreg.training.modality.evaluation import class_metrics, confusion_matrix
from dlreg.training.modality.synthetic import pseudo_ct_from_tissue, pseudo_mr_from_t1


def _resampled(image: sitk.Image, spacing) -> sitk.Image:
    size = [int(round(n * s / t)) for n, s, t in zip(image.GetSize(), image.GetSpacing(), spacing)]
    return sitk.Resample(image, size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(), spacing,
                         image.GetDirection(), 0.0, sitk.sitkFloat32)


def test_canonical_input_is_stable_across_resolution(mni_t1):
    base = canonical_input(mni_t1).array
    for spacing in [(1.0, 1.0, 1.0), (2.0, 2.0, 5.0)]:
        other = canonical_input(_resampled(mni_t1, spacing)).array
        assert other.shape == base.shape
        assert np.corrcoef(base.ravel(), other.ravel())[0, 1] > 0.95


def test_rank_channel_ignores_increasing_intensity_maps(mni_t1):
    base = canonical_input(mni_t1).array
    a = sitk.GetArrayFromImage(mni_t1).astype(np.float64)
    mapped = sitk.GetImageFromArray((250.0 * (a / a.max()) ** 1.6).astype(np.float32))
    mapped.CopyInformation(mni_t1)
    other = canonical_input(mapped).array
    assert base.shape == (len(CHANNELS), GRID_SIZE, GRID_SIZE, GRID_SIZE)
    # Exact up to bin averaging (the map is applied before it) and the foreground edge.
    rank_change, intensity_change = (float(np.abs(other[c] - base[c]).mean()) for c in (1, 0))
    assert rank_change < 0.006 and intensity_change > 4 * rank_change
    ranks = base[1][base[1] > 0]
    assert ranks.max() <= 1.0 and 0.4 < ranks.mean() < 0.6


def test_canonical_input_refuses_thin_and_blank_volumes():
    with pytest.raises(InputImageError, match="not a 3D volume"):
        canonical_input(sitk.Image([64, 64, 3], sitk.sitkFloat32) + 1.0)
    with pytest.raises(InputImageError, match="blank"):
        canonical_input(sitk.Image([32, 32, 32], sitk.sitkFloat32) + 5.0)


def test_gates_pass_real_images_and_stop_noise_and_stacked_pictures(mni_t1, stroke_t1):
    for image in (mni_t1, stroke_t1):
        assert sanity_reason(canonical_input(image)) is None
    noise = sitk.GetImageFromArray(np.random.default_rng(0).normal(size=(60, 60, 60)).astype(np.float32))
    assert "noise" in sanity_reason(canonical_input(noise))
    smooth = sitk.SmoothingRecursiveGaussian(noise, 2.0)
    assert "background" in sanity_reason(canonical_input(smooth))
    picture = sitk.GetArrayFromImage(read_image(sample_path("stroke_t1_axial.png")))[0]
    stacked = sitk.GetImageFromArray(np.repeat(picture[None], 40, axis=0).astype(np.float32) + 1.0)
    assert "repeated" in sanity_reason(canonical_input(stacked))


def test_gates_stop_masks_label_maps_and_phantoms(mni_t1):
    mask = sitk.Cast(mni_t1 > 0, sitk.sitkUInt8)
    assert "boolean mask" in sanity_reason(canonical_input(mask))
    labels = mask + sitk.Cast(mni_t1 > 50, sitk.sitkUInt8) + sitk.Cast(mni_t1 > 80, sitk.sitkUInt8)
    assert "label map" in sanity_reason(canonical_input(labels))
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, 128)] * 3, indexing="ij")
    levels = np.zeros(z.shape, np.float32)
    for k, radius in enumerate((0.9, 0.7, 0.5, 0.3, 0.2, 0.1)):   # nested ellipsoids, 7 values
        levels += 10.0 * (k + 1) * ((z / radius) ** 2 + (y / (0.8 * radius)) ** 2 + x ** 2 < 1)
    # Anti-aliased like a digital phantom: edge voxels average 2x2x2 sub-voxels (many values there).
    phantom = sitk.BinShrink(sitk.GetImageFromArray(levels), [2, 2, 2])
    assert len(np.unique(sitk.GetArrayFromImage(phantom))) > 16
    assert "piecewise constant" in sanity_reason(canonical_input(phantom))


def test_temperature_and_threshold():
    rng = np.random.default_rng(1)
    logits = 2.0 * rng.normal(size=(4000, 3))
    # Labels drawn from softmax(logits): these logits are calibrated at T = 1.
    cumulative = softmax(logits).cumsum(axis=1)
    labels = (rng.random((4000, 1)) > cumulative).sum(axis=1)
    t = fit_temperature(3.0 * logits, labels)
    assert t == pytest.approx(3.0, rel=0.15)
    assert softmax(logits).sum(axis=1) == pytest.approx(np.ones(4000))
    assert choose_threshold(np.array([0.99, 0.98, 0.97]), np.array([0.3, 0.5])) >= 0.6
    assert choose_threshold(np.full(200, 0.95), np.array([0.7])) == pytest.approx(0.701)


def test_paper_metrics_from_confusion():
    counts = confusion_matrix([0, 0, 1, 1, 1], [0, 1, 1, 1, 2], 2)
    m = class_metrics(counts, ["A", "B"])
    assert m["overall_accuracy"] == pytest.approx(3 / 5)
    a = m["per_class"]["A"]
    assert (a["sensitivity"], a["specificity"], a["precision"]) == pytest.approx((0.5, 1.0, 1.0))
    assert a["f_measure"] == pytest.approx(2 / 3)
    assert a["g_mean"] == pytest.approx(np.sqrt(0.5))


def _result(label: str, p: dict) -> ModalityResult:
    probs = {c: p.get(c, 0.0) for c in CLASSES}
    return ModalityResult(label, probs, max(probs.values()))


def test_ordering_rules():
    ct = _result("CT", {"CT": 0.99, "MR-T1": 0.01})
    t1 = _result("MR-T1", {"MR-T1": 0.97, "MR-T1C": 0.03})
    flair = _result("MR-FLAIR", {"MR-FLAIR": 0.9, "MR-T2": 0.1})
    assert order_results(ct, t1)[:2] == (1, 0)
    assert order_results(t1, ct)[:2] == (0, 1)
    assert order_results(t1, ct, prefer_fixed="CT")[:2] == (1, 0)
    fixed, moving, details = order_results(ct, flair)
    assert (fixed, moving, details["rule"]) == (1, 0, "label ranking")
    assert order_results(t1, t1)[2]["ambiguous"]
    with pytest.raises(DLRegError, match="MR-PD"):
        order_results(t1, ct, prefer_fixed="MR-PD")


def test_pseudo_ct_from_bundled_tissue_maps_reads_as_hounsfield():
    gm = read_image(sample_path("mni_gm_2mm.nrrd"))
    wm = read_image(sample_path("mni_wm_2mm.nrrd"))
    ct = pseudo_ct_from_tissue(gm, wm)
    a = sitk.GetArrayFromImage(ct)
    assert a.min() < -900 and 20 < np.median(a[a > -500]) < 45
    assert canonical_input(ct).hu_calibrated


def test_pseudo_mr_contrasts_follow_the_tissue_ordering(mni_t1):
    gm = sitk.GetArrayFromImage(read_image(sample_path("mni_gm_2mm.nrrd"))).astype(float)
    wm = sitk.GetArrayFromImage(read_image(sample_path("mni_wm_2mm.nrrd"))).astype(float)
    gm, wm = gm / gm.max(), wm / wm.max()
    brain = sitk.GetArrayFromImage(mni_t1) > 0
    regions = {"WM": wm > 0.9, "GM": gm > 0.9, "CSF": brain & (gm + wm < 0.1)}
    means = {}
    for contrast in ("MR-T2", "MR-FLAIR"):
        a = sitk.GetArrayFromImage(pseudo_mr_from_t1(mni_t1, contrast))
        assert a.min() >= 0 and np.all(a[~brain] == 0)
        means[contrast] = {tissue: float(a[mask].mean()) for tissue, mask in regions.items()}
    t2, flair = means["MR-T2"], means["MR-FLAIR"]
    assert t2["CSF"] > t2["GM"] > t2["WM"]
    assert flair["GM"] > flair["WM"] > flair["CSF"]
    with pytest.raises(ValueError, match="MR-PD"):
        pseudo_mr_from_t1(mni_t1, "MR-PD")
