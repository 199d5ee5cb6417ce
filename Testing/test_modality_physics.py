"""The Hounsfield signature decides CT against MR, and the canonical input ignores the header."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from dlreg.imaging.geometry import rotation_matrix
from dlreg.imaging.io import read_image
from dlreg.modality.physics import HU, HU_OFFSET, NONE, OFFSET_UNSURE, hounsfield_evidence
from dlreg.modality.preprocess import canonical_input
from dlreg.sampledata import sample_path
from dlreg.training.modality.synthetic import pseudo_ct_from_t1, pseudo_ct_from_tissue


@pytest.fixture(scope="module")
def ct_with_bone() -> sitk.Image:
    """A head-like CT: skull ring of bone around a painted brain, air outside."""
    brain = pseudo_ct_from_tissue(read_image(sample_path("mni_gm_2mm.nrrd")),
                                  read_image(sample_path("mni_wm_2mm.nrrd")))
    a = sitk.GetArrayFromImage(brain)
    head = sitk.GetArrayFromImage(sitk.BinaryDilate(sitk.Cast(brain > -500, sitk.sitkUInt8), [4] * 3)) > 0
    skull = head & (a < -500)
    a = np.where(skull, 1200.0, a).astype(np.float32)
    out = sitk.GetImageFromArray(a)
    out.CopyInformation(brain)
    return out


def _signature(image: sitk.Image) -> str:
    return canonical_input(image).physics.signature


def test_ct_signature_as_stored_and_raw(ct_with_bone):
    assert _signature(ct_with_bone) == HU
    evidence = canonical_input(ct_with_bone).physics
    assert evidence.is_ct and evidence.bone_fraction > 0.05 and "Hounsfield" in evidence.reason
    raw = sitk.Cast(ct_with_bone + 1024.0, sitk.sitkFloat32)
    assert _signature(raw) == HU_OFFSET
    raw_brain_only = sitk.Cast(pseudo_ct_from_t1(read_image(sample_path("mni_t1_2mm.nrrd"))) + 1024.0,
                               sitk.sitkFloat32)
    unsure = canonical_input(raw_brain_only).physics
    assert unsure.signature == OFFSET_UNSURE and not unsure.is_ct and "1024" in unsure.reason


@pytest.mark.parametrize("name", ["mni_t1_2mm.nrrd", "stroke_t1_2mm.nrrd", "stroke_t2_2mm.nrrd",
                                  "stroke_flair_2mm.nrrd"])
@pytest.mark.parametrize("scale", [1.0, 4.0, 1000.0 / 255])
def test_mr_never_has_the_signature(name, scale):
    image = sitk.Cast(read_image(sample_path(name)), sitk.sitkFloat32) * scale
    assert _signature(image) == NONE
    assert _signature(image + 1024.0) not in (HU, HU_OFFSET)


def test_signature_rules_on_value_lists():
    rng = np.random.default_rng(0)
    ct = np.concatenate([rng.normal(-1000, 5, 4000), rng.normal(35, 8, 5000), rng.uniform(400, 1800, 800)])
    assert hounsfield_evidence(ct).signature == HU
    assert hounsfield_evidence(ct + 1024).signature == HU_OFFSET
    mr = np.concatenate([np.zeros(4000), rng.uniform(0, 1100, 6000)])
    assert hounsfield_evidence(mr).signature == NONE


def test_canonical_input_does_not_depend_on_the_header(stroke_t1):
    base = canonical_input(stroke_t1).array
    for direction in (rotation_matrix(0.4, -0.2, 0.9), np.diag([-1.0, 1.0, -1.0])):
        other = sitk.Image(stroke_t1)
        other.SetDirection(np.asarray(direction).ravel().tolist())
        other.SetOrigin((-70.0, 12.0, 300.0))
        assert np.array_equal(canonical_input(other).array, base)
