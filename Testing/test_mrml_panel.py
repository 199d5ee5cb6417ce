"""What the module panels do, on a real MRML scene (slicer-core): button rules, display, background runs.

The background runs start real `python -m dlreg` child processes, as the modules do in Slicer.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import slicer.util

from dlreg.errors import CancelledError, DLRegError
from dlreg.imaging.io import read_image
from dlreg.modality.options import ModalityOptions
from dlreg.modality.result import ModalityResult
from dlreg.mrml import jobs
from dlreg.mrml.display import show_registration
from dlreg.mrml.modality import classify_nodes, summary_line
from dlreg.mrml.panel import RUNNING, list_action, pair_action, training_action
from dlreg.mrml.rigid3d import register_nodes as rigid_nodes
from dlreg.mrml.volumes import volume_node_from_image
from dlreg.mrml.zeroshot import register_nodes as zeroshot_nodes
from dlreg.rigid3d.options import RigidOptions
from dlreg.sampledata import SAMPLE_DATA_DIR, sample_data_sources, sample_path
from dlreg.zeroshot.options import ZeroShotOptions

SLICE = 35


@pytest.fixture()
def stroke(mrml):
    """The bundled stroke T1 and T2 (2 mm, co-registered) as volume nodes."""
    t1 = volume_node_from_image(read_image(sample_path("stroke_t1_2mm.nrrd")), "T1", scene=mrml.scene)
    t2 = volume_node_from_image(read_image(sample_path("stroke_t2_2mm.nrrd")), "T2", scene=mrml.scene)
    return mrml, t1, t2


def foregrounds():
    return [c.GetForegroundVolumeID() for c in slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode")]


def test_actions_are_disabled_while_a_run_is_on(stroke):
    _, t1, t2 = stroke
    assert pair_action(t1, t2, running=False)[0]
    assert pair_action(t1, t2, running=True) == (False, RUNNING)  # editing a parameter mid-run changes nothing
    assert not pair_action(t1, t1, running=False)[0] and not pair_action(t1, None, running=False)[0]
    assert list_action([t1], running=False, what="Classify")[0] and not list_action([], False, "Classify")[0]
    assert list_action([t1, t2], running=True, what="Classify") == (False, RUNNING)
    assert not training_action("", "/tmp/out", running=False)[0]  # no working-directory default
    assert training_action("/data", "/tmp/out", running=False)[0]
    assert not training_action("/data", "/tmp/out", running=True)[0]


def test_registration_leaves_the_views_alone_until_shown(stroke):
    _, t1, t2 = stroke
    before = foregrounds()
    result = zeroshot_nodes(t1, t2, ZeroShotOptions(n_uncertainty=2), slice_index=SLICE)
    assert foregrounds() == before
    show_registration(t1, result.output_volume, result.uncertainty_volume, overlay="none")
    assert foregrounds() == before  # "none" is honoured
    show_registration(t1, result.output_volume, result.uncertainty_volume, overlay="uncertainty")
    assert set(foregrounds()) == {result.uncertainty_volume.GetID()}
    with pytest.raises(ValueError, match="overlay"):
        show_registration(t1, result.output_volume, overlay="everything")


def test_unknown_results_are_shown_with_their_reason():
    unknown = ModalityResult("unknown", {"CT": 0.3, "MR-T1": 0.7}, 0.0, reason="the volume looks like noise")
    assert summary_line("noise", unknown) == "noise: unknown (confidence 0.00): the volume looks like noise"
    known = ModalityResult("MR-T2", {"MR-T2": 0.91}, 0.91, dicom_label="MR-T1", disagreement=True)
    assert summary_line("t2", known) == "t2: MR-T2 (confidence 0.91); DICOM header: MR-T1 (DISAGREES)"


def test_classify_nodes_fills_the_table_and_the_attributes(stroke):
    mrml, t1, t2 = stroke
    table = mrml.scene.AddNewNodeByClass("vtkMRMLTableNode")
    steps = []
    results = classify_nodes([t1, t2], table=table, progress=lambda f, m: steps.append(f))
    assert [table.GetCellText(r, 0) for r in range(table.GetNumberOfRows())] == ["T1", "T2"]
    assert [t1.GetAttribute("DLReg.Modality"), t2.GetAttribute("DLReg.Modality")] == [r.label for r in results]
    assert steps[0] == 0.0 and steps[-1] == 1.0
    with pytest.raises(DLRegError, match="at least one volume"):
        classify_nodes([])


def test_a_background_run_makes_the_nodes_a_run_here_makes(stroke):
    mrml, t1, t2 = stroke
    options = ZeroShotOptions(n_uncertainty=3)
    here = zeroshot_nodes(t1, t2, options, slice_index=SLICE)
    steps = []
    there = jobs.run_job(jobs.zeroshot_job(t1, t2, options, slice_index=SLICE), progress=lambda f, m: steps.append(f))
    np.testing.assert_allclose(slicer.util.arrayFromTransformMatrix(there.transform_node),
                               slicer.util.arrayFromTransformMatrix(here.transform_node), atol=1e-9)
    np.testing.assert_allclose(slicer.util.arrayFromVolume(there.uncertainty_volume),
                               slicer.util.arrayFromVolume(here.uncertainty_volume), atol=1e-6)
    assert there.table_node.GetNumberOfRows() == 1 and there.summary_text().startswith(f"slice {SLICE}:")
    assert len(steps) > 4 and steps == sorted(steps) and steps[-1] == 1.0  # the child's own progress


def test_a_background_rigid_run_in_given_output_nodes(stroke):
    mrml, t1, t2 = stroke
    given = mrml.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "mine")
    result = jobs.run_job(jobs.rigid_job(t1, t2, RigidOptions(n_uncertainty=0, refine=False),
                                         outputs={"output_transform": given}))
    assert result.transform_node is given and result.fixed_node is t1 and not result.payload["swapped"]
    here = rigid_nodes(t1, t2, RigidOptions(n_uncertainty=0, refine=False))
    np.testing.assert_allclose(result.matrix, here.matrix, atol=1e-9)


def test_a_background_classification_and_its_errors(stroke):
    _, t1, t2 = stroke
    results = jobs.run_job(jobs.classify_job([t1, t2], ModalityOptions()))
    assert [t1.GetAttribute("DLReg.Modality"), t2.GetAttribute("DLReg.Modality")] == [r.label for r in results]
    with pytest.raises(DLRegError, match="weights"):  # the child's one-line error, not a traceback
        jobs.run_job(jobs.classify_job([t1], ModalityOptions(weights="/no/such/weights.pt")))


def test_cancel_stops_the_child_and_adds_nothing(stroke):
    mrml, t1, t2 = stroke
    job = jobs.rigid_job(t1, t2, RigidOptions())
    nodes = mrml.scene.GetNumberOfNodes()
    with pytest.raises(CancelledError):
        jobs.run_job(job, progress=lambda fraction, message: fraction < 0.25)
    assert mrml.scene.GetNumberOfNodes() == nodes and not job.folder.exists()


def test_training_job_needs_its_folders():
    with pytest.raises(DLRegError, match="training data"):
        jobs.train_rigid_job("", "/tmp/out")


def test_sample_data_sources_point_at_the_bundled_files():
    sources = sample_data_sources()
    assert {s["sampleName"] for s in sources} == {"DLRegStroke", "DLRegMNI"}
    for source in sources:
        for uri, checksum in zip(source["uris"], source["checksums"]):
            path = Path(uri.removeprefix("file://"))
            assert path.parent == SAMPLE_DATA_DIR
            assert checksum == "SHA256:" + hashlib.sha256(path.read_bytes()).hexdigest()
