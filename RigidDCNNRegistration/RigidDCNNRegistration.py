"""3D rigid multi-modal registration of the head with a deep CNN: the Slicer module (GUI and thin logic over dlreg)."""

from typing import Annotated

import slicer
from slicer import vtkMRMLLinearTransformNode, vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import Choice, Default, WithinRange, parameterNodeWrapper
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
        self.parent.dependencies = ["SlicerDLRegCommon"]
        self.parent.contributors = ["SlicerDLReg developers"]
        self.parent.helpText = """
Rigid 3D registration of multi-modal head images (CT, MR) in seconds: a deep convolutional network finds
matching landmarks in the two heads and the rotation and translation follow from them (Estimator "keypoints";
"ann" is the paper's direct regression), after an optional principal-axes pre-alignment, and an optional
short mutual-information search refines it. Repeated predictions on perturbed inputs estimate the uncertainty,
and a result that is probably wrong is flagged. With order "auto" the modality classifier decides which volume
is fixed (MR-T1 preferred). The result is a linear transform (apply it to the moving volume to lay it over the
fixed one) and a registered volume. The Training section fits the network on a folder of your own images.
The work runs in a background process: the window stays responsive and Cancel stops it at once.
Try it on Sample Data > SlicerDLReg > DLRegStroke. Needs Slicer 5.4 or newer and PyTorch.
See <a href="https://github.com/SlicerDLReg/SlicerDLReg#rigiddcnnregistration">the documentation</a>.
"""
        self.parent.acknowledgementText = """
This module implements the registration framework of K. T. Islam, S. Wijewickrema and S. O'Leary,
"A deep learning based framework for the registration of three dimensional multi-modal medical images
of the head", Scientific Reports 11, 1860 (2021).
"""


@parameterNodeWrapper
class RigidDCNNRegistrationParameterNode:
    """Panel state, saved with the scene. The fields from estimator to device are dlreg's RigidOptions,
    one for one (camelCase); Testing/test_module_files.py fails if they drift apart."""

    fixedVolume: vtkMRMLScalarVolumeNode
    movingVolume: vtkMRMLScalarVolumeNode
    estimator: Annotated[str, Choice(["keypoints", "ann"]), Default("keypoints")]
    refine: Annotated[bool, Default(True)]
    pcaPrealign: Annotated[bool, Default(True)]
    nUncertainty: Annotated[int, WithinRange(0, 64), Default(8)]
    weights: str  # a path; empty: the estimator's bundled weights
    order: Annotated[str, Choice(["manual", "auto"]), Default("manual")]
    seed: Annotated[int, WithinRange(0, 2147483647), Default(0)]
    device: Annotated[str, Choice(["auto", "cpu", "cuda", "mps"]), Default("auto")]
    outputTransform: vtkMRMLLinearTransformNode
    outputVolume: vtkMRMLScalarVolumeNode
    showResult: Annotated[bool, Default(True)]
    trainingData: str  # a folder (one sub-folder per subject) or a CSV of pairs
    trainingOutput: str  # a folder for checkpoints and weights
    trainingSteps: Annotated[int, WithinRange(1, 1000000), Default(1500)]
    trainingEpochs: Annotated[int, WithinRange(1, 10000), Default(30)]


class RigidDCNNRegistrationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Module panel: the .ui bound to the parameter node; Apply and Train start background runs, Cancel stops them."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._panel = None
        self._run = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.uiWidget = slicer.util.loadUI(self.resourcePath("UI/RigidDCNNRegistration.ui"))
        self.layout.addWidget(self.uiWidget)
        self.ui = slicer.util.childWidgetVariables(self.uiWidget)
        self.uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = RigidDCNNRegistrationLogic()
        from SlicerDLRegLib import BackgroundRun, ParameterPanel

        self._run = BackgroundRun(self.ui.progressBar, self.ui.cancelButton,
                                  [self.ui.applyButton, self.ui.trainButton], self._checkCanApply)
        self._panel = ParameterPanel(self, self.logic, self._checkCanApply, ("fixedVolume", "movingVolume"))
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, lambda *_: self._run.cancel())
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.trainButton.connect("clicked(bool)", self.onTrainButton)
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

    def _checkCanApply(self) -> None:
        from dlreg.mrml.panel import pair_action, training_action

        p = self._panel.node if self._panel else None
        running = bool(self._run and self._run.running)
        enabled, tip = pair_action(p.fixedVolume if p else None, p.movingVolume if p else None, running=running)
        self.ui.applyButton.enabled, self.ui.applyButton.toolTip = enabled, tip
        enabled, tip = training_action(p.trainingData if p else "", p.trainingOutput if p else "", running=running)
        self.ui.trainButton.enabled, self.ui.trainButton.toolTip = enabled, tip

    def onApplyButton(self) -> None:
        p = self._panel.node
        with slicer.util.tryWithErrorDisplay("Registration could not start.", waitCursor=True):
            from SlicerDLRegLib import ensureDependencies

            ensureDependencies(interactive=True)
            from dlreg.mrml.jobs import rigid_job
            from dlreg.rigid3d.options import RigidOptions

            job = rigid_job(p.fixedVolume, p.movingVolume, RigidOptions.from_attributes(p),
                            outputs={"output_transform": p.outputTransform, "output_volume": p.outputVolume})
            self._run.start(job, self._onRegistered, title="Rigid registration")

    def _onRegistered(self, result) -> None:
        p = self._panel.node
        p.outputTransform, p.outputVolume = result.transform_node, result.output_volume
        self.ui.resultTextEdit.setPlainText(result.summary_text())
        if p.showResult:
            self.logic.showResult(result)

    def onTrainButton(self) -> None:
        p = self._panel.node
        with slicer.util.tryWithErrorDisplay("Training could not start.", waitCursor=True):
            from SlicerDLRegLib import ensureDependencies

            ensureDependencies(interactive=True)
            from dlreg.mrml.jobs import train_rigid_job

            job = train_rigid_job(p.trainingData, p.trainingOutput, estimator=p.estimator, steps=p.trainingSteps,
                                  epochs=p.trainingEpochs, device=p.device)
            self._run.start(job, self._onTrained, title="Training")

    def _onTrained(self, weights) -> None:
        self._panel.node.weights = str(weights)
        self.ui.resultTextEdit.setPlainText(f"Trained weights written to {weights}; they are now selected.")


class RigidDCNNRegistrationLogic(ScriptedLoadableModuleLogic):
    """Thin adapter over dlreg.mrml.rigid3d and dlreg.training for the Python console and batch mode
    (runs in this process)."""

    def getParameterNode(self) -> RigidDCNNRegistrationParameterNode:
        return RigidDCNNRegistrationParameterNode(super().getParameterNode())

    def process(self, fixedVolume, movingVolume, options=None, *, outputTransform=None, outputVolume=None,
                progress=None, show: bool = False, interactive: bool = False, **changes):
        """Rigidly register the moving volume to the fixed one; inputs are left unchanged.

        options: a dlreg.rigid3d.RigidOptions (keyword changes such as order="auto" apply on top; with
        order "auto" the classifier decides which volume is fixed). Outputs left as None are created; the
        slice views change only with show=True. Returns dlreg's result: transform_node, output_volume,
        table_node, fixed_node, moving_node, likely_failed and summary_text().
        """
        from SlicerDLRegLib import ensureDependencies

        ensureDependencies(interactive)
        from dlreg.mrml import rigid3d

        result = rigid3d.register_nodes(fixedVolume, movingVolume, options, output_transform=outputTransform,
                                        output_volume=outputVolume, progress=progress, **changes)
        if show:
            self.showResult(result)
        return result

    def train(self, data: str, outputFolder: str, *, estimator: str = "keypoints", steps: int = 1500,
              epochs: int = 30, device: str = "auto", progress=None, interactive: bool = False):
        """Train the estimator's network on `data` (a folder or CSV; keypoints: `steps` steps, ann: `epochs`
        epochs); returns the path of the weights written to `outputFolder`."""
        from SlicerDLRegLib import ensureDependencies

        ensureDependencies(interactive)
        from dlreg.training.rigid import dcnn_ann, keypoints

        if estimator == "keypoints":
            return keypoints.train_from_folder(data, outputFolder, steps=steps, device=device, progress=progress)
        return dcnn_ann.train_from_folder(data, outputFolder, epochs=epochs, device=device, progress=progress)

    def showResult(self, result, opacity: float = 0.5) -> None:
        """Show the registered volume over the volume that was used as fixed, in all slice views."""
        from dlreg.mrml.display import show_registration

        show_registration(result.fixed_node, result.output_volume, opacity=opacity)


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
        result = RigidDCNNRegistrationLogic().process(fixed, moving, n_uncertainty=2, progress=recordProgress(steps))
        self.assertEqual([volumeState(fixed), volumeState(moving)], before)
        self.assertEqual(steps[-1], 1.0)
        self.assertFalse(result.likely_failed)
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
