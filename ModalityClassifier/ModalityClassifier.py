"""Image-modality classification and fixed/moving ordering: the Slicer module (GUI and thin logic over dlreg)."""

from typing import Annotated

import qt
import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import Choice, Default, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin


class ModalityClassifier(ScriptedLoadableModule):
    """Module description shown by Slicer."""

    def __init__(self, parent) -> None:
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Modality Classifier"
        self.parent.categories = ["Registration"]
        self.parent.dependencies = ["SlicerDLRegCommon"]
        self.parent.contributors = ["SlicerDLReg developers"]
        self.parent.helpText = """
Predicts the imaging modality of head volumes (CT or an MR contrast: T1, T1 with contrast, T2, FLAIR) from the
voxels, with calibrated probabilities, and answers "unknown" with the reason for anything else (other contrasts,
other body parts, noise, pictures). DICOM attributes, when the volume came from DICOM, are taken into account and
a disagreement is flagged. It also decides which of two volumes should be the fixed image of a registration.
Results go to a table (one row per volume) and, optionally, to an attribute of each volume node. The work runs
in a background process: the window stays responsive and Cancel stops it. Try it on Sample Data > SlicerDLReg >
DLRegStroke. Needs Slicer 5.4 or newer and PyTorch.
See <a href="https://github.com/SlicerDLReg/SlicerDLReg#modalityclassifier">the documentation</a>.
"""
        self.parent.acknowledgementText = """
The modality classification step follows K. T. Islam, S. Wijewickrema and S. O'Leary,
"A deep learning based framework for the registration of three dimensional multi-modal medical images
of the head", Scientific Reports 11, 1860 (2021).
"""


@parameterNodeWrapper
class ModalityClassifierParameterNode:
    """Panel state, saved with the scene. weights, preferFixed and device are dlreg's ModalityOptions, one for
    one (camelCase); Testing/test_module_files.py fails if they drift apart."""

    inputVolumes: list[vtkMRMLScalarVolumeNode]
    outputTable: vtkMRMLTableNode
    writeAttribute: Annotated[bool, Default(True)]
    weights: str  # a path; empty: the bundled classifier
    device: Annotated[str, Choice(["auto", "cpu", "cuda", "mps"]), Default("auto")]
    volumeA: vtkMRMLScalarVolumeNode
    volumeB: vtkMRMLScalarVolumeNode
    preferFixed: Annotated[str, Choice(["CT", "MR-T1", "MR-T1C", "MR-T2", "MR-FLAIR"]), Default("MR-T1")]


class ModalityClassifierWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Module panel: classify the checked volumes into a table; order two volumes as fixed and moving."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._panel = None
        self._run = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.uiWidget = slicer.util.loadUI(self.resourcePath("UI/ModalityClassifier.ui"))
        self.layout.addWidget(self.uiWidget)
        self.ui = slicer.util.childWidgetVariables(self.uiWidget)
        self.uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = ModalityClassifierLogic()
        from SlicerDLRegLib import BackgroundRun, ParameterPanel

        self._run = BackgroundRun(self.ui.progressBar, self.ui.cancelButton,
                                  [self.ui.applyButton, self.ui.orderButton], self._onParametersChanged)
        self._panel = ParameterPanel(self, self.logic, self._onParametersChanged, ("volumeA", "volumeB"))
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, lambda *_: self._run.cancel())
        self.ui.inputVolumesSelector.connect("checkedNodesChanged()", self._onCheckedNodesChanged)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.orderButton.connect("clicked(bool)", self.onOrderButton)
        self._panel.bind()

    def cleanup(self) -> None:
        self._run.cancel()
        self.removeObservers()

    def enter(self) -> None:
        self._panel.bind()

    def exit(self) -> None:
        self._panel.unbind()

    def onReload(self) -> None:
        """Developer reload: the dlreg core is imported afresh too."""
        import SlicerDLRegLib

        SlicerDLRegLib.forgetPackages()
        ScriptedLoadableModuleWidget.onReload(self)

    def _onCheckedNodesChanged(self) -> None:
        """The checkable box has no wrapper binding: its checked volumes go to inputVolumes by hand."""
        if self._panel and self._panel.node:
            self._panel.node.inputVolumes = list(self.ui.inputVolumesSelector.checkedNodes())

    def _onParametersChanged(self) -> None:
        from dlreg.mrml.panel import list_action, pair_action

        p = self._panel.node if self._panel else None
        if p is not None:
            selector = self.ui.inputVolumesSelector
            blocked = selector.blockSignals(True)
            for index in range(selector.nodeCount()):
                node = selector.nodeFromIndex(index)
                selector.setCheckState(node, qt.Qt.Checked if node in p.inputVolumes else qt.Qt.Unchecked)
            selector.blockSignals(blocked)
        running = bool(self._run and self._run.running)
        enabled, tip = list_action(list(p.inputVolumes) if p else [], running, "Classify the checked volumes")
        self.ui.applyButton.enabled, self.ui.applyButton.toolTip = enabled, tip
        enabled, tip = pair_action(p.volumeA if p else None, p.volumeB if p else None, running,
                                   what="Say which of the two volumes is the fixed image")
        self.ui.orderButton.enabled, self.ui.orderButton.toolTip = enabled, tip

    def onApplyButton(self) -> None:
        p = self._panel.node
        with slicer.util.tryWithErrorDisplay("Classification could not start.", waitCursor=True):
            from SlicerDLRegLib import ensureDependencies

            ensureDependencies(interactive=True)
            from dlreg.modality.options import ModalityOptions
            from dlreg.mrml.jobs import classify_job

            if not p.outputTable:
                p.outputTable = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", "Modality classification")
            nodes = list(p.inputVolumes)
            job = classify_job(nodes, ModalityOptions.from_attributes(p), write_attribute=p.writeAttribute,
                               table=p.outputTable)
            self._run.start(job, lambda results: self._onClassified(nodes, results), title="Classification")

    def _onClassified(self, nodes, results) -> None:
        from dlreg.mrml.modality import summary_line

        self.ui.resultTextEdit.setPlainText("\n".join(summary_line(n.GetName(), r) for n, r in zip(nodes, results)))
        slicer.app.layoutManager().setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(self._panel.node.outputTable.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()

    def onOrderButton(self) -> None:
        p = self._panel.node
        with slicer.util.tryWithErrorDisplay("Ordering could not start.", waitCursor=True):
            from SlicerDLRegLib import ensureDependencies

            ensureDependencies(interactive=True)
            from dlreg.modality.options import ModalityOptions
            from dlreg.mrml.jobs import classify_job

            nodes, options = [p.volumeA, p.volumeB], ModalityOptions.from_attributes(p)
            job = classify_job(nodes, options, write_attribute=False)
            self._run.start(job, lambda results: self._onOrdered(nodes, results, options.prefer_fixed),
                            title="Ordering")

    def _onOrdered(self, nodes, results, preferFixed: str) -> None:
        from dlreg.modality.ordering import order_results
        from dlreg.mrml.modality import summary_line

        fixed, moving, details = order_results(*results, prefer_fixed=preferFixed)
        lines = [f"Fixed: {nodes[fixed].GetName()}", f"Moving: {nodes[moving].GetName()}", f"Rule: {details['rule']}"]
        self.ui.resultTextEdit.setPlainText("\n".join(lines + [summary_line(n.GetName(), r)
                                                               for n, r in zip(nodes, results)]))


class ModalityClassifierLogic(ScriptedLoadableModuleLogic):
    """Thin adapter over dlreg.mrml.modality for the Python console and batch mode (runs in this process)."""

    def getParameterNode(self) -> ModalityClassifierParameterNode:
        return ModalityClassifierParameterNode(super().getParameterNode())

    def classify(self, volumeNodes, options=None, *, writeAttribute: bool = True, outputTable=None, progress=None,
                 interactive: bool = False, **changes) -> list:
        """Classify each volume (results in the same order: .label, .confidence, .reason, .probabilities,
        .dicom_label, .disagreement); options: a dlreg.modality.ModalityOptions, keyword changes on top.

        With `writeAttribute` the class is stored as an attribute of each node (its only change); with
        `outputTable` that table is filled with one row per volume.
        """
        from SlicerDLRegLib import ensureDependencies

        ensureDependencies(interactive)
        from dlreg.mrml.modality import classify_nodes

        return classify_nodes(volumeNodes, options, write_attribute=writeAttribute, table=outputTable,
                              progress=progress, **changes)

    def order(self, volumeA, volumeB, options=None, *, interactive: bool = False, **changes):
        """(fixed, moving, details): which of the two volumes should be fixed, from their predicted modalities."""
        from SlicerDLRegLib import ensureDependencies

        ensureDependencies(interactive)
        from dlreg.mrml.modality import order_nodes

        return order_nodes(volumeA, volumeB, options, **changes)


class ModalityClassifierTest(ScriptedLoadableModuleTest):
    """Classifies the extension's bundled volumes inside Slicer; the expected classes come from the shipped
    model's card (the same expectations as the pytest suite)."""

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        self.setUp()
        self.test_ClassifiesBundledVolumes()
        self.setUp()
        self.test_OrdersT1AsFixed()

    def test_ClassifiesBundledVolumes(self) -> None:
        from SlicerDLRegLib import loadSampleVolume, recordProgress, volumeState

        from dlreg.modality.expectations import bundled_sample_expectations

        expected = bundled_sample_expectations()
        nodes = [loadSampleVolume(name) for name in expected]
        before = [volumeState(node) for node in nodes]
        table = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode")
        steps = []
        results = ModalityClassifierLogic().classify(nodes, outputTable=table, progress=recordProgress(steps))
        self.assertEqual([volumeState(node) for node in nodes], before)
        self.assertEqual(steps[-1], 1.0)
        self.assertEqual([table.GetCellText(row, 0) for row in range(table.GetNumberOfRows())],
                         [node.GetName() for node in nodes])
        for node, result in zip(nodes, results):
            self.assertAlmostEqual(sum(result.probabilities.values()), 1.0, places=3)
            self.assertEqual(node.GetAttribute("DLReg.Modality"), result.label)
        self.assertEqual([r.label for r in results], list(expected.values()))
        self.delayDisplay("Test passed")

    def test_OrdersT1AsFixed(self) -> None:
        from SlicerDLRegLib import loadSampleVolume

        flair = loadSampleVolume("stroke_flair_2mm.nrrd")
        t1 = loadSampleVolume("mni_t1_2mm.nrrd")
        fixed, moving, _ = ModalityClassifierLogic().order(flair, t1, prefer_fixed="MR-T1")
        self.assertEqual((fixed.GetID(), moving.GetID()), (t1.GetID(), flair.GetID()))
        self.delayDisplay("Test passed")
