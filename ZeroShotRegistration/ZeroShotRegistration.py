"""Zero-shot 2D multi-modal registration with uncertainty: the Slicer module (GUI and thin logic over dlreg)."""

from typing import Annotated, Optional, Union

import slicer
import vtk
from slicer import vtkMRMLLinearTransformNode, vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import Choice, Default, Minimum, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin


class ZeroShotRegistration(ScriptedLoadableModule):
    """Module description shown by Slicer."""

    def __init__(self, parent) -> None:
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Zero-Shot Registration"
        self.parent.categories = ["Registration"]
        self.parent.dependencies = ["PyTorchUtils"]
        self.parent.contributors = ["SlicerDLReg developers"]
        self.parent.helpText = """
Registers a slice of the moving volume to the same slice of the fixed volume (affine, in the slice plane)
in a fraction of a second and without any training data: keypoints are the centres of mass of feature maps
of a convolutional network pretrained on natural images, and a small regressor maps them to the transform.
Bootstrapping the keypoints gives an uncertainty map of the registration.
Pick the slice in the matching slice view (axial: Red, sagittal: Yellow, coronal: Green) or register all slices.
Results: a linear transform (apply it to the moving volume to lay it over the fixed one), the registered
volume and the uncertainty map, shown as an overlay.
See <a href="https://github.com/SlicerDLReg/SlicerDLReg#zeroshotregistration">the documentation</a>.
"""
        self.parent.acknowledgementText = """
This module implements the method of A. Kori and G. Krishnamurthi,
"Zero Shot Learning for Multi-Modal Real Time Image Registration", arXiv preprint, 2019.
"""


@parameterNodeWrapper
class ZeroShotRegistrationParameterNode:
    """Panel state, saved with the scene."""

    fixedVolume: vtkMRMLScalarVolumeNode
    movingVolume: vtkMRMLScalarVolumeNode
    sliceAxis: Annotated[str, Choice(["axial", "sagittal", "coronal"]), Default("axial")]
    allSlices: bool
    mode: Annotated[str, Choice(["default", "paper"]), Default("default")]
    estimator: Annotated[str, Choice(["auto", "mlp", "closed-form", "robust"]), Default("auto")]
    nBootstrap: Annotated[int, WithinRange(1, 100), Default(10)]
    nUncertainty: Annotated[int, WithinRange(1, 100), Default(10)]
    seed: Annotated[int, Minimum(0)]
    outputTransform: vtkMRMLLinearTransformNode
    outputVolume: vtkMRMLScalarVolumeNode
    outputUncertainty: vtkMRMLScalarVolumeNode
    overlay: Annotated[str, Choice(["registered", "uncertainty", "none"]), Default("registered")]
    overlayOpacity: Annotated[float, WithinRange(0.0, 1.0), Default(0.5)]


class ZeroShotRegistrationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Module panel: the .ui bound to the parameter node, Apply and Cancel."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._progress = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/ZeroShotRegistration.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = ZeroShotRegistrationLogic()
        from SlicerDLRegLib import ProgressReporter

        self._progress = ProgressReporter(self.ui.progressBar, self.ui.cancelButton, [self.ui.applyButton])
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        self.setParameterNode(None)

    def onReload(self) -> None:
        """Developer reload: the dlreg core is imported afresh too."""
        import SlicerDLRegLib

        SlicerDLRegLib.forgetPackages()
        ScriptedLoadableModuleWidget.onReload(self)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        """Use the module's parameter node; preselect the first two volumes of the scene."""
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.fixedVolume and not self._parameterNode.movingVolume:
            self._parameterNode.fixedVolume = slicer.mrmlScene.GetNthNodeByClass(0, "vtkMRMLScalarVolumeNode")
            self._parameterNode.movingVolume = slicer.mrmlScene.GetNthNodeByClass(1, "vtkMRMLScalarVolumeNode")

    def setParameterNode(self, parameterNode: Optional[ZeroShotRegistrationParameterNode]) -> None:
        """Bind the GUI to `parameterNode` (None: unbind)."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        p = self._parameterNode
        ready = bool(p and p.fixedVolume and p.movingVolume and p.fixedVolume != p.movingVolume)
        self.ui.applyButton.enabled = ready
        self.ui.applyButton.toolTip = "Register the moving volume to the fixed one" if ready else "Select two volumes"

    def onApplyButton(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Registration failed.", waitCursor=True), self._progress.running():
            result = self.logic.process(
                p.fixedVolume, p.movingVolume, sliceAxis=p.sliceAxis, sliceIndex="all" if p.allSlices else "view",
                mode=p.mode, estimator=p.estimator, nBootstrap=p.nBootstrap, nUncertainty=p.nUncertainty,
                vggWeights=self.ui.vggWeightsPathLineEdit.currentPath or None, seed=p.seed,
                outputTransform=p.outputTransform, outputVolume=p.outputVolume, outputUncertainty=p.outputUncertainty,
                progress=self._progress, interactive=True)
            p.outputTransform = result.transform_node
            p.outputVolume = result.output_volume
            p.outputUncertainty = result.uncertainty_volume
            self.ui.resultTextEdit.setPlainText(result.summary_text())
            self.logic.showResult(result, p.fixedVolume, overlay=p.overlay, opacity=p.overlayOpacity)


class ZeroShotRegistrationLogic(ScriptedLoadableModuleLogic):
    """Thin adapter over dlreg.mrml.zeroshot, usable from the Python console and in batch mode."""

    sliceViews = {"axial": "Red", "sagittal": "Yellow", "coronal": "Green"}

    def getParameterNode(self) -> ZeroShotRegistrationParameterNode:
        return ZeroShotRegistrationParameterNode(super().getParameterNode())

    def process(self, fixedVolume, movingVolume, *, sliceAxis: str = "axial",
                sliceIndex: Union[None, int, str] = None, mode: str = "default", estimator: str = "auto",
                nBootstrap: int = 10, nUncertainty: int = 10, vggWeights: Optional[str] = None, seed: int = 0,
                outputTransform=None, outputVolume=None, outputUncertainty=None, progress=None,
                interactive: bool = False):
        """Register the moving volume's slice(s) to the fixed volume's; inputs are left unchanged.

        sliceIndex: an index, "all", "view" (the slice shown in the axis' slice view) or None (dlreg's default).
        Outputs left as None are created. Returns dlreg's result: transform_node, output_volume,
        uncertainty_volume, table_node and summary_text().
        """
        from SlicerDLRegLib import ensureTorch

        ensureTorch(interactive)
        from dlreg.mrml import zeroshot

        if sliceIndex == "view":
            sliceIndex = self.sliceIndexInView(fixedVolume, sliceAxis)
        return zeroshot.register_nodes(
            fixedVolume, movingVolume, slice_axis=sliceAxis, slice_index=sliceIndex, mode=mode, estimator=estimator,
            n_bootstrap=nBootstrap, n_uncertainty=nUncertainty, vgg_weights=vggWeights, seed=seed,
            output_transform=outputTransform, output_volume=outputVolume, output_uncertainty=outputUncertainty,
            progress=progress)

    def sliceIndexInView(self, volumeNode, sliceAxis: str) -> int:
        """Index of the `sliceAxis` slice of the volume at the centre of that axis' slice view."""
        from dlreg.mrml.volumes import slice_index_from_ras

        sliceToRAS = slicer.mrmlScene.GetNodeByID("vtkMRMLSliceNode" + self.sliceViews[sliceAxis]).GetSliceToRAS()
        return slice_index_from_ras(volumeNode, [sliceToRAS.GetElement(i, 3) for i in range(3)], sliceAxis)

    def showResult(self, result, fixedVolume, overlay: str = "registered", opacity: float = 0.5) -> None:
        """Show the registered volume or the uncertainty map over the fixed volume in all slice views."""
        from dlreg.mrml.display import show_overlay

        foreground = {"registered": result.output_volume, "uncertainty": result.uncertainty_volume}.get(overlay)
        if foreground is not None:
            show_overlay(fixedVolume, foreground, opacity=opacity)


class ZeroShotRegistrationTest(ScriptedLoadableModuleTest):
    """Runs the registration on the extension's bundled stroke MR volumes inside Slicer."""

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    @staticmethod
    def centre(volumeNode):
        """RAS centre of a volume's bounds."""
        import numpy as np

        bounds = [0.0] * 6
        volumeNode.GetRASBounds(bounds)
        return (np.array(bounds[::2]) + np.array(bounds[1::2])) / 2

    def runTest(self) -> None:
        self.setUp()
        self.test_RecoversKnownInPlaneShift()
        self.setUp()
        self.test_MultiModalOutputsAndCancel()

    def test_RecoversKnownInPlaneShift(self) -> None:
        """The MNI T1 (axis-aligned) against itself shifted in the axial plane: the transform must undo the shift."""
        import numpy as np
        from SlicerDLRegLib import loadSampleVolume, recordProgress, volumeState

        from dlreg.mrml.volumes import slice_index_from_ras

        self.delayDisplay("Registering a shifted copy of the MNI T1")
        fixed = loadSampleVolume("mni_t1_2mm.nrrd")
        moving = slicer.modules.volumes.logic().CloneVolume(slicer.mrmlScene, fixed, "shifted")
        shift = np.array([6.0, -4.0, 0.0])  # RAS mm, within the axial plane
        moving.SetOrigin(*(np.array(fixed.GetOrigin()) + shift))
        centre = self.centre(fixed)
        before = [volumeState(fixed), volumeState(moving)]
        steps = []
        result = ZeroShotRegistrationLogic().process(
            fixed, moving, sliceAxis="axial", sliceIndex=slice_index_from_ras(fixed, centre, "axial"),
            nUncertainty=2, progress=recordProgress(steps))
        self.assertEqual([volumeState(fixed), volumeState(moving)], before)
        self.assertEqual(steps[-1], 1.0)
        transform = result.transform_node
        self.assertEqual(transform.GetNodeReferenceID(transform.GetFixedNodeReferenceRole()), fixed.GetID())
        self.assertEqual(transform.GetNodeReferenceID(transform.GetMovingNodeReferenceRole()), moving.GetID())
        # The transform lays the moving volume over the fixed one: moving point p + shift -> fixed point p.
        matrix = slicer.util.arrayFromTransformMatrix(transform, toWorld=True)
        for offset in ([0, 0, 0], [40, 0, 0], [0, 40, 0], [-30, -30, 0]):
            point = np.append(centre + offset + shift, 1.0)
            np.testing.assert_allclose((matrix @ point)[:3], centre + offset, atol=3.0)
        self.delayDisplay("Test passed")

    def test_MultiModalOutputsAndCancel(self) -> None:
        """FLAIR to T1: outputs on the fixed grid, a finite non-negative uncertainty map; Cancel stops the run."""
        import numpy as np
        from SlicerDLRegLib import loadSampleVolume, recordProgress

        from dlreg.errors import CancelledError
        from dlreg.mrml.volumes import slice_index_from_ras

        fixed = loadSampleVolume("stroke_t1_2mm.nrrd")
        moving = loadSampleVolume("stroke_flair_2mm.nrrd")
        logic = ZeroShotRegistrationLogic()
        middle = slice_index_from_ras(fixed, self.centre(fixed), "axial")
        result = logic.process(fixed, moving, sliceIndex=middle, nUncertainty=3)
        self.assertTrue(result.summary_text())
        self.assertEqual(result.output_volume.GetImageData().GetDimensions(), fixed.GetImageData().GetDimensions())
        uncertainty = slicer.util.arrayFromVolume(result.uncertainty_volume)
        self.assertTrue(np.all(np.isfinite(uncertainty)) and uncertainty.min() >= 0)
        logic.showResult(result, fixed, overlay="uncertainty")
        composite = slicer.mrmlScene.GetNodeByID("vtkMRMLSliceCompositeNodeRed")
        self.assertEqual(composite.GetForegroundVolumeID(), result.uncertainty_volume.GetID())
        steps = []
        with self.assertRaises(CancelledError):
            logic.process(fixed, moving, sliceIndex="all", nUncertainty=3,
                          progress=recordProgress(steps, cancelAfter=2))
        self.assertEqual(len(steps), 2)
        self.delayDisplay("Test passed")

