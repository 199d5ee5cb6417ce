"""classify_image with the shipped weights on bundled data; physics, header evidence, OOD, the CLI.

The CT is synthetic: CT-like Hounsfield values painted from the bundled MNI tissue maps
(`pseudo_ct_from_tissue`: WM 30, GM 40, CSF 10, air -1000 HU, no skull), because the project
ships no real CT.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from dlreg.cli import main
from dlreg.errors import InputImageError, WeightsError
from dlreg.imaging.geometry import rotation_matrix
from dlreg.imaging.io import read_image
from dlreg.modality.classes import CLASSES
from dlreg.modality.classifier import BUNDLED
from dlreg.modality.ordering import order_images
from dlreg.modality.pipeline import classify_image
from dlreg.sampledata import sample_path
from dlreg.training.modality.synthetic import pseudo_ct_from_tissue
from dlreg.weights import bundled_path, model_card

TRUTH = {"mni_t1_2mm.nrrd": "MR-T1", "stroke_t1_2mm.nrrd": "MR-T1", "stroke_t2_2mm.nrrd": "MR-T2",
         "stroke_flair_2mm.nrrd": "MR-FLAIR"}
CARD = model_card(BUNDLED)


def _expectation(name: str):
    """The truth; a strict xfail where the shipped model's card records another answer."""
    said = CARD["sample_predictions"][name]["label"]
    marks = [] if said == TRUTH[name] else [pytest.mark.xfail(
        reason=f"the shipped model answers {said} (recorded in its card)", strict=True)]
    return pytest.param(name, TRUTH[name], marks=marks)


@pytest.fixture(scope="module")
def synthetic_ct() -> sitk.Image:
    return pseudo_ct_from_tissue(read_image(sample_path("mni_gm_2mm.nrrd")),
                                 read_image(sample_path("mni_wm_2mm.nrrd")))


@pytest.mark.parametrize("name, expected", [_expectation(n) for n in TRUTH])
def test_bundled_mr_volumes(name, expected):
    result = classify_image(read_image(sample_path(name)))
    assert result.label == expected
    assert sum(result.probabilities.values()) == pytest.approx(1.0)
    assert list(result.probabilities) == list(CLASSES)
    assert result.confidence == pytest.approx(result.probability(expected))
    assert result.probability("CT") == 0.0          # no Hounsfield signature: never CT
    json.dumps(result.to_json())


def test_synthetic_ct_is_decided_by_physics(synthetic_ct):
    result = classify_image(synthetic_ct)
    assert result.label == "CT" and result.confidence == 1.0
    assert result.evidence["physics"]["signature"] == "hu"


def test_header_direction_does_not_change_the_answer(stroke_t1):
    base = classify_image(stroke_t1)
    other = sitk.Image(stroke_t1)
    other.SetDirection(rotation_matrix(0.6, 0.3, -0.8).ravel().tolist())
    result = classify_image(other)
    assert (result.label, result.probabilities) == (base.label, base.probabilities)


def test_out_of_distribution_inputs_are_unknown_with_a_reason(mni_t1):
    rng = np.random.default_rng(0)
    noise = sitk.GetImageFromArray(rng.normal(size=(64, 64, 64)).astype(np.float32))
    picture = sitk.GetArrayFromImage(read_image(sample_path("stroke_t2_axial.png")))[0]
    stacked = sitk.GetImageFromArray(np.repeat(picture[None], 40, axis=0).astype(np.float32))
    smooth = sitk.SmoothingRecursiveGaussian(noise, 2.0)
    mask = sitk.Cast(mni_t1 > 0, sitk.sitkUInt8)
    for image in (noise, smooth, stacked, mask):
        result = classify_image(image)
        assert result.label == "unknown" and result.reason and result.is_unknown
        assert result.probability("unknown") == 0.0 and result.confidence == 0.0
        assert "unknown" in result.summary()
    with pytest.raises(InputImageError, match="blank"):
        classify_image(sitk.Image([40, 40, 40], sitk.sitkFloat32) + 3.0)


def test_dicom_modality_conflicting_with_physics_is_unknown(synthetic_ct, mni_t1):
    result = classify_image(synthetic_ct, dicom_metadata={"Modality": "MR", "SeriesDescription": "T1"})
    assert result.label == "unknown" and result.disagreement and "CT" in result.reason
    result = classify_image(mni_t1, dicom_metadata={"Modality": "CT"})
    assert result.label == "unknown" and result.disagreement and "Hounsfield" in result.reason
    result = classify_image(mni_t1, dicom_metadata={"Modality": "MR", "ImageType": "DERIVED\\PRIMARY\\DIFFUSION\\ADC"})
    assert result.label == "unknown" and "diffusion" in result.reason


def test_dicom_contrast_is_combined_and_disagreement_shown(mni_t1):
    pixels = classify_image(mni_t1)
    agree = classify_image(mni_t1, dicom_metadata={"Modality": "MR", "RepetitionTime": "500", "EchoTime": "12"})
    assert agree.dicom_label == "MR-T1" and not agree.disagreement
    assert agree.probability("MR-T1") >= pixels.probability("MR-T1")
    other = classify_image(mni_t1, dicom_metadata={"Modality": "MR", "SeriesDescription": "AX FLAIR"})
    assert other.dicom_label == "MR-FLAIR" and other.disagreement
    assert other.evidence["pixels"]["label"] == pixels.label and "disagreement" in other.evidence
    assert other.probability("MR-FLAIR") > pixels.probability("MR-FLAIR")


def test_order_ct_and_t1(synthetic_ct, mni_t1):
    fixed, moving, details = order_images(synthetic_ct, mni_t1)
    assert (fixed, moving) == (1, 0)
    assert details["labels"][0] == "CT"


def test_bad_weights_file_is_a_clear_error(tmp_path, mni_t1):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(WeightsError, match="cannot read"):
        classify_image(mni_t1, weights=bad)


@pytest.mark.parametrize("key, value, message", [("channels", ["gradient"], "input channels"),
                                                 ("grid_size", 64, "grid"),
                                                 ("network_classes", ["MR-PD"], "classes")])
def test_weights_for_other_inputs_are_refused(tmp_path, mni_t1, key, value, message):
    payload = torch.load(bundled_path(BUNDLED), map_location="cpu", weights_only=True)
    payload["meta"][key] = value
    other = tmp_path / f"{key}.pt"
    torch.save(payload, other)
    with pytest.raises(WeightsError, match=message):
        classify_image(mni_t1, weights=other)


def test_cli_classify_json(capsys):
    paths = [str(sample_path(n)) for n in ("stroke_t2_2mm.nrrd", "stroke_flair_2mm.nrrd")]
    assert main(["classify", *paths, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [out[p]["label"] for p in paths] == [classify_image(read_image(p)).label for p in paths]
    assert all("physics" in out[p]["evidence"] for p in paths)
