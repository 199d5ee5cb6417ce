"""classify_image with the shipped weights on bundled data; OOD inputs; the CLI.

The CT is synthetic: CT-like Hounsfield values painted from the bundled MNI tissue maps
(`dlreg.modality.synthetic.pseudo_ct_from_tissue`: WM 30, GM 40, CSF 10, air -1000 HU,
no skull), because the project ships no real CT.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from dlreg.cli import main
from dlreg.errors import InputImageError, WeightsError
from dlreg.imaging.io import read_image
from dlreg.modality.classes import CLASSES
from dlreg.modality.classifier import BUNDLED
from dlreg.modality.ordering import order_images
from dlreg.modality.pipeline import classify_image
from dlreg.sampledata import sample_path
from dlreg.training.modality.synthetic import pseudo_ct_from_tissue
from dlreg.weights import bundled_path


@pytest.fixture(scope="module")
def synthetic_ct() -> sitk.Image:
    return pseudo_ct_from_tissue(read_image(sample_path("mni_gm_2mm.nrrd")),
                                 read_image(sample_path("mni_wm_2mm.nrrd")))


# The shipped model (LOSO accuracy 61% on real volumes, see docs/modality.md) is not sure
# enough of the bundled 2 mm stroke FLAIR (calibrated confidence 0.58 < threshold 0.6) and
# answers unknown: a known failure, kept visible rather than removed.
STROKE_FLAIR_KNOWN_FAILURE = pytest.mark.xfail(reason="shipped model answers unknown for the 2 mm stroke "
                                                      "FLAIR (confidence just below the threshold)", strict=True)


@pytest.mark.parametrize("name, expected", [
    ("mni_t1_2mm.nrrd", "MR-T1"), ("stroke_t1_2mm.nrrd", "MR-T1"), ("stroke_t2_2mm.nrrd", "MR-T2"),
    pytest.param("stroke_flair_2mm.nrrd", "MR-FLAIR", marks=STROKE_FLAIR_KNOWN_FAILURE),
])
def test_bundled_mr_volumes(name, expected):
    result = classify_image(read_image(sample_path(name)))
    assert result.label == expected
    assert sum(result.probabilities.values()) == pytest.approx(1.0)
    assert list(result.probabilities) == list(CLASSES)
    assert result.confidence == pytest.approx(result.probabilities[expected])
    json.dumps(result.to_json())


def test_synthetic_ct(synthetic_ct):
    assert classify_image(synthetic_ct).label == "CT"


@pytest.mark.parametrize("name", ["mni_t1_2mm.nrrd", "stroke_t2_2mm.nrrd", "stroke_flair_2mm.nrrd"])
def test_same_class_after_thick_slice_resampling(name):
    image = read_image(sample_path(name))
    spacing = (2.0, 2.0, 5.0)
    size = [int(n * s / t) for n, s, t in zip(image.GetSize(), image.GetSpacing(), spacing)]
    thick = sitk.Resample(sitk.SmoothingRecursiveGaussian(image, [0.5, 0.5, 2.0]), size, sitk.Transform(),
                          sitk.sitkLinear, image.GetOrigin(), spacing, image.GetDirection())
    assert classify_image(thick).label == classify_image(image).label


def test_out_of_distribution_inputs_are_unknown_or_refused():
    rng = np.random.default_rng(0)
    noise = sitk.GetImageFromArray(rng.normal(size=(64, 64, 64)).astype(np.float32))
    picture = sitk.GetArrayFromImage(read_image(sample_path("stroke_t2_axial.png")))[0]
    stacked = sitk.GetImageFromArray(np.repeat(picture[None], 40, axis=0).astype(np.float32))
    smooth = sitk.SmoothingRecursiveGaussian(noise, 2.0)
    for image in (noise, smooth, stacked):
        result = classify_image(image)
        assert result.label == "unknown" and result.reason
    with pytest.raises(InputImageError, match="blank"):
        classify_image(sitk.Image([40, 40, 40], sitk.sitkFloat32) + 3.0)


def test_dicom_disagreement_is_flagged(mni_t1):
    result = classify_image(mni_t1, dicom_metadata={"Modality": "MR", "SeriesDescription": "AX FLAIR"})
    assert (result.label, result.dicom_label, result.disagreement) == ("MR-T1", "MR-FLAIR", True)


def test_order_ct_and_t1(synthetic_ct, mni_t1):
    fixed, moving, details = order_images(synthetic_ct, mni_t1)
    assert (fixed, moving) == (1, 0)
    assert details["labels"] == ["CT", "MR-T1"]


def test_bad_weights_file_is_a_clear_error(tmp_path, mni_t1):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(WeightsError, match="cannot read"):
        classify_image(mni_t1, weights=bad)


def test_weights_for_other_input_channels_are_refused(tmp_path, mni_t1):
    payload = torch.load(bundled_path(BUNDLED), map_location="cpu", weights_only=True)
    payload["meta"]["channels"] = ["normalised"]
    old = tmp_path / "one_channel.pt"
    torch.save(payload, old)
    with pytest.raises(WeightsError, match="input channels"):
        classify_image(mni_t1, weights=old)


def test_cli_classify_json(capsys):
    paths = [str(sample_path(n)) for n in ("stroke_t2_2mm.nrrd", "stroke_flair_2mm.nrrd")]
    assert main(["classify", *paths, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[paths[0]]["label"] == "MR-T2"
    assert [out[p]["label"] for p in paths] == [classify_image(read_image(p)).label for p in paths]
