"""dlreg.mrml.modality on a real MRML scene: attribute, DICOM attributes, ordering, table.

The CT node holds a synthetic CT painted from the bundled MNI tissue maps (see
test_modality_pipeline.py); the MR nodes hold the bundled MNI and stroke volumes.
"""

from __future__ import annotations

import numpy as np
import pytest
import slicer

from dlreg.imaging.io import read_image
from dlreg.mrml.modality import ATTRIBUTE, classify_node, order_nodes, write_results_table
from dlreg.mrml.volumes import volume_node_from_image
from dlreg.sampledata import sample_path
from dlreg.training.modality.synthetic import pseudo_ct_from_tissue


@pytest.fixture()
def nodes(mrml):
    scene = mrml.scene
    t1 = volume_node_from_image(read_image(sample_path("mni_t1_2mm.nrrd")), "T1", scene)
    ct_image = pseudo_ct_from_tissue(read_image(sample_path("mni_gm_2mm.nrrd")),
                                     read_image(sample_path("mni_wm_2mm.nrrd")))
    ct = volume_node_from_image(ct_image, "CT", scene)
    return scene, t1, ct


def test_attribute_written_and_voxels_untouched(nodes):
    scene, t1, ct = nodes
    before = slicer.util.arrayFromVolume(ct).copy()
    result = classify_node(ct)
    assert result.label == "CT" and ct.GetAttribute(ATTRIBUTE) == "CT"
    assert np.array_equal(slicer.util.arrayFromVolume(ct), before)
    classify_node(t1, write_attribute=False)
    assert t1.GetAttribute(ATTRIBUTE) is None


def test_dicom_attributes_of_node_and_subject_hierarchy(nodes):
    scene, t1, ct = nodes
    t1.SetAttribute("DICOM.instanceUIDs", "1.2.3.4")
    t1.SetName("5: AX T2 TSE")
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    item = sh.CreateItem(sh.GetSceneItemID(), t1)
    sh.SetItemAttribute(item, "DICOM.Modality", "MR")
    result = classify_node(t1)
    pixels = result.evidence["pixels"]["label"]
    assert result.dicom_label == "MR-T2" and result.disagreement == (pixels != "MR-T2")
    assert result.dicom_metadata["SeriesDescription"] == "5: AX T2 TSE"


def test_ct_mr_pair_ordered_t1_fixed(nodes):
    scene, t1, ct = nodes
    fixed, moving, details = order_nodes(ct, t1)
    assert (fixed.GetID(), moving.GetID()) == (t1.GetID(), ct.GetID())
    fixed, moving, _ = order_nodes(t1, ct, prefer_fixed="CT")
    assert (fixed.GetID(), moving.GetID()) == (ct.GetID(), t1.GetID())
    assert t1.GetAttribute(ATTRIBUTE) is None


def test_results_table(nodes):
    scene, t1, ct = nodes
    results = [(n.GetName(), classify_node(n, write_attribute=False)) for n in (t1, ct)]
    table = write_results_table(scene, results)
    assert table.GetNumberOfRows() == 2
    assert [table.GetCellText(r, 1) for r in range(2)] == [r.label for _, r in results]
    assert table.GetCellText(1, 1) == "CT"
    assert table.GetTable().GetColumnByName("P(CT)") is not None


def test_unknown_is_written_with_its_reason(nodes):
    scene, t1, ct = nodes
    mask = volume_node_from_image(read_image(sample_path("mni_t1_2mm.nrrd")) > 0, "brain mask", scene)
    result = classify_node(mask)
    assert result.label == "unknown" and mask.GetAttribute(ATTRIBUTE) == "unknown"
    assert "mask" in result.reason and "unknown" in result.summary()
    table = write_results_table(scene, [("brain mask", result)])
    assert table.GetCellText(0, 1) == "unknown" and "mask" in table.GetCellText(0, 5)
