"""Training machinery of the modality classifier on bundled volumes: samples and their cache,
native-like variants, grouped CV, calibration, decisions and the weights/card round trip.
Tiny counts and one epoch: this checks the plumbing, not accuracy (see benchmarks/modality.py)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from dlreg.imaging.io import read_image
from dlreg.modality.classes import CLASSES, MR_FLAIR, MR_T1, MR_T2
from dlreg.modality.pipeline import classify_image
from dlreg.modality.preprocess import canonical_input
from dlreg.sampledata import sample_path
from dlreg.training.modality.data import Volume, with_synthetic
from dlreg.training.modality.native import add_head, ct_native_like, native_like, reslice
from dlreg.training.modality.samples import EVAL_NATIVE, OOD, ORIGINAL, make_samples
from dlreg.training.modality.train import PAPER_SPEC, SHIPPED_SPEC, network_targets, train_on_samples


@pytest.fixture(scope="module")
def volumes() -> list[Volume]:
    base = [Volume("mni", MR_T1, "mni_t1", read_image(sample_path("mni_t1_2mm.nrrd"))),
            Volume("stroke", MR_T1, "stroke_t1", read_image(sample_path("stroke_t1_2mm.nrrd"))),
            Volume("stroke", MR_T2, "stroke_t2", read_image(sample_path("stroke_t2_2mm.nrrd"))),
            Volume("stroke", MR_FLAIR, "stroke_flair", read_image(sample_path("stroke_flair_2mm.nrrd")))]
    return with_synthetic(base, mr=False)


def test_native_like_variant_is_a_scanner_series(mni_t1):
    rng = np.random.default_rng(3)
    headed = add_head(mni_t1, MR_T1, rng)
    a, brain = sitk.GetArrayFromImage(headed), sitk.GetArrayFromImage(mni_t1) > 0
    assert headed.GetSize()[0] > mni_t1.GetSize()[0]          # room for the skull
    assert np.count_nonzero(a > 0) > 1.3 * np.count_nonzero(brain)
    thick = reslice(mni_t1, rng, thickness=6.0, tilt=np.deg2rad(20), coverage=0.6)
    assert max(thick.GetSpacing()) == pytest.approx(6.0)
    assert not np.allclose(np.asarray(thick.GetDirection()).reshape(3, 3) @ np.eye(3), np.abs(np.eye(3)))
    native = native_like(mni_t1, MR_T1, np.random.default_rng(4))
    assert native.GetPixelID() in (sitk.sitkInt16, sitk.sitkInt32)
    assert not canonical_input(native).physics.is_ct


def test_ct_variants_keep_the_hounsfield_signature(volumes):
    ct = next(v for v in volumes if v.label == "CT")
    for seed in range(3):
        assert canonical_input(ct_native_like(ct.image, np.random.default_rng(seed))).physics.is_ct


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("samples")


@pytest.fixture(scope="module")
def samples(volumes, cache):
    return make_samples(volumes, per_volume=1, native=1, eval_native=1, n_ood=4, seed=0, cache_dir=cache)


def test_samples_are_cached_and_reproducible(volumes, samples, cache):
    assert len(list(cache.glob("*.npz"))) == len(volumes) + 1      # each volume and the OOD set
    again = make_samples(volumes, per_volume=1, native=1, eval_native=1, n_ood=4, seed=0, cache_dir=cache)
    assert np.array_equal(again.x, samples.x) and np.array_equal(again.kind, samples.kind)
    assert set(samples.kind) == {ORIGINAL, 1, 2, EVAL_NATIVE, OOD}
    targets = network_targets(samples, SHIPPED_SPEC)
    assert np.all(targets[samples.kind == EVAL_NATIVE] == -2)    # evaluation variants are never trained on
    assert np.all(targets[samples.physics_ct] == -2)             # CT is physics' job
    assert np.all(network_targets(samples, PAPER_SPEC)[samples.physics_ct & (samples.kind != EVAL_NATIVE)] == 0)


@pytest.mark.parametrize("spec", [SHIPPED_SPEC, PAPER_SPEC], ids=["shipped", "paper"])
def test_grouped_cv_final_fit_and_card(samples, tmp_path, spec):
    out = tmp_path / "m.pt"
    cv_out = tmp_path / "not yet made" / "cv.npz"  # its folder is made, as for every output
    card = train_on_samples(samples, out, spec=spec, epochs=1, batch_size=4, folds=2, exclude_subjects=("mni",),
                            device="cpu", cv_out=cv_out)
    assert np.load(cv_out)["logits"].shape[0] == len(samples.y)
    assert card["test_subjects_not_trained_on"] == ["mni"]
    assert card["network_classes"] == list(spec.classes)
    loso = card["loso_metrics"]
    assert loso["real_original_volumes"]["n"] == 4                # the pseudo-CTs are synthetic
    assert loso["ct_vs_mr"]["n_ct"] == 2
    if spec.physics:                                              # physics: CT vs MR is right untrained
        assert loso["ct_vs_mr"]["mr_called_ct"] == 0 and loso["ct_vs_mr"]["ct_recognised"] == 2
    result = classify_image(read_image(sample_path("stroke_t2_2mm.nrrd")), weights=out, device="cpu")
    assert result.label in CLASSES + ("unknown",)
    assert sum(result.probabilities.values()) == pytest.approx(1.0)


def test_an_unwritable_output_is_refused_before_any_training(samples, tmp_path):
    from dlreg.imaging.outputs import OutputError

    (tmp_path / "a-file").write_text("")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        train_on_samples(samples, tmp_path / "m.pt", epochs=50, cv_out=tmp_path / "a-file" / "cv.npz", device="cpu")
