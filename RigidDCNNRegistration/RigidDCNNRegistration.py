"""3D rigid multi-modal registration of the head with a deep CNN: the Slicer module (GUI and thin logic over dlreg)."""

from typing import Annotated, Optional

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


class RigidDCNNRegistration(ScriptedLoadableModule):
    """Module description shown by Slicer."""

    def __init__(self, parent) -> None:
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Rigid DCNN Registration"
        self.parent.categories = ["Registration"]
        self.parent.dependencies = ["PyTorchUtils"]
        self.parent.contributors = ["SlicerDLReg developers"]
        self.parent.helpText = """
Rigid 3D registration of multi-modal head images (CT, MR) in seconds: a deep convolutional network finds
matching landmarks in the two heads and the rotation and translation follow from them (Estimator "keypoints";
"ann" is the paper's direct regression), after an optional principal-axes pre-alignment, and an optional
short mutual-information search refines it. Repeated predictions on perturbed inputs estimate the uncertainty.
With "automatic" order the modality classifier decides which volume is fixed (MR-T1 preferred).
The result is a linear transform (apply it to the moving volume to lay it over the fixed one) and a
registered volume. The Training section fits the network on a folder of your own images.
See <a href="https://github.com/SlicerDLReg/SlicerDLReg#rigiddcnnregistration">the documentation</a>.
"""
        self.parent.acknowledgementText = """
This module implements the registration framework of K. T. Islam, S. Wijewickrema and S. O'Leary,
"A deep learning based framework for the registration of three dimensional multi-modal medical images
of the head", Scientific Reports 11, 1860 (2021).
"""


@parameterNodeWrapper
class RigidDCNNRegistrationParameterNode:
    """Panel state, saved with the scene."""

    fixedVolume: vtkMRMLScalarVolumeNode
    movingVolume: vtkMRMLScalarVolumeNode
    order: Annotated[str, Choice(["manual", "automatic"]), Default("manual")]
    refine: Annotated[bool, Default(True)]
    pcaPrealign: Annotated[bool, Default(True)]
    estimator: Annotated[str, Choice(["keypoints", "ann"]), Default("keypoints")]
    nUncertainty: Annotated[int, WithinRange(1, 64), Default(8)]
    device: Annotated[str, Choice(["auto", "cpu", "cuda", "mps"]), Default("auto")]
    seed: Annotated[int, Minimum(0)]
    outputTransform: vtkMRMLLinearTransformNode
    outputVolume: vtkMRMLScalarVolumeNode
    showResult: Annotated[bool, Default(True)]
    trainingEpochs: Annotated[int, WithinRange(1, 10000), Default(50)]


class RigidDCNNRegistrationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Module panel: the .ui bound to the parameter node, Apply, Train and Cancel."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._progress = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/RigidDCNNRegistration.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = RigidDCNNRegistrationLogic()
        from SlicerDLRegLib import ProgressReporter

        self._progress = ProgressReporter(
            self.ui.progressBar, self.ui.cancelButton, [self.ui.applyButton, self.ui.trainButton])
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.trainButton.connect("clicked(bool)", self.onTrainButton)
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

    def setParameterNode(self, parameterNode: Optional[RigidDCNNRegistrationParameterNode]) -> None:
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
                p.fixedVolume, p.movingVolume, order=p.order, refine=p.refine, pcaPrealign=p.pcaPrealign,
                nUncertainty=p.nUncertainty, weights=self.ui.weightsPathLineEdit.currentPath or None,
                estimator=p.estimator, device=p.device, seed=p.seed, outputTransform=p.outputTransform,
                outputVolume=p.outputVolume, progress=self._progress, interactive=True)
            p.outputTransform = result.transform_node
            p.outputVolume = result.output_volume
            self.ui.resultTextEdit.setPlainText(result.summary_text())
            if p.showResult:
                self.logic.showResult(result)

    def onTrainButton(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Training failed.", waitCursor=True), self._progress.running():
            weights = self.logic.train(
                self.ui.trainingFolderButton.directory, self.ui.trainingOutputButton.directory,
                epochs=p.trainingEpochs, estimator=p.estimator, device=p.device, progress=self._progress,
                interactive=True)
            self.ui.weightsPathLineEdit.currentPath = str(weights)
            self.ui.resultTextEdit.setPlainText(f"Trained weights written to {weights}; they are now selected.")


class RigidDCNNRegistrationLogic(ScriptedLoadableModuleLogic):
    """Thin adapter over dlreg.mrml.rigid3d and dlreg.rigid3d.training, usable in the console and in batch mode."""

    def getParameterNode(self) -> RigidDCNNRegistrationParameterNode:
        return RigidDCNNRegistrationParameterNode(super().getParameterNode())

    def process(self, fixedVolume, movingVolume, *, order: str = "manual", refine: bool = True,
                pcaPrealign: bool = True, nUncertainty: int = 8, weights: Optional[str] = None,
                estimator: str = "keypoints", device: str = "auto", seed: int = 0, outputTransform=None,
                outputVolume=None, progress=None, interactive: bool = False):
        """Rigidly register the moving volume to the fixed one (order="automatic": the classifier decides which
        is which; estimator "keypoints" or the paper's "ann"); inputs are left unchanged, outputs left as None
        are created. Returns dlreg's result."""
        from SlicerDLRegLib import ensureTorch

        ensureTorch(interactive)
        from dlreg.mrml import rigid3d

        return rigid3d.register_nodes(
            fixedVolume, movingVolume, order=order, refine=refine, pca_prealign=pcaPrealign,
            n_uncertainty=nUncertainty, weights=weights, estimator=estimator, device=device, seed=seed,
            output_transform=outputTransform, output_volume=outputVolume, progress=progress)

    def train(self, folder: str, outputDir: str, *, epochs: int = 50, estimator: str = "keypoints",
              device: str = "auto", progress=None, interactive: bool = False):
        """Train the `estimator`'s network on the images of `folder` (epochs: passes over the paper's augmented
        set; for keypoints, x100 steps); returns the path of the weights written to `outputDir`."""
        from SlicerDLRegLib import ensureTorch

        ensureTorch(interactive)
        from dlreg.rigid3d import keypoint_training, training

        if estimator == "keypoints":
            return keypoint_training.train_from_folder(folder, outputDir, steps=100 * epochs, device=device,
                                                       progress=progress)
        return training.train_from_folder(folder, outputDir, epochs=epochs, device=device, progress=progress)

    def showResult(self, result, opacity: float = 0.5) -> None:
        """Show the registered volume over the volume that was used as fixed, in all slice views."""
        from dlreg.mrml.display import show_overlay

        transform = result.transform_node
        fixedVolume = transform.GetNodeReference(transform.GetFixedNodeReferenceRole())
        if result.output_volume is not None:
            show_overlay(fixedVolume, result.output_volume, opacity=opacity)


class RigidDCNNRegistrationTest(ScriptedLoadableModuleTest):
    """Runs the registration on the extension's bundled MNI T1 inside Slicer."""

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        self.setUp()
        self.test_RecoversKnownRigidMotion()
        self.setUp()
        self.test_CancelStopsTheRun()

    def _movedCopy(self, fixed, motion):
        """A copy of `fixed` whose content is moved by the 4x4 RAS matrix `motion` (hardened, not resampled)."""
        moving = slicer.modules.volumes.logic().CloneVolume(slicer.mrmlScene, fixed, "moved")
        transform = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
        slicer.util.updateTransformMatrixFromArray(transform, motion)
        moving.SetAndObserveTransformNodeID(transform.GetID())
        slicer.vtkSlicerTransformLogic().hardenTransform(moving)
        slicer.mrmlScene.RemoveNode(transform)
        return moving

    def test_RecoversKnownRigidMotion(self) -> None:
        """The transform must undo a known rotation and translation at the corners of the head's bounding box."""
        import itertools

        import numpy as np
        from SlicerDLRegLib import loadSampleVolume, recordProgress, volumeState

        self.delayDisplay("Registering a rotated and shifted copy of the MNI T1")
        fixed = loadSampleVolume("mni_t1_2mm.nrrd")
        angle = np.radians(8.0)
        motion = np.eye(4)
        motion[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
        motion[:3, 3] = [6.0, -5.0, 4.0]
        moving = self._movedCopy(fixed, motion)
        before = [volumeState(fixed), volumeState(moving)]
        steps = []
        result = RigidDCNNRegistrationLogic().process(fixed, moving, nUncertainty=2, progress=recordProgress(steps))
        self.assertEqual([volumeState(fixed), volumeState(moving)], before)
        self.assertEqual(steps[-1], 1.0)
        transform = result.transform_node
        self.assertEqual(transform.GetNodeReferenceID(transform.GetFixedNodeReferenceRole()), fixed.GetID())
        self.assertEqual(transform.GetNodeReferenceID(transform.GetMovingNodeReferenceRole()), moving.GetID())
        # The transform lays the moving volume over the fixed one, so composed with the motion it is the identity.
        residual = slicer.util.arrayFromTransformMatrix(transform, toWorld=True) @ motion
        bounds = [0.0] * 6
        fixed.GetRASBounds(bounds)
        for corner in itertools.product(*np.reshape(bounds, (3, 2))):
            point = np.append(corner, 1.0)
            np.testing.assert_allclose((residual @ point)[:3], corner, atol=3.0)
        self.assertEqual(result.output_volume.GetImageData().GetDimensions(), fixed.GetImageData().GetDimensions())
        self.delayDisplay("Test passed")

    def test_CancelStopsTheRun(self) -> None:
        from SlicerDLRegLib import loadSampleVolume, recordProgress

        from dlreg.errors import CancelledError

        fixed = loadSampleVolume("stroke_t1_2mm.nrrd")
        moving = loadSampleVolume("stroke_t2_2mm.nrrd")
        steps = []
        with self.assertRaises(CancelledError):
            RigidDCNNRegistrationLogic().process(fixed, moving, progress=recordProgress(steps, cancelAfter=2))
        self.assertEqual(len(steps), 2)
        self.delayDisplay("Test passed")
