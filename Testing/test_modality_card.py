"""The shipped classifier still answers what its model card records for the bundled samples
(the Slicer module's self-test reads its expectations from the card)."""

from __future__ import annotations

import pytest

from dlreg.imaging.io import read_image
from dlreg.modality.classifier import BUNDLED
from dlreg.modality.pipeline import classify_image
from dlreg.sampledata import sample_path
from dlreg.weights import model_card

RECORDED = model_card(BUNDLED)["sample_predictions"]


def test_card_covers_every_bundled_volume():
    bundled = sorted(p.name for p in sample_path("mni_t1_2mm.nrrd").parent.glob("*_2mm.nrrd"))
    assert sorted(RECORDED) == bundled


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_prediction_matches_the_card(name):
    result = classify_image(read_image(sample_path(name)))
    assert result.label == RECORDED[name]["label"]
    assert result.confidence == pytest.approx(RECORDED[name]["confidence"], abs=2e-3)
